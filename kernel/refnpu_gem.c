// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Buffer objects: drm_gem_shmem objects, mapped into the device address
 * space of every file holding a handle on them.
 *
 * A BO gets its pages and a device mapping when a file gets a handle on
 * it (creation or PRIME import), through the GEM open callback; the
 * mapping is reference counted by handles and by the jobs listing the BO,
 * so pages stay mapped until the last job using them finished, even when
 * user space closed the handle earlier.
 */

#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/module.h>
#include <linux/sched.h>

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_prime.h>
#include <drm/drm_utils.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_gem.h"
#include "refnpu_mmu.h"
#include "refnpu_userptr.h"

static const struct drm_gem_object_funcs refnpu_gem_funcs;

/**
 * refnpu_gem_create_object() - allocate a refnpu BO for the shmem helpers
 * @drm: DRM device
 * @size: size of the object
 *
 * Called by drm_gem_shmem_create() and by PRIME import.
 *
 * Return: the embedded GEM object, or an ERR_PTR().
 */
struct drm_gem_object *refnpu_gem_create_object(struct drm_device *drm,
						size_t size)
{
	struct refnpu_bo *bo;

	bo = kzalloc(sizeof(*bo), GFP_KERNEL);
	if (!bo)
		return ERR_PTR(-ENOMEM);

	/*
	 * Not on the device's BO list yet: the shmem helper's error paths
	 * kfree() the object without calling ->free, so only a complete BO
	 * may be listed (refnpu_gem_publish()).
	 */
	mutex_init(&bo->lock);
	INIT_LIST_HEAD(&bo->mappings);
	INIT_LIST_HEAD(&bo->link);
	/* The device may write any page at any time. */
	bo->base.pages_mark_dirty_on_put = true;
	bo->base.base.funcs = &refnpu_gem_funcs;
	bo->dma_dir = DMA_BIDIRECTIONAL;

	return &bo->base.base;
}

/**
 * refnpu_gem_publish() - list a complete BO on its device
 * @bo: BO whose GEM object is initialised (it has a reservation object)
 *
 * Called by the paths that create a BO (creation, userptr, PRIME import)
 * inside a drm_dev_enter() section, so that refnpu_gem_unplug() either
 * sees the BO or runs after it was listed. Idempotent: importing a BO
 * exported by the same device gives back the listed BO itself.
 */
void refnpu_gem_publish(struct refnpu_bo *bo)
{
	struct refnpu_device *rdev = to_refnpu(bo->base.base.dev);

	mutex_lock(&rdev->bo_lock);
	if (list_empty(&bo->link))
		list_add_tail(&bo->link, &rdev->bo_list);
	mutex_unlock(&rdev->bo_lock);
}

static void refnpu_gem_free(struct drm_gem_object *obj)
{
	struct refnpu_device *rdev = to_refnpu(obj->dev);
	struct refnpu_bo *bo = to_refnpu_bo(obj);

	mutex_lock(&rdev->bo_lock);
	list_del_init(&bo->link);
	mutex_unlock(&rdev->bo_lock);

	drm_WARN_ON(obj->dev, !list_empty(&bo->mappings));
	dma_fence_put(bo->last_fence);
	mutex_destroy(&bo->lock);
	if (bo->userptr)
		refnpu_userptr_release(bo);
	drm_gem_shmem_free(&bo->base);
}

/*
 * The exporter mapped an imported BO's pages for our device, and keeps that
 * mapping cached in the attachment until it is detached (exporters set
 * cache_sgt_mapping), so unmapping it is not enough. Swap the attachment
 * for a new one that was never mapped, and detach the old one: the mapping
 * goes now, while the BO keeps a valid attachment (and its reference on
 * the dma-buf) until drm_prime_gem_destroy() detaches it at free time.
 */
static void refnpu_gem_unplug_import(struct refnpu_bo *bo)
{
	struct drm_gem_object *obj = &bo->base.base;
	struct dma_buf_attachment *old = obj->import_attach, *new;
	struct dma_buf *dmabuf = old->dmabuf;

	new = dma_buf_attach(dmabuf, old->dev);
	if (IS_ERR(new)) {
		drm_warn(obj->dev, "cannot release an import's DMA mapping: %pe\n",
			 new);
		return;
	}

	mutex_lock(&bo->lock);
	if (bo->base.sgt)
		dma_buf_unmap_attachment_unlocked(old, bo->base.sgt,
						  DMA_BIDIRECTIONAL);
	bo->base.sgt = NULL;
	WRITE_ONCE(obj->import_attach, new);
	mutex_unlock(&bo->lock);

	dma_buf_detach(dmabuf, old);
}

/**
 * refnpu_gem_unplug() - release every BO's DMA mapping of a removed device
 * @rdev: device, unplugged and quiesced
 *
 * BOs of files still open outlive the device, but their DMA mappings must
 * not outlive the driver's binding to it (with an IOMMU, the translations
 * would dangle). The pages stay: user space can still read them through
 * its CPU mappings until it closes the file. Imported BOs give their
 * attachment's mapping back to the exporter; the attachment itself goes
 * with the BO.
 */
void refnpu_gem_unplug(struct refnpu_device *rdev)
{
	struct refnpu_bo *bo;

	mutex_lock(&rdev->bo_lock);
	list_for_each_entry(bo, &rdev->bo_list, link) {
		struct drm_gem_shmem_object *shmem = &bo->base;

		if (drm_gem_is_imported(&shmem->base)) {
			refnpu_gem_unplug_import(bo);
			continue;
		}
		dma_resv_lock(shmem->base.resv, NULL);
		if (shmem->sgt) {
			dma_unmap_sgtable(rdev->drm.dev, shmem->sgt,
					  bo->dma_dir, bo->dma_attrs);
			sg_free_table(shmem->sgt);
			kfree(shmem->sgt);
			shmem->sgt = NULL;
		}
		dma_resv_unlock(shmem->base.resv);
	}
	mutex_unlock(&rdev->bo_lock);
}

static struct refnpu_mapping *refnpu_mapping_find(struct refnpu_bo *bo,
						  struct refnpu_ctx *ctx)
{
	struct refnpu_mapping *map;

	lockdep_assert_held(&bo->lock);

	list_for_each_entry(map, &bo->mappings, link)
		if (map->ctx == ctx)
			return map;

	return NULL;
}

/**
 * refnpu_mapping_get() - take a reference on a BO's mapping in a context
 * @bo: BO
 * @ctx: context
 *
 * Return: the mapping, or NULL when the BO is not mapped in @ctx (the
 * context's file holds no handle on it).
 */
struct refnpu_mapping *refnpu_mapping_get(struct refnpu_bo *bo,
					  struct refnpu_ctx *ctx)
{
	struct refnpu_mapping *map;

	mutex_lock(&bo->lock);
	map = refnpu_mapping_find(bo, ctx);
	if (map)
		kref_get(&map->refcount);
	mutex_unlock(&bo->lock);

	return map;
}

/* Called by kref_put_mutex() with the BO's lock held; drops it. */
static void refnpu_mapping_release(struct kref *kref)
{
	struct refnpu_mapping *map =
		container_of(kref, struct refnpu_mapping, refcount);
	struct refnpu_bo *bo = map->bo;
	struct refnpu_ctx *ctx = map->ctx;

	list_del(&map->link);
	mutex_unlock(&bo->lock);

	/*
	 * A quarantined mapping keeps its BO, its device address and so its
	 * context until a device reset.
	 */
	if (!refnpu_mmu_unmap(ctx, map)) {
		drm_gem_object_put(&bo->base.base);
		kfree(map);
		refnpu_ctx_put(ctx);
	}
}

/**
 * refnpu_mapping_put() - drop a reference on a mapping
 * @map: mapping, may be NULL
 *
 * The last reference unmaps the BO from the context and invalidates the
 * device TLB. May sleep.
 */
void refnpu_mapping_put(struct refnpu_mapping *map)
{
	if (map)
		kref_put_mutex(&map->refcount, refnpu_mapping_release,
			       &map->bo->lock);
}

static struct sg_table *refnpu_gem_sgt(struct refnpu_bo *bo)
{
	struct drm_gem_object *obj = &bo->base.base;

	/* PRIME import set up the sg table from the exporter's attachment. */
	if (drm_gem_is_imported(obj))
		return bo->base.sgt ? bo->base.sgt : ERR_PTR(-EINVAL);
	/* Userptr BOs are DMA-mapped at creation, unmapped by unplug. */
	if (bo->userptr)
		return bo->base.sgt ? bo->base.sgt : ERR_PTR(-ENODEV);

	return drm_gem_shmem_get_pages_sgt(&bo->base);
}

/**
 * refnpu_mapping_open() - map a BO into a context, or reference its mapping
 * @bo: BO
 * @ctx: context
 *
 * Takes one more reference on the BO's mapping in @ctx, creating the
 * mapping (and its device VA) when there is none. The GEM open hook takes
 * the reference of each handle this way; an ioctl that creates a BO takes
 * one of its own before it publishes the handle, so that another thread
 * closing the new handle at once cannot unmap the BO under it.
 *
 * Return: the mapping, or an ERR_PTR() on failure.
 */
struct refnpu_mapping *refnpu_mapping_open(struct refnpu_bo *bo,
					   struct refnpu_ctx *ctx)
{
	struct drm_gem_object *obj = &bo->base.base;
	bool quarantined = false;
	struct refnpu_mapping *map;
	struct sg_table *sgt;
	int ret, idx;

	mutex_lock(&bo->lock);
	map = refnpu_mapping_find(bo, ctx);
	if (map) {
		kref_get(&map->refcount);
		mutex_unlock(&bo->lock);
		return map;
	}

	/*
	 * A new mapping DMA-maps the pages: not after the device's removal
	 * (refnpu_gem_unplug() released every DMA mapping already). This
	 * covers every way to a new handle, GEM_OPEN and PRIME included.
	 */
	if (!drm_dev_enter(obj->dev, &idx)) {
		ret = -ENODEV;
		goto err_unlock;
	}

	sgt = refnpu_gem_sgt(bo);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto err_exit;
	}

	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map) {
		ret = -ENOMEM;
		goto err_exit;
	}
	kref_init(&map->refcount);
	map->bo = bo;
	map->ctx = ctx;

	ret = refnpu_mmu_map(ctx, map, sgt, obj->size,
			     !(bo->flags & DRM_REFNPU_BO_DEVICE_RO),
			     &quarantined);
	if (ret) {
		/* Else the quarantine owns it (refnpu_mmu_map()). */
		if (!quarantined)
			kfree(map);
		goto err_exit;
	}

	drm_gem_object_get(obj);
	refnpu_ctx_get(ctx);
	list_add_tail(&map->link, &bo->mappings);
	drm_dev_exit(idx);
	mutex_unlock(&bo->lock);

	return map;

err_exit:
	drm_dev_exit(idx);
err_unlock:
	mutex_unlock(&bo->lock);
	return ERR_PTR(ret);
}

/*
 * A file got a handle on the BO: the handle holds a mapping reference.
 *
 * A userptr BO's pages belong to the process that pinned them: as PRIME
 * export is refused for it (refnpu_gem_prime_export()), so is a handle
 * made by another process, which only DRM_IOCTL_GEM_OPEN of a global name
 * could make. The core has no hook to refuse GEM_FLINK itself.
 */
static int refnpu_gem_open(struct drm_gem_object *obj, struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct refnpu_bo *bo = to_refnpu_bo(obj);

	if (bo->userptr && !refnpu_userptr_is_of(bo, current->mm))
		return -EOPNOTSUPP;

	return PTR_ERR_OR_ZERO(refnpu_mapping_open(bo, rfile->ctx));
}

static void refnpu_gem_close(struct drm_gem_object *obj, struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct refnpu_bo *bo = to_refnpu_bo(obj);
	struct refnpu_mapping *map;

	mutex_lock(&bo->lock);
	map = refnpu_mapping_find(bo, rfile->ctx);
	mutex_unlock(&bo->lock);

	/* Drops the handle's reference; open() took it. */
	if (!drm_WARN_ON(obj->dev, !map))
		refnpu_mapping_put(map);
}

static enum drm_gem_object_status refnpu_gem_status(struct drm_gem_object *obj)
{
	struct refnpu_bo *bo = to_refnpu_bo(obj);

	/* Called under a spinlock: a racy peek is all fdinfo needs. */
	if (READ_ONCE(bo->base.pages) || drm_gem_is_imported(obj) ||
	    bo->userptr)
		return DRM_GEM_OBJECT_RESIDENT;

	return 0;
}

/* Userptr BOs are not exported: their pages belong to one process. */
static struct dma_buf *refnpu_gem_prime_export(struct drm_gem_object *obj,
					       int flags)
{
	if (to_refnpu_bo(obj)->userptr)
		return ERR_PTR(-EOPNOTSUPP);

	return drm_gem_prime_export(obj, flags);
}

static const struct drm_gem_object_funcs refnpu_gem_funcs = {
	.free = refnpu_gem_free,
	.export = refnpu_gem_prime_export,
	.open = refnpu_gem_open,
	.close = refnpu_gem_close,
	.print_info = drm_gem_shmem_object_print_info,
	.pin = drm_gem_shmem_object_pin,
	.unpin = drm_gem_shmem_object_unpin,
	.get_sg_table = drm_gem_shmem_object_get_sg_table,
	.vmap = drm_gem_shmem_object_vmap,
	.vunmap = drm_gem_shmem_object_vunmap,
	.mmap = drm_gem_shmem_object_mmap,
	.status = refnpu_gem_status,
	.vm_ops = &drm_gem_shmem_vm_ops,
};

/**
 * refnpu_bo_sync() - make a BO's memory and the device's view of it agree
 * @bo: BO listed by a job, so mapped (its DMA mapping cannot go meanwhile)
 * @for_device: before the device reads it (true), or after the device
 *	wrote it, before the CPU reads it (false)
 *
 * Streaming DMA mappings need this whenever the DMA layer bounces
 * (swiotlb) or the CPU caches are not coherent with the device; elsewhere
 * the DMA API makes it a no-op. Imported BOs are the exporter's: an
 * importer may use only the DMA addresses of the table it was given (the
 * dma-buf core mangles its page links under CONFIG_DMABUF_DEBUG, and
 * syncing needs them), so keeping an import coherent is the exporter's
 * job. Never sleeps: called from the completion interrupt too.
 */
void refnpu_bo_sync(struct refnpu_bo *bo, bool for_device)
{
	struct device *dev = bo->base.base.dev->dev;
	struct sg_table *sgt = bo->base.sgt;

	if (drm_gem_is_imported(&bo->base.base) || !sgt)
		return;
	if (for_device)
		dma_sync_sgtable_for_device(dev, sgt, bo->dma_dir);
	else
		dma_sync_sgtable_for_cpu(dev, sgt, bo->dma_dir);
}

/**
 * refnpu_gem_prime_import() - &drm_driver.gem_prime_import
 * @drm: DRM device
 * @dmabuf: dma-buf to import
 *
 * The core's import attaches to the dma-buf and maps it for our device:
 * not after the device's removal. The imported BO is listed for
 * refnpu_gem_unplug() before the removal can proceed.
 *
 * Return: the GEM object, or an ERR_PTR().
 */
struct drm_gem_object *refnpu_gem_prime_import(struct drm_device *drm,
					       struct dma_buf *dmabuf)
{
	struct drm_gem_object *obj;
	int idx;

	if (!drm_dev_enter(drm, &idx))
		return ERR_PTR(-ENODEV);

	obj = drm_gem_prime_import(drm, dmabuf);
	if (!IS_ERR(obj))
		refnpu_gem_publish(to_refnpu_bo(obj));

	drm_dev_exit(idx);
	return obj;
}

/**
 * refnpu_bo_create_ioctl() - DRM_IOCTL_REFNPU_BO_CREATE
 * @drm: DRM device
 * @data: &struct drm_refnpu_bo_create
 * @file: DRM file
 *
 * Return: 0 or a negative errno, as documented in the uAPI header.
 */
int refnpu_bo_create_ioctl(struct drm_device *drm, void *data,
			   struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct drm_refnpu_bo_create *args = data;
	struct drm_gem_shmem_object *shmem;
	struct refnpu_mapping *map;
	struct refnpu_bo *bo;
	u32 handle;
	int ret, idx;

	if (args->flags & ~DRM_REFNPU_BO_FLAGS || args->handle || args->va)
		return -EINVAL;
	if (!args->size || args->size > REFNPU_MAX_BO_SIZE)
		return -EINVAL;

	if (!drm_dev_enter(drm, &idx))
		return -ENODEV;

	shmem = drm_gem_shmem_create(drm, PAGE_ALIGN(args->size));
	if (IS_ERR(shmem)) {
		/*
		 * shmem reports a failed inode allocation as -ENOSPC; here
		 * that means out of memory (-ENOSPC is the device address
		 * space being full).
		 */
		ret = PTR_ERR(shmem) == -ENOSPC ? -ENOMEM : PTR_ERR(shmem);
		goto out_exit;
	}

	bo = container_of(shmem, struct refnpu_bo, base);
	bo->flags = args->flags;
	shmem->map_wc = !!(args->flags & DRM_REFNPU_BO_WC);
	refnpu_gem_publish(bo);

	/*
	 * Map the BO before its handle exists: once published, another
	 * thread may close the handle at once, and the mapping must outlive
	 * it until its VA is reported. The handle takes a reference of its
	 * own through refnpu_gem_open().
	 */
	map = refnpu_mapping_open(bo, rfile->ctx);
	if (IS_ERR(map)) {
		ret = PTR_ERR(map);
		goto out;
	}
	ret = drm_gem_handle_create(file, &shmem->base, &handle);
	if (!ret) {
		args->va = map->va;
		args->handle = handle;
	}
	refnpu_mapping_put(map);
	if (ret)
		goto out;

	refnpu_dbg(rfile->rdev, GEM, "ctx %u bo %u size %zu va 0x%llx\n",
		   rfile->ctx->id, handle, shmem->base.size, args->va);
out:
	drm_gem_object_put(&shmem->base);
out_exit:
	drm_dev_exit(idx);
	return ret;
}

/**
 * refnpu_bo_info_ioctl() - DRM_IOCTL_REFNPU_BO_INFO
 * @drm: DRM device
 * @data: &struct drm_refnpu_bo_info
 * @file: DRM file
 *
 * Return: 0 or a negative errno, as documented in the uAPI header.
 */
int refnpu_bo_info_ioctl(struct drm_device *drm, void *data,
			 struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct drm_refnpu_bo_info *args = data;
	struct refnpu_mapping *map;
	struct drm_gem_object *obj;
	struct refnpu_bo *bo;
	int ret = 0;

	if (args->pad)
		return -EINVAL;

	obj = drm_gem_object_lookup(file, args->handle);
	if (!obj)
		return -ENOENT;
	bo = to_refnpu_bo(obj);

	/* The handle may have been closed since the lookup: it is gone. */
	map = refnpu_mapping_get(bo, rfile->ctx);
	if (!map) {
		ret = -ENOENT;
		goto out;
	}

	args->flags = bo->flags;
	args->va = map->va;
	args->size = obj->size;
	args->mmap_offset = drm_vma_node_offset_addr(&obj->vma_node);
	refnpu_mapping_put(map);
out:
	drm_gem_object_put(obj);
	return ret;
}

/**
 * refnpu_bo_wait_ioctl() - DRM_IOCTL_REFNPU_BO_WAIT
 * @drm: DRM device
 * @data: &struct drm_refnpu_bo_wait
 * @file: DRM file
 *
 * Return: 0 or a negative errno, as documented in the uAPI header.
 */
int refnpu_bo_wait_ioctl(struct drm_device *drm, void *data,
			 struct drm_file *file)
{
	struct drm_refnpu_bo_wait *args = data;
	struct dma_fence *fence;
	struct drm_gem_object *obj;
	unsigned long timeout;
	long ret;

	if (args->flags || args->pad)
		return -EINVAL;

	obj = drm_gem_object_lookup(file, args->handle);
	if (!obj)
		return -ENOENT;

	timeout = drm_timeout_abs_to_jiffies(args->timeout_ns);
	ret = dma_resv_wait_timeout(obj->resv, DMA_RESV_USAGE_BOOKKEEP, true,
				    timeout);
	if (!ret)
		ret = -ETIMEDOUT;
	else if (ret > 0)
		ret = 0;

	if (!ret) {
		dma_resv_lock(obj->resv, NULL);
		fence = dma_fence_get(to_refnpu_bo(obj)->last_fence);
		dma_resv_unlock(obj->resv);

		args->status = fence ? dma_fence_get_status(fence) : 0;
		if (args->status > 0)
			args->status = 0;
		dma_fence_put(fence);
	}

	drm_gem_object_put(obj);
	return ret;
}
