/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_GEM_H__
#define __REFNPU_GEM_H__

#include <linux/dma-direction.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>

#include <drm/drm_gem_shmem_helper.h>
#include <drm/drm_mm.h>

struct dma_buf;
struct dma_fence;
struct drm_device;
struct drm_file;
struct refnpu_ctx;
struct refnpu_device;
struct refnpu_userptr;

/**
 * struct refnpu_bo - a refnpu buffer object
 * @base: shmem GEM object, embedded
 * @flags: DRM_REFNPU_BO_* creation flags
 * @lock: protects @mappings
 * @mappings: &struct refnpu_mapping of every context the BO is mapped in
 * @last_fence: finished fence of the last job that listed the BO;
 *	protected by the BO's dma_resv lock
 * @link: entry in &refnpu_device.bo_list
 * @userptr: pinned user memory backing a userptr BO, else NULL
 * @dma_dir: direction of the DMA mapping in @base.sgt: DMA_TO_DEVICE for
 *	a read-only userptr BO, else DMA_BIDIRECTIONAL
 * @dma_attrs: attributes of that mapping, for the unmap: 0, or
 *	DMA_ATTR_SKIP_CPU_SYNC for a userptr BO (see refnpu_userptr.c)
 */
struct refnpu_bo {
	struct drm_gem_shmem_object base;
	u32 flags;
	struct mutex lock; /* protects mappings */
	struct list_head mappings;
	struct dma_fence *last_fence;
	struct list_head link;
	struct refnpu_userptr *userptr;
	enum dma_data_direction dma_dir;
	unsigned long dma_attrs;
};

/**
 * struct refnpu_mapping - a BO mapped into one context's address space
 * @refcount: one per GEM handle of the context's file on the BO, plus
 *	one per job that lists the BO; the mapping (and the BO's pages)
 *	stay in the device page tables until the last one is dropped
 * @bo: the BO; the mapping holds a GEM reference
 * @ctx: the context; the mapping holds a context reference
 * @node: device virtual address range, including the guard gap
 * @va: device virtual address of the BO
 * @link: entry in &refnpu_bo.mappings
 */
struct refnpu_mapping {
	struct kref refcount;
	struct refnpu_bo *bo;
	struct refnpu_ctx *ctx;
	struct drm_mm_node node;
	u64 va;
	struct list_head link;
};

static inline struct refnpu_bo *to_refnpu_bo(struct drm_gem_object *obj)
{
	return container_of(to_drm_gem_shmem_obj(obj), struct refnpu_bo, base);
}

struct drm_gem_object *refnpu_gem_create_object(struct drm_device *drm,
						size_t size);
void refnpu_gem_publish(struct refnpu_bo *bo);
void refnpu_bo_sync(struct refnpu_bo *bo, bool for_device);
struct drm_gem_object *refnpu_gem_prime_import(struct drm_device *drm,
					       struct dma_buf *dmabuf);
struct refnpu_mapping *refnpu_mapping_open(struct refnpu_bo *bo,
					   struct refnpu_ctx *ctx);
struct refnpu_mapping *refnpu_mapping_get(struct refnpu_bo *bo,
					  struct refnpu_ctx *ctx);
void refnpu_mapping_put(struct refnpu_mapping *map);
void refnpu_gem_unplug(struct refnpu_device *rdev);

int refnpu_bo_create_ioctl(struct drm_device *drm, void *data,
			   struct drm_file *file);
int refnpu_bo_info_ioctl(struct drm_device *drm, void *data,
			 struct drm_file *file);
int refnpu_bo_wait_ioctl(struct drm_device *drm, void *data,
			 struct drm_file *file);

#endif /* __REFNPU_GEM_H__ */
