/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __REFNPU_JOB_H__
#define __REFNPU_JOB_H__

#include <linux/list.h>
#include <linux/types.h>

#include <linux/workqueue.h>

#include <drm/gpu_scheduler.h>

struct dma_fence;
struct dma_fence_chain;
struct drm_device;
struct drm_file;
struct drm_gem_object;
struct drm_syncobj;
struct refnpu_ctx;
struct refnpu_device;
struct refnpu_file;
struct refnpu_hw_done;
struct refnpu_hw_fault;
struct refnpu_mapping;
struct refnpu_queue;

/**
 * struct refnpu_job - one submitted command buffer
 * @base: scheduler job, embedded
 * @rdev: device
 * @queue: hardware queue the job runs on
 * @ctx: context of the submitting file; the job holds a reference
 * @cmd_va: device virtual address of the command buffer
 * @cmd_size: size of the command buffer
 * @seq: sequence number in the queue, set when the job reaches the ring
 * @hw_fence: fence signalled by the completion interrupt; allocated at
 *	submit, initialised when the job reaches the ring
 * @hw_fence_init: @hw_fence was initialised (and is reference counted)
 * @stopped: the device reported that a reset stopped the job after it had
 *	started (refnpu_job_stopped()); recovery fails it instead of
 *	resubmitting it
 * @link: entry in &refnpu_queue.active while the job is in the ring
 * @bo_count: number of BOs of the job
 * @bos: the BOs, each with a GEM reference
 * @maps: the BOs' mappings in @ctx, each with a reference
 * @bo_flags: DRM_REFNPU_BO_REF_* of each BO
 * @in_count: number of explicit in-fences
 * @in_fences: the explicit in-fences, checked for errors before running
 * @entity_fence_context: fence context of the submitting entity: its own
 *	earlier jobs' failures do not cancel this one
 * @out_count: number of out-syncobjs
 * @out_syncobjs: out-syncobjs, each with a reference
 * @out_points: timeline point of each out-syncobj, 0 for binary
 * @out_chains: pre-allocated chain nodes for the timeline points
 * @free_work: drops what the job holds, outside the fence signalling path
 */
struct refnpu_job {
	struct drm_sched_job base;
	struct refnpu_device *rdev;
	struct refnpu_queue *queue;
	struct refnpu_ctx *ctx;
	u64 cmd_va;
	u64 cmd_size;
	u64 seq;
	struct dma_fence *hw_fence;
	bool hw_fence_init;
	bool stopped;
	struct list_head link;
	u32 bo_count;
	struct drm_gem_object **bos;
	struct refnpu_mapping **maps;
	u32 *bo_flags;
	u32 in_count;
	struct dma_fence **in_fences;
	u64 entity_fence_context;
	u32 out_count;
	struct drm_syncobj **out_syncobjs;
	u64 *out_points;
	struct dma_fence_chain **out_chains;
	struct work_struct free_work;
};

int refnpu_job_init(struct refnpu_device *rdev);
void refnpu_job_fini(struct refnpu_device *rdev);
void refnpu_job_cancel_all(struct refnpu_device *rdev);
int refnpu_job_file_open(struct refnpu_file *rfile);
void refnpu_job_file_close(struct refnpu_file *rfile);

void refnpu_job_done(struct refnpu_queue *q, const struct refnpu_hw_done *done);
void refnpu_job_stopped(struct refnpu_queue *q,
			const struct refnpu_hw_done *done);
void refnpu_fault_report(struct refnpu_device *rdev,
			 const struct refnpu_hw_fault *fault);
void refnpu_queue_error(struct refnpu_device *rdev, unsigned int queue);
void refnpu_device_reset_async(struct refnpu_device *rdev);
int refnpu_hw_status_to_errno(u32 status);

int refnpu_submit_ioctl(struct drm_device *drm, void *data,
			struct drm_file *file);

extern unsigned int refnpu_job_timeout_ms;
extern unsigned int refnpu_hang_limit;

#endif /* __REFNPU_JOB_H__ */
