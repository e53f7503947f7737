/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_HWIF_H__
#define __REFNPU_HWIF_H__

#include <linux/interrupt.h>
#include <linux/types.h>

#include "refnpu_hw.h"

struct device;
struct refnpu_device;
struct refnpu_hwif;

/**
 * struct refnpu_hwif_bus - how a bus reaches the register file
 * @read32: read a 32-bit register at byte offset @off of BAR0
 * @write32: write a 32-bit register
 * @sync_irqs: wait until no interrupt handler of the device runs
 * @set_dma: let the device reach memory, or not (PCI: bus mastering);
 *	once it returns false, no access of the device lands any more
 */
struct refnpu_hwif_bus {
	u32 (*read32)(struct refnpu_hwif *hw, u32 off);
	void (*write32)(struct refnpu_hwif *hw, u32 off, u32 val);
	void (*sync_irqs)(struct refnpu_hwif *hw);
	void (*set_dma)(struct refnpu_hwif *hw, bool on);
};

/**
 * struct refnpu_hwif_ring - a queue's ring and completion records
 * @desc: REFNPU_RING_ENTRIES job descriptors, in bus memory
 * @desc_dma: bus address of @desc
 * @comp: one completion record per ring slot, in bus memory
 * @comp_dma: bus address of @comp
 * @tail: next slot the driver writes
 * @head: next slot whose completion the driver expects
 *
 * @tail and @head are protected by &refnpu_queue.lock.
 */
struct refnpu_hwif_ring {
	struct refnpu_job_desc *desc;
	dma_addr_t desc_dma;
	struct refnpu_completion *comp;
	dma_addr_t comp_dma;
	u32 tail;
	u32 head;
};

/**
 * struct refnpu_hwif - the register-level backend of one device
 * @rdev: core device
 * @dev: bus device doing the DMA
 * @bus: register accessors of the bus
 * @bus_priv: the bus glue's data
 * @num_queues: queues in use
 * @caps: REFNPU_REG_CAPS
 * @ctx_table_dma: context table programmed by the core, restored on reset
 * @ctx_count: its entry count
 * @ready: rings are set up; interrupt handlers may touch them
 * @dma_off: wedged: the bus keeps the device away from memory
 * @rings: one ring per queue
 */
struct refnpu_hwif {
	struct refnpu_device *rdev;
	struct device *dev;
	const struct refnpu_hwif_bus *bus;
	void *bus_priv;
	u32 num_queues;
	u32 caps;
	dma_addr_t ctx_table_dma;
	u32 ctx_count;
	bool ready;
	bool dma_off;
	struct refnpu_hwif_ring rings[REFNPU_MAX_QUEUES];
};

extern const struct refnpu_hw_ops refnpu_hwif_ops;

irqreturn_t refnpu_hwif_queue_irq(struct refnpu_hwif *hw, unsigned int queue);
irqreturn_t refnpu_hwif_error_irq(struct refnpu_hwif *hw);

#endif /* __REFNPU_HWIF_H__ */
