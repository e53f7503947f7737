// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Userptr BOs: buffer objects backed by a process's own memory.
 *
 * The pages are pinned with pin_user_pages_fast(FOLL_LONGTERM) when the BO
 * is created, DMA-mapped once, and unpinned when the BO is freed, which is
 * after its last handle was closed and the last job listing it completed
 * (jobs hold the BO's device mapping, see refnpu_gem.c). The device can
 * therefore never reach a page that went back to the allocator.
 *
 * Why pinning and not an MMU notifier: refnpu's device cannot take a page
 * fault and retry, a translation fault fails the job. With an MMU
 * notifier (hmm_range_fault() plus mmu_interval_notifier, as amdgpu and
 * nouveau do), an invalidation of a range a queued or running job uses
 * would have to wait for that job's fence inside the notifier, and a
 * dma_fence wait in reclaim context is exactly what the dma-fence rules
 * forbid (the job may need memory to complete); or the driver would have
 * to preempt the job, which the hardware cannot do. Pinning gives the
 * semantics RDMA (ib_umem), VFIO and io_uring fixed buffers give: the
 * memory stays put while the device may use it, and it is charged to the
 * process's RLIMIT_MEMLOCK as pinned memory (mm->pinned_vm, VmPin in
 * /proc/PID/status) unless the process has CAP_IPC_LOCK. The cost is that
 * the pages cannot be migrated, compacted or swapped while the BO lives,
 * and that a process which unmaps the range keeps the BO on the old pages
 * (documented in the uAPI). A vendor whose device can fault and replay
 * (PCIe PRI/ATS, or an MMU with retry) should use the notifier design.
 *
 * Read-only memory: the pages are pinned for writing when the process may
 * write every page of the range (which also breaks copy-on-write sharing,
 * so the device and the process see the same pages); when it may not,
 * they are pinned read-only, mapped read-only in the device MMU and
 * DMA-mapped DMA_TO_DEVICE, so neither the device MMU nor the DMA layer
 * (a system IOMMU, a bounce buffer) ever writes them.
 *
 * Overlapping BOs: nothing stops a process from making several userptr
 * BOs over the same pages (views of one buffer, two processes sharing a
 * file), so the same page may be in several streaming DMA mappings at
 * once. The DMA API allows that only when the mappings skip the CPU cache
 * maintenance of map and unmap (DMA-API debug reports "overlapping
 * mappings" otherwise), because one mapping's sync would then undo what
 * the device wrote through another. Userptr BOs are therefore mapped with
 * DMA_ATTR_SKIP_CPU_SYNC, and the syncs that matter are the explicit ones
 * around every job (refnpu_bo_sync()): for the device before the job
 * runs, for the CPU after it wrote. Concurrent jobs writing the same
 * bytes through two BOs race as they would through one.
 */

#include <linux/capability.h>
#include <linux/dma-mapping.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_gem.h"
#include "refnpu_userptr.h"

/**
 * struct refnpu_userptr - pinned user memory of a userptr BO
 * @mm: address space the pages were pinned from and charged to (grabbed)
 * @pages: the pinned pages
 * @npages: number of pinned pages
 * @dirty: the device may write the pages: mark them dirty when unpinning
 */
struct refnpu_userptr {
	struct mm_struct *mm;
	struct page **pages;
	unsigned long npages;
	bool dirty;
};

/* Charge @npages pinned pages to @mm, within RLIMIT_MEMLOCK. */
static int refnpu_userptr_account(struct mm_struct *mm, unsigned long npages)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	s64 pinned = atomic64_add_return(npages, &mm->pinned_vm);

	if (pinned > limit && !capable(CAP_IPC_LOCK)) {
		atomic64_sub(npages, &mm->pinned_vm);
		return -ENOMEM;
	}

	return 0;
}

/* Pin every page of the range, or none. */
static int refnpu_userptr_pin(struct refnpu_userptr *up, unsigned long start,
			      bool write)
{
	unsigned int gup_flags = FOLL_LONGTERM | (write ? FOLL_WRITE : 0);
	unsigned long pinned = 0;
	int ret;

	while (pinned < up->npages) {
		ret = pin_user_pages_fast(start + (pinned << PAGE_SHIFT),
					  min_t(unsigned long, up->npages - pinned,
						SZ_64K),
					  gup_flags, up->pages + pinned);
		if (ret <= 0) {
			unpin_user_pages(up->pages, pinned);
			return ret ? ret : -EFAULT;
		}
		pinned += ret;
		if (fatal_signal_pending(current)) {
			unpin_user_pages(up->pages, pinned);
			return -EINTR;
		}
	}

	return 0;
}

static void refnpu_userptr_free(struct refnpu_userptr *up)
{
	unpin_user_pages_dirty_lock(up->pages, up->npages, up->dirty);
	atomic64_sub(up->npages, &up->mm->pinned_vm);
	mmdrop(up->mm);
	kvfree(up->pages);
	kfree(up);
}

/*
 * Pin @size bytes at @start and build their sg table for @dev (not
 * DMA-mapped yet: that needs the device, see refnpu_bo_userptr_ioctl()).
 * The pages are pinned for writing where the process may write them;
 * otherwise read-only, which only a BO the device reads (@device_ro) may
 * have: a writable BO of such memory fails with -EACCES rather than
 * becoming read-only behind the caller's back.
 */
static struct refnpu_userptr *
refnpu_userptr_get(struct device *dev, u64 start, u64 size, bool device_ro,
		   struct sg_table **sgtp)
{
	struct refnpu_userptr *up;
	struct sg_table *sgt;
	int ret;

	up = kzalloc(sizeof(*up), GFP_KERNEL);
	if (!up)
		return ERR_PTR(-ENOMEM);
	up->npages = size >> PAGE_SHIFT;
	up->pages = kvmalloc_array(up->npages, sizeof(*up->pages), GFP_KERNEL);
	if (!up->pages) {
		ret = -ENOMEM;
		goto err_free;
	}

	up->mm = current->mm;
	ret = refnpu_userptr_account(up->mm, up->npages);
	if (ret)
		goto err_free_pages;

	/*
	 * Pin for writing whenever the process may write, even for a BO the
	 * device only reads: a write pin breaks copy-on-write sharing now, so
	 * that the process's later writes land in the pinned pages.
	 */
	ret = refnpu_userptr_pin(up, start, true);
	if (ret == -EFAULT) {
		/*
		 * Not mapped (the read pin fails too: -EFAULT), or not
		 * writable: a read-only mapping, or one the kernel lets no
		 * device write long term (a shared mapping of a file whose
		 * dirty pages the file system tracks).
		 */
		ret = refnpu_userptr_pin(up, start, false);
		if (!ret && !device_ro) {
			unpin_user_pages(up->pages, up->npages);
			ret = -EACCES;
		}
	}
	if (ret)
		goto err_unaccount;

	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt) {
		ret = -ENOMEM;
		goto err_unpin;
	}
	/* No segment larger than the DMA layer maps at once (swiotlb). */
	ret = sg_alloc_table_from_pages_segment(sgt, up->pages, up->npages, 0,
						size,
						min_t(size_t, UINT_MAX & PAGE_MASK,
						      dma_max_mapping_size(dev)),
						GFP_KERNEL);
	if (ret)
		goto err_free_sgt;

	up->dirty = !device_ro;
	mmgrab(up->mm);
	*sgtp = sgt;
	return up;

err_free_sgt:
	kfree(sgt);
err_unpin:
	unpin_user_pages(up->pages, up->npages);
err_unaccount:
	atomic64_sub(up->npages, &up->mm->pinned_vm);
err_free_pages:
	kvfree(up->pages);
err_free:
	kfree(up);
	return ERR_PTR(ret);
}

/**
 * refnpu_userptr_release() - release the user memory of a userptr BO
 * @bo: BO being freed, no longer on the device's BO list
 *
 * Unmaps the pages for DMA (unless the device's removal did already),
 * unpins them, marking them dirty when the device could write them, and
 * uncharges them from the process that pinned them.
 */
void refnpu_userptr_release(struct refnpu_bo *bo)
{
	struct drm_gem_shmem_object *shmem = &bo->base;

	if (shmem->sgt) {
		dma_unmap_sgtable(shmem->base.dev->dev, shmem->sgt, bo->dma_dir,
				  bo->dma_attrs);
		sg_free_table(shmem->sgt);
		kfree(shmem->sgt);
		shmem->sgt = NULL;
	}
	refnpu_userptr_free(bo->userptr);
	bo->userptr = NULL;
}

/**
 * refnpu_userptr_is_of() - whether a userptr BO holds pages of a process
 * @bo: userptr BO
 * @mm: address space of the process
 *
 * The BO keeps the address space it pinned (mmgrab()), so a process that
 * came later cannot have the same one.
 *
 * Return: true when @bo's pages were pinned in @mm.
 */
bool refnpu_userptr_is_of(const struct refnpu_bo *bo,
			  const struct mm_struct *mm)
{
	return bo->userptr->mm == mm;
}

/**
 * refnpu_bo_userptr_ioctl() - DRM_IOCTL_REFNPU_BO_USERPTR
 * @drm: DRM device
 * @data: &struct drm_refnpu_bo_userptr
 * @file: DRM file
 *
 * Return: 0 or a negative errno, as documented in the uAPI header.
 */
int refnpu_bo_userptr_ioctl(struct drm_device *drm, void *data,
			    struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct drm_refnpu_bo_userptr *args = data;
	bool device_ro = args->flags & DRM_REFNPU_BO_DEVICE_RO;
	struct refnpu_mapping *map;
	struct drm_gem_object *obj;
	enum dma_data_direction dir;
	struct refnpu_userptr *up;
	struct sg_table *sgt;
	struct refnpu_bo *bo;
	u32 handle;
	u64 end;
	int ret, idx;

	if (args->flags & ~DRM_REFNPU_BO_DEVICE_RO || args->handle || args->va)
		return -EINVAL;
	if (!args->size || args->size > REFNPU_MAX_BO_SIZE ||
	    !PAGE_ALIGNED(args->size) || !PAGE_ALIGNED(args->user_ptr) ||
	    check_add_overflow(args->user_ptr, args->size, &end))
		return -EINVAL;

	/*
	 * Pin outside the drm_dev_enter() section: faulting the pages in may
	 * wait for as long as user space wants (userfaultfd), and unbinding
	 * the device waits for every such section.
	 */
	up = refnpu_userptr_get(drm->dev, args->user_ptr, args->size,
				device_ro, &sgt);
	if (IS_ERR(up))
		return PTR_ERR(up);
	dir = device_ro ? DMA_TO_DEVICE : DMA_BIDIRECTIONAL;

	if (!drm_dev_enter(drm, &idx)) {
		ret = -ENODEV;
		goto err_free;
	}

	ret = dma_map_sgtable(drm->dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
	if (ret)
		goto err_exit;

	obj = refnpu_gem_create_object(drm, args->size);
	if (IS_ERR(obj)) {
		dma_unmap_sgtable(drm->dev, sgt, dir, DMA_ATTR_SKIP_CPU_SYNC);
		ret = PTR_ERR(obj);
		goto err_exit;
	}
	/* No shmem file and no mmap offset: only the device maps it. */
	drm_gem_private_object_init(drm, obj, args->size);
	bo = to_refnpu_bo(obj);
	INIT_LIST_HEAD(&bo->base.madv_list);
	bo->base.sgt = sgt;
	bo->userptr = up;
	bo->dma_dir = dir;
	bo->dma_attrs = DMA_ATTR_SKIP_CPU_SYNC;
	bo->flags = device_ro ? DRM_REFNPU_BO_DEVICE_RO : 0;
	refnpu_gem_publish(bo);

	/*
	 * Map before the handle exists (see refnpu_bo_create_ioctl()): a
	 * thread closing the new handle at once cannot unmap it under us.
	 */
	map = refnpu_mapping_open(bo, rfile->ctx);
	if (IS_ERR(map)) {
		ret = PTR_ERR(map);
		goto out_put;
	}
	ret = drm_gem_handle_create(file, obj, &handle);
	if (!ret) {
		args->va = map->va;
		args->handle = handle;
	}
	refnpu_mapping_put(map);
	if (ret)
		goto out_put;

	refnpu_dbg(rfile->rdev, GEM, "ctx %u userptr bo %u size %llu va 0x%llx%s\n",
		   rfile->ctx->id, handle, args->size, args->va,
		   device_ro ? " ro" : "");
out_put:
	drm_gem_object_put(obj);
	drm_dev_exit(idx);
	return ret;

err_exit:
	drm_dev_exit(idx);
err_free:
	sg_free_table(sgt);
	kfree(sgt);
	refnpu_userptr_free(up);
	return ret;
}
