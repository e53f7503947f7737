// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * The in-kernel virtual device: a refnpu emulated inside the kernel, so
 * the driver runs without the QEMU device (like vgem or vkms).
 *
 * virt_devices=N creates N platform devices. What each device does --
 * registers, queues, rings, completion and fault records, TLB
 * invalidation, reset, watchdog, fault injection -- is the shared device
 * core (hw/refnpu_core.c), the code the QEMU model runs; commands run on
 * the shared compute engine. This file is the core's kernel transport: the
 * driver's register-level backend (refnpu_hwif.c) reaches the registers
 * through function calls, interrupts are delivered by an irq_work (in hard
 * interrupt context, like an MSI-X vector), each queue runs on a work item
 * of an unbound workqueue, and bus memory is physical memory.
 *
 * Locks: the core's device lock and its queue locks are spinlocks taken
 * with interrupts disabled (the interrupt handlers read registers), in two
 * lockdep classes; a queue lock may be taken before the device lock,
 * never the reverse (refnpu_core.h).
 *
 * Floating point: the engine runs between kernel_fpu_begin() and
 * kernel_fpu_end(); between chunks of work the core's yield drops the FPU
 * and reschedules. Nothing called inside that section sleeps: DMA is a
 * memcpy(), and the only sleeping wait (injected hang or delay) runs
 * outside it. This device is never paused, so the core never waits inside
 * the engine. Where the kernel cannot use the FPU (no
 * CONFIG_ARCH_HAS_KERNEL_FPU_SUPPORT) the engine is built without floating
 * point and the device reports only the integer capabilities.
 *
 * Memory: a platform device has no IOMMU, so bus addresses are physical
 * addresses (dma_to_phys()); accesses outside RAM fail as DMA errors. Each
 * access is translated page by page when it is made: no kernel address
 * outlives one access, so a TLB invalidation that reads idle leaves no
 * write behind it.
 */

#include <linux/dma-direct.h>
#include <linux/dma-mapping.h>
#include <linux/irq_work.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#if IS_ENABLED(CONFIG_ARCH_HAS_KERNEL_FPU_SUPPORT)
#include <linux/fpu.h>
#endif

#include "refnpu_core.h"
#include "refnpu_drv.h"
#include "refnpu_engine.h"
#include "refnpu_hw_ops.h"
#include "refnpu_hwif.h"

#define REFNPU_VIRT_NAME	"refnpu-virt"
#define REFNPU_VIRT_MAX		8

static unsigned int virt_devices;
module_param(virt_devices, uint, 0444);
MODULE_PARM_DESC(virt_devices,
		 "Number of in-kernel virtual refnpu devices to create (default: 0, max: 8)");

static unsigned int virt_queues = REFNPU_DEFAULT_QUEUES;
module_param(virt_queues, uint, 0444);
MODULE_PARM_DESC(virt_queues,
		 "Hardware queues of each virtual device (default: 4, 1 to 16)");

static bool virt_fault_inject = true;
module_param(virt_fault_inject, bool, 0444);
MODULE_PARM_DESC(virt_fault_inject,
		 "Virtual devices expose the fault-injection registers (default: true)");

#ifdef REFNPU_TEST_HOOKS
/* Only in test builds (Kbuild: REFNPU_TEST_HOOKS=1): it writes any page. */
bool refnpu_virt_stray_dma;
module_param_named(virt_stray_dma, refnpu_virt_stray_dma, bool, 0444);
MODULE_PARM_DESC(virt_stray_dma,
		 "Injected stray DMA writes physical memory; for containment tests only (default: false)");
#endif

/**
 * struct refnpu_virt_lock - one of the core's locks
 * @lock: the spinlock
 * @flags: interrupt state saved by the holder
 */
struct refnpu_virt_lock {
	spinlock_t lock; /* a core lock: see refnpu_core.h */
	unsigned long flags;
};

/**
 * struct refnpu_virt_queue - the transport of one queue
 * @v: device
 * @idx: queue index
 * @lock: the core's lock of this queue
 * @work: runs the queue (refnpu_core_queue_run_jobs())
 * @waitq: a job waiting in the core (injected hang or delay) sleeps here
 * @woken: the core asked to end that wait
 */
struct refnpu_virt_queue {
	struct refnpu_virt *v;
	unsigned int idx;
	struct refnpu_virt_lock lock;
	struct work_struct work;
	wait_queue_head_t waitq;
	bool woken;
};

/**
 * struct refnpu_virt - an emulated refnpu device
 * @hw: the register-level backend driving it, embedded
 * @pdev: platform device
 * @core: the device core
 * @lock: the core's device lock
 * @clock_base: ktime_get_ns() when the device was created
 * @wq: runs the queues
 * @irq_pending: vectors to notify from @irq_work
 * @irq_work: delivers the interrupts in hard interrupt context
 * @queues: the queues' transport
 * @dma_off: bus mastering is off: every DMA of the device fails
 */
struct refnpu_virt {
	struct refnpu_hwif hw;
	struct platform_device *pdev;
	struct refnpu_core core;
	struct refnpu_virt_lock lock;
	u64 clock_base;
	struct workqueue_struct *wq;
	unsigned long irq_pending;
	struct irq_work irq_work;
	struct refnpu_virt_queue queues[REFNPU_MAX_QUEUES];
	bool dma_off;
};

static struct platform_device *refnpu_virt_pdevs[REFNPU_VIRT_MAX];

static inline struct refnpu_virt *to_virt(struct refnpu_hwif *hw)
{
	return container_of(hw, struct refnpu_virt, hw);
}

/* ------------------------------------------------------------------------
 * The core's platform interface
 */

/*
 * Copy to or from bus memory, a page at a time, each page looked up when
 * it is copied; REFNPU_ERR_DMA outside RAM or past the end of the bus.
 */
static __u32 virt_dma(void *opaque, unsigned int queue, __u64 addr, void *buf,
		      __u64 len, bool write)
{
	struct refnpu_virt *v = opaque;
	struct device *dev = &v->pdev->dev;
	u8 *p = buf;

	if (len && len - 1 > U64_MAX - addr)
		return REFNPU_ERR_DMA;
	while (len) {
		u64 chunk = min_t(u64, len, PAGE_SIZE - offset_in_page(addr));
		phys_addr_t phys = dma_to_phys(dev, addr);
		void *kaddr;

		if (phys == (phys_addr_t)DMA_MAPPING_ERROR ||
		    !pfn_valid(PHYS_PFN(phys)))
			return REFNPU_ERR_DMA;
		kaddr = phys_to_virt(phys);
		rcu_read_lock();
		if (READ_ONCE(v->dma_off)) {
			rcu_read_unlock();
			return REFNPU_ERR_DMA;
		}
		if (write)
			memcpy(kaddr, p, chunk);
		else
			memcpy(p, kaddr, chunk);
		rcu_read_unlock();
		addr += chunk;
		p += chunk;
		len -= chunk;
	}

	return REFNPU_ERR_NONE;
}

static void virt_irq_work(struct irq_work *work)
{
	struct refnpu_virt *v = container_of(work, struct refnpu_virt, irq_work);
	unsigned long pending = xchg(&v->irq_pending, 0);
	unsigned int vector;

	for_each_set_bit(vector, &pending,
			 REFNPU_MSIX_NUM_VECTORS(REFNPU_MAX_QUEUES)) {
		if (vector == REFNPU_MSIX_VEC_ERROR)
			refnpu_hwif_error_irq(&v->hw);
		else
			refnpu_hwif_queue_irq(&v->hw,
					      vector - REFNPU_MSIX_VEC_QUEUE(0));
	}
}

/* Called with core locks held: latch and schedule only. */
static void virt_irq(void *opaque, unsigned int vector)
{
	struct refnpu_virt *v = opaque;

	set_bit(vector, &v->irq_pending);
	irq_work_queue(&v->irq_work);
}

static __u64 virt_now_ns(void *opaque)
{
	struct refnpu_virt *v = opaque;

	return ktime_get_ns() - v->clock_base;
}

static struct refnpu_virt_lock *virt_lock_of(struct refnpu_virt *v, int lock)
{
	return lock == REFNPU_CORE_DEV_LOCK ? &v->lock : &v->queues[lock].lock;
}

static void virt_lock(void *opaque, int lock)
{
	struct refnpu_virt_lock *l = virt_lock_of(opaque, lock);
	unsigned long flags;

	spin_lock_irqsave(&l->lock, flags);
	l->flags = flags;
}

static void virt_unlock(void *opaque, int lock)
{
	struct refnpu_virt_lock *l = virt_lock_of(opaque, lock);

	spin_unlock_irqrestore(&l->lock, l->flags);
}

/* May be called with core locks held: queue_work() only schedules. */
static void virt_kick(void *opaque, unsigned int queue)
{
	struct refnpu_virt *v = opaque;

	queue_work(v->wq, &v->queues[queue].work);
}

/* Never called inside the engine's FPU section (see the top of the file). */
static void virt_wait(void *opaque, unsigned int queue, __u64 ns)
{
	struct refnpu_virt_queue *q = &((struct refnpu_virt *)opaque)->queues[queue];

	wait_event_idle_timeout(q->waitq, READ_ONCE(q->woken),
				max(nsecs_to_jiffies(ns), 1UL));
	WRITE_ONCE(q->woken, false);
}

static void virt_wake(void *opaque, unsigned int queue)
{
	struct refnpu_virt_queue *q = &((struct refnpu_virt *)opaque)->queues[queue];

	WRITE_ONCE(q->woken, true);
	wake_up_all(&q->waitq);
}

#if REFNPU_ENGINE_HAS_FP
static void virt_engine_begin(void *opaque, unsigned int queue)
{
	kernel_fpu_begin();
}

static void virt_engine_end(void *opaque, unsigned int queue)
{
	kernel_fpu_end();
}

/* Between chunks of engine work: drop the FPU and let others run. */
static void virt_yield(void *opaque, unsigned int queue)
{
	kernel_fpu_end();
	cond_resched();
	kernel_fpu_begin();
}
#else
static void virt_yield(void *opaque, unsigned int queue)
{
	cond_resched();
}
#endif

/* Guest errors are the driver's bugs (or a test's): dynamic debug. */
static void virt_event(void *opaque, const struct refnpu_core_event *ev)
{
	struct refnpu_virt *v = opaque;

	if (ev->kind == REFNPU_CORE_EV_GUEST_ERROR)
		dev_dbg(&v->pdev->dev, "queue %d: %s (0x%llx, 0x%llx)\n",
			ev->queue, ev->msg, ev->a, ev->b);
}

static const struct refnpu_core_ops refnpu_virt_core_ops = {
	/* The engine runs in an FPU section, dropped between chunks. */
#if REFNPU_ENGINE_HAS_FP
	.engine_begin = virt_engine_begin,
	.engine_end = virt_engine_end,
#endif
	.yield = virt_yield,
	/* Bus memory is physical memory; interrupts go through an irq_work. */
	.dma = virt_dma,
	.irq = virt_irq,
	.now_ns = virt_now_ns,
	/* The core's locks: spinlocks taken with interrupts off. */
	.lock = virt_lock,
	.unlock = virt_unlock,
	/* One work item per queue, which may sleep outside the engine. */
	.kick = virt_kick,
	.wait = virt_wait,
	.wake = virt_wake,
	.event = virt_event,
};

/* A queue's work item: one job at a time, rescheduling in between. */
static void virt_queue_work(struct work_struct *work)
{
	struct refnpu_virt_queue *q =
		container_of(work, struct refnpu_virt_queue, work);

	while (refnpu_core_queue_run_jobs(&q->v->core, q->idx, 1))
		cond_resched();
}

/* ------------------------------------------------------------------------
 * The driver's side: registers
 */

static u32 virt_read32(struct refnpu_hwif *hw, u32 addr)
{
	return refnpu_core_read(&to_virt(hw)->core, addr, 4);
}

static void virt_write32(struct refnpu_hwif *hw, u32 addr, u32 val)
{
	refnpu_core_write(&to_virt(hw)->core, addr, val, 4);
}

static void virt_sync_irqs(struct refnpu_hwif *hw)
{
	irq_work_sync(&to_virt(hw)->irq_work);
}

/*
 * The virtual device's bus mastering: virt_dma() checks @dma_off and copies
 * inside one RCU read-side section per page, so once the grace period has
 * passed no copy that began before the switch is still running.
 */
static void virt_set_dma(struct refnpu_hwif *hw, bool on)
{
	struct refnpu_virt *v = to_virt(hw);

	WRITE_ONCE(v->dma_off, !on);
	if (!on)
		synchronize_rcu();
}

static const struct refnpu_hwif_bus refnpu_virt_bus = {
	.read32 = virt_read32,
	.write32 = virt_write32,
	.sync_irqs = virt_sync_irqs,
	.set_dma = virt_set_dma,
};

/* ------------------------------------------------------------------------
 * Platform device
 */

/* Stop the queues, wait for their work and for the interrupts in flight. */
static void refnpu_virt_stop(struct refnpu_virt *v)
{
	refnpu_core_stop(&v->core);
	destroy_workqueue(v->wq);
	irq_work_sync(&v->irq_work);
}

static int refnpu_virt_probe(struct platform_device *pdev)
{
	struct refnpu_device *rdev;
	struct refnpu_virt *v;
	unsigned int i;
	u32 caps;
	int ret;

	ret = dma_coerce_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	dma_set_max_seg_size(&pdev->dev, UINT_MAX);

	v = devm_kzalloc(&pdev->dev, sizeof(*v), GFP_KERNEL);
	if (!v)
		return -ENOMEM;
	v->pdev = pdev;
	v->hw.dev = &pdev->dev;
	v->hw.bus = &refnpu_virt_bus;
	spin_lock_init(&v->lock.lock);
	init_irq_work(&v->irq_work, virt_irq_work);
	v->clock_base = ktime_get_ns();
	/* Without the FPU, only what the integer engine can do. */
	caps = REFNPU_ENGINE_CAPS;
	if (virt_fault_inject)
		caps |= REFNPU_CAP_FAULT_INJECT;
	refnpu_core_init(&v->core, &refnpu_virt_core_ops, v, virt_queues, caps,
			 refnpu_virt_stray_dma);

	for (i = 0; i < REFNPU_MAX_QUEUES; i++) {
		struct refnpu_virt_queue *q = &v->queues[i];

		q->v = v;
		q->idx = i;
		spin_lock_init(&q->lock.lock);
		init_waitqueue_head(&q->waitq);
		INIT_WORK(&q->work, virt_queue_work);
	}

	v->wq = alloc_workqueue("refnpu-virt-%s", WQ_UNBOUND,
				v->core.num_queues, dev_name(&pdev->dev));
	if (!v->wq)
		return -ENOMEM;

	rdev = refnpu_device_create(&pdev->dev, &refnpu_hwif_ops, &v->hw);
	if (IS_ERR(rdev)) {
		ret = PTR_ERR(rdev);
		goto err_stop;
	}
	rdev->info.is_virtual = true;
	platform_set_drvdata(pdev, rdev);

	ret = refnpu_device_init(rdev);
	if (ret)
		goto err_stop;

	ret = refnpu_device_register(rdev);
	if (ret)
		goto err_stop;

	return 0;

err_stop:
	refnpu_virt_stop(v);
	return ret;
}

static void refnpu_virt_remove(struct platform_device *pdev)
{
	struct refnpu_device *rdev = platform_get_drvdata(pdev);

	refnpu_device_unregister(rdev);
	refnpu_virt_stop(to_virt(rdev->hw));
}

static struct platform_driver refnpu_virt_driver = {
	.probe = refnpu_virt_probe,
	.remove = refnpu_virt_remove,
	.driver = {
		.name = REFNPU_VIRT_NAME,
	},
};

/**
 * refnpu_virt_init() - register the virtual driver and its devices
 *
 * Return: 0 on success or a negative errno.
 */
int refnpu_virt_init(void)
{
	unsigned int i;
	int ret;

	if (virt_devices > REFNPU_VIRT_MAX)
		return -EINVAL;

	ret = platform_driver_register(&refnpu_virt_driver);
	if (ret)
		return ret;

	for (i = 0; i < virt_devices; i++) {
		struct platform_device *pdev;

		pdev = platform_device_register_simple(REFNPU_VIRT_NAME, i,
						       NULL, 0);
		if (IS_ERR(pdev)) {
			ret = PTR_ERR(pdev);
			goto err_unregister;
		}
		refnpu_virt_pdevs[i] = pdev;
	}

	return 0;

err_unregister:
	while (i--) {
		platform_device_unregister(refnpu_virt_pdevs[i]);
		refnpu_virt_pdevs[i] = NULL;
	}
	platform_driver_unregister(&refnpu_virt_driver);
	return ret;
}

/**
 * refnpu_virt_exit() - remove the virtual devices and their driver
 */
void refnpu_virt_exit(void)
{
	unsigned int i;

	for (i = REFNPU_VIRT_MAX; i--;) {
		if (!refnpu_virt_pdevs[i])
			continue;
		platform_device_unregister(refnpu_virt_pdevs[i]);
		refnpu_virt_pdevs[i] = NULL;
	}
	platform_driver_unregister(&refnpu_virt_driver);
}
