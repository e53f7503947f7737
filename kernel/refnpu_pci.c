// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * PCI bus glue: BAR0 registers and MSI-X interrupts (vector 0 for errors,
 * vector 1 + q for queue q), handed to the register-level backend. The
 * device has no INTx pin and sends queue q's completions to vector 1 + q
 * only, so every vector is required.
 */

#include <linux/module.h>
#include <linux/pci.h>

#include "refnpu_drv.h"
#include "refnpu_hw_ops.h"
#include "refnpu_hwif.h"

/**
 * struct refnpu_pci - a refnpu PCI function
 * @hw: register-level backend, embedded
 * @pdev: the PCI function
 * @regs: BAR0
 * @nvec: interrupt vectors allocated
 * @vecs: one per vector
 */
struct refnpu_pci {
	struct refnpu_hwif hw;
	struct pci_dev *pdev;
	void __iomem *regs;
	unsigned int nvec;
	struct refnpu_pci_vec *vecs;
};

/**
 * struct refnpu_pci_vec - what one interrupt vector serves
 * @rpci: the function
 * @source: REFNPU_MSIX_VEC_* index
 * @irq: its Linux interrupt number
 */
struct refnpu_pci_vec {
	struct refnpu_pci *rpci;
	unsigned int source;
	int irq;
};

static inline struct refnpu_pci *to_refnpu_pci(struct refnpu_hwif *hw)
{
	return container_of(hw, struct refnpu_pci, hw);
}

static u32 refnpu_pci_read32(struct refnpu_hwif *hw, u32 off)
{
	return readl(to_refnpu_pci(hw)->regs + off);
}

static void refnpu_pci_write32(struct refnpu_hwif *hw, u32 off, u32 val)
{
	writel(val, to_refnpu_pci(hw)->regs + off);
}

/*
 * Called by recovery, inside a fence signalling section: with the
 * interrupt numbers looked up at probe, since pci_irq_vector() takes the
 * MSI domain's mutex, which is held around allocations when vectors are
 * set up.
 */
static void refnpu_pci_sync_irqs(struct refnpu_hwif *hw)
{
	struct refnpu_pci *rpci = to_refnpu_pci(hw);
	unsigned int i;

	for (i = 0; i < rpci->nvec; i++)
		synchronize_irq(rpci->vecs[i].irq);
}

/*
 * Bus mastering is what lets a PCI function reach memory at all: with it
 * off, the function's requests are not forwarded upstream, whatever its
 * engine still does. The configuration write is not posted, so it has
 * taken effect when this returns; a request the function had already
 * issued may still complete (Documentation/driver.rst, "Wedged device").
 */
static void refnpu_pci_set_dma(struct refnpu_hwif *hw, bool on)
{
	struct pci_dev *pdev = to_refnpu_pci(hw)->pdev;

	if (on)
		pci_set_master(pdev);
	else
		pci_clear_master(pdev);
}

static const struct refnpu_hwif_bus refnpu_pci_bus = {
	.read32 = refnpu_pci_read32,
	.write32 = refnpu_pci_write32,
	.sync_irqs = refnpu_pci_sync_irqs,
	.set_dma = refnpu_pci_set_dma,
};

static irqreturn_t refnpu_pci_irq(int irq, void *arg)
{
	struct refnpu_pci_vec *vec = arg;
	struct refnpu_hwif *hw = &vec->rpci->hw;

	if (vec->source == REFNPU_MSIX_VEC_ERROR)
		return refnpu_hwif_error_irq(hw);

	return refnpu_hwif_queue_irq(hw, vec->source - REFNPU_MSIX_VEC_QUEUE(0));
}

static int refnpu_pci_setup_irqs(struct refnpu_pci *rpci)
{
	struct pci_dev *pdev = rpci->pdev;
	unsigned int want, i;
	u32 nq;
	int ret;

	nq = min_t(u32, readl(rpci->regs + REFNPU_REG_NUM_QUEUES),
		   REFNPU_MAX_QUEUES);
	want = REFNPU_MSIX_NUM_VECTORS(nq);

	ret = pci_alloc_irq_vectors(pdev, want, want, PCI_IRQ_MSIX);
	if (ret < 0) {
		dev_err(&pdev->dev, "%u MSI-X vectors needed: %d\n", want, ret);
		return ret;
	}
	rpci->vecs = devm_kcalloc(&pdev->dev, ret, sizeof(*rpci->vecs),
				  GFP_KERNEL);
	if (!rpci->vecs)
		return -ENOMEM;

	for (i = 0; i < ret; i++) {
		struct refnpu_pci_vec *vec = &rpci->vecs[i];
		int err;

		vec->rpci = rpci;
		vec->source = i;
		vec->irq = pci_irq_vector(pdev, i);
		err = devm_request_irq(&pdev->dev, vec->irq, refnpu_pci_irq, 0,
				       dev_name(&pdev->dev), vec);
		if (err)
			return err;
	}
	rpci->nvec = ret;

	return 0;
}

static int refnpu_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct refnpu_device *rdev;
	struct refnpu_pci *rpci;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;

	ret = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	/* The device MMU maps segments of any length. */
	dma_set_max_seg_size(&pdev->dev, UINT_MAX);

	rpci = devm_kzalloc(&pdev->dev, sizeof(*rpci), GFP_KERNEL);
	if (!rpci)
		return -ENOMEM;
	rpci->pdev = pdev;
	rpci->hw.dev = &pdev->dev;
	rpci->hw.bus = &refnpu_pci_bus;

	rpci->regs = pcim_iomap_region(pdev, REFNPU_BAR_REGS, DRIVER_NAME);
	if (IS_ERR(rpci->regs))
		return PTR_ERR(rpci->regs);
	if (pci_resource_len(pdev, REFNPU_BAR_REGS) < REFNPU_BAR_REGS_SIZE)
		return -ENODEV;

	pci_set_master(pdev);

	rdev = refnpu_device_create(&pdev->dev, &refnpu_hwif_ops, &rpci->hw);
	if (IS_ERR(rdev))
		return PTR_ERR(rdev);
	pci_set_drvdata(pdev, rdev);

	/* Interrupts stay masked in the device until its init. */
	ret = refnpu_pci_setup_irqs(rpci);
	if (ret)
		return ret;

	ret = refnpu_device_init(rdev);
	if (ret)
		return ret;

	return refnpu_device_register(rdev);
}

static void refnpu_pci_remove(struct pci_dev *pdev)
{
	refnpu_device_unregister(pci_get_drvdata(pdev));
}

static const struct pci_device_id refnpu_pci_ids[] = {
	{ PCI_DEVICE(REFNPU_PCI_VENDOR_ID, REFNPU_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, refnpu_pci_ids);

static struct pci_driver refnpu_pci_driver = {
	.name = DRIVER_NAME,
	.id_table = refnpu_pci_ids,
	.probe = refnpu_pci_probe,
	.remove = refnpu_pci_remove,
};

/**
 * refnpu_pci_init() - register the PCI driver
 *
 * Return: 0 or a negative errno.
 */
int refnpu_pci_init(void)
{
	return pci_register_driver(&refnpu_pci_driver);
}

/**
 * refnpu_pci_exit() - unregister the PCI driver
 */
void refnpu_pci_exit(void)
{
	pci_unregister_driver(&refnpu_pci_driver);
}
