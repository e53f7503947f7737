// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Jobs: submission, scheduling, completion and recovery.
 *
 * Life of a job: the SUBMIT ioctl validates the arguments, looks up the
 * BOs and takes a reference on each BO's mapping in the file's context,
 * resolves the in-syncobjs into scheduler dependencies, locks the BOs'
 * reservation objects to add the implicit dependencies and the job's
 * finished fence, and pushes the job to the file's scheduler entity for
 * the queue and priority. When its dependencies signalled, the queue's
 * drm_sched calls refnpu_job_run(), which writes the job into the
 * hardware ring through the backend and returns the hardware fence. The
 * completion interrupt reports the job's completion record to
 * refnpu_job_done(), which sets the fence error from the hardware status
 * and signals the hardware fence; the scheduler then signals the finished
 * fence (seen by syncobjs and dma_resv users) and frees the job, dropping
 * its BO mappings and its context.
 */

#include <linux/dma-fence-chain.h>
#include <linux/dma-resv.h>
#include <linux/overflow.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <drm/drm_drv.h>
#include <drm/drm_exec.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_managed.h>
#include <drm/drm_syncobj.h>
#include <uapi/drm/refnpu_accel.h>

#include "refnpu_drv.h"
#include "refnpu_engine.h"
#include "refnpu_gem.h"
#include "refnpu_hw_ops.h"
#include "refnpu_job.h"
#include "refnpu_mmu.h"
#include "refnpu_trace.h"

unsigned int refnpu_job_timeout_ms = 5000;
module_param_named(job_timeout_ms, refnpu_job_timeout_ms, uint, 0444);
MODULE_PARM_DESC(job_timeout_ms,
		 "Time after which a running job is stopped and its queue reset, in ms; 0: never (default: 5000)");

unsigned int refnpu_hang_limit = 3;
module_param_named(hang_limit, refnpu_hang_limit, uint, 0444);
MODULE_PARM_DESC(hang_limit,
		 "Timed-out jobs after which a context is banned (default: 3, minimum 1)");

/* Largest element stride accepted in submit arrays. */
#define REFNPU_MAX_STRIDE	4096

static inline struct refnpu_job *to_refnpu_job(struct drm_sched_job *sched_job)
{
	return container_of(sched_job, struct refnpu_job, base);
}

static u32 refnpu_dev_index(struct refnpu_device *rdev)
{
	return rdev->drm.accel ? rdev->drm.accel->index : 0;
}

static void refnpu_trace_job(struct refnpu_job *job,
			     void (*trace)(u32, u32, u32, u64, u64, u64))
{
	trace(refnpu_dev_index(job->rdev), job->queue->id, job->ctx->id,
	      job->seq, job->cmd_va, job->cmd_size);
}

/**
 * refnpu_hw_status_to_errno() - the errno a job fails with
 * @status: REFNPU_ERR_* code of the job's completion record
 *
 * The rule, documented in the uAPI header: a device MMU fault (unmapped
 * address or permission) is -EFAULT; a malformed or unsupported command is
 * -EINVAL; a failed DMA transfer or table walk is -EIO; the device's
 * watchdog is -ETIMEDOUT; a job a reset stopped after it had started is
 * -EAGAIN (it ran partly: what it writes may be half written). Anything
 * else means the driver or the device misbehaved, reported as -EIO.
 *
 * Return: 0 for REFNPU_ERR_NONE, else a negative errno.
 */
int refnpu_hw_status_to_errno(u32 status)
{
	switch (status) {
	case REFNPU_ERR_NONE:
		return 0;
	case REFNPU_ERR_MMU_UNMAPPED:
	case REFNPU_ERR_MMU_READ_PERM:
	case REFNPU_ERR_MMU_WRITE_PERM:
		return -EFAULT;
	case REFNPU_ERR_MALFORMED:
	case REFNPU_ERR_UNSUPPORTED:
		return -EINVAL;
	case REFNPU_ERR_TIMEOUT:
		return -ETIMEDOUT;
	case REFNPU_ERR_ABORTED:
		return -EAGAIN;
	case REFNPU_ERR_MMU_WALK:
	case REFNPU_ERR_DMA:
	default:
		return -EIO;
	}
}

static const char *refnpu_fence_get_driver_name(struct dma_fence *fence)
{
	return DRIVER_NAME;
}

static const char *refnpu_fence_get_timeline_name(struct dma_fence *fence)
{
	struct refnpu_queue *q;

	/*
	 * A fence may outlive its device (a sync_file, a foreign driver's
	 * dependency), but only signalled: the device is released after
	 * its last job. Do not reach the queue through a signalled fence.
	 */
	if (test_bit(DMA_FENCE_FLAG_SIGNALED_BIT, &fence->flags))
		return "signaled";

	q = container_of(fence->lock, struct refnpu_queue, lock);
	return q->name;
}

static const struct dma_fence_ops refnpu_fence_ops = {
	.get_driver_name = refnpu_fence_get_driver_name,
	.get_timeline_name = refnpu_fence_get_timeline_name,
};

static void refnpu_job_put_resources(struct refnpu_job *job)
{
	u32 i;

	for (i = 0; i < job->bo_count; i++) {
		if (job->maps)
			refnpu_mapping_put(job->maps[i]);
		if (job->bos[i])
			drm_gem_object_put(job->bos[i]);
	}
	for (i = 0; i < job->in_count; i++)
		dma_fence_put(job->in_fences[i]);
	for (i = 0; i < job->out_count; i++) {
		if (job->out_syncobjs[i])
			drm_syncobj_put(job->out_syncobjs[i]);
		dma_fence_chain_free(job->out_chains[i]);
	}

	if (job->hw_fence_init)
		dma_fence_put(job->hw_fence);
	else
		kfree(job->hw_fence);

	refnpu_ctx_put(job->ctx);

	kvfree(job->bos);
	kvfree(job->maps);
	kvfree(job->bo_flags);
	kfree(job->in_fences);
	kfree(job->out_syncobjs);
	kfree(job->out_points);
	kfree(job->out_chains);
	kfree(job);
}

/*
 * Fence signalling rules (Documentation/driver.rst, "Locking and fence
 * signalling"): run_job, the completion path, the timeout handler and
 * free_job are on the path that signals job fences, so they run between
 * dma_fence_begin_signalling() and dma_fence_end_signalling(), and lockdep
 * checks that nothing there allocates memory that could recurse into
 * reclaim, takes a dma_resv lock, or takes a lock held elsewhere around
 * such an allocation. What a finished job holds (BO mappings, GEM and
 * context references) is therefore dropped from a work item.
 */
static struct dma_fence *__refnpu_job_run(struct refnpu_job *job)
{
	struct drm_sched_job *sched_job = &job->base;
	struct refnpu_queue *q = job->queue;
	struct refnpu_device *rdev = job->rdev;
	struct refnpu_hw_job hw;
	unsigned long flags;
	int idx;
	u32 i;

	/* Killed entity or failed dependency: keep the existing error. */
	if (unlikely(sched_job->s_fence->finished.error))
		return NULL;

	/*
	 * A failed in-fence cancels the job, except one of an earlier job of
	 * the same entity (file, queue and priority): that one is ordered
	 * before this job anyway, the scheduler does not wait for it, and
	 * whether it has failed yet would depend on timing (uAPI header).
	 */
	for (i = 0; i < job->in_count; i++) {
		struct dma_fence *f = dma_fence_chain_contained(job->in_fences[i]);
		u64 ectx = job->entity_fence_context;

		if (f->context == ectx || f->context == ectx + 1)
			continue;
		if (f->error)
			return ERR_PTR(-ECANCELED);
	}

	if (READ_ONCE(job->ctx->banned))
		return ERR_PTR(-ECANCELED);

	/* Recovery stops every scheduler around a change of this. */
	if (READ_ONCE(rdev->wedged))
		return ERR_PTR(-EIO);

	if (!drm_dev_enter(&rdev->drm, &idx))
		return ERR_PTR(-ENODEV);

	/* What the CPU wrote reaches the device's view (swiotlb). */
	for (i = 0; i < job->bo_count; i++)
		refnpu_bo_sync(to_refnpu_bo(job->bos[i]), true);

	spin_lock_irqsave(&q->lock, flags);
	job->seq = q->next_seq++;
	dma_fence_init(job->hw_fence, &refnpu_fence_ops, &q->lock,
		       q->fence_context, job->seq);
	job->hw_fence_init = true;
	list_add_tail(&job->link, &q->active);

	hw.ctx_id = job->ctx->id;
	hw.seq = job->seq;
	hw.cmd_va = job->cmd_va;
	hw.cmd_size = job->cmd_size;
	rdev->hw_ops->queue_submit(rdev, q->id, &hw);
	spin_unlock_irqrestore(&q->lock, flags);

	drm_dev_exit(idx);

	atomic64_inc(&q->stats.submitted);
	refnpu_trace_job(job, trace_refnpu_job_run);

	return dma_fence_get(job->hw_fence);
}

static struct dma_fence *refnpu_job_run(struct drm_sched_job *sched_job)
{
	bool cookie = dma_fence_begin_signalling();
	struct dma_fence *fence = __refnpu_job_run(to_refnpu_job(sched_job));

	dma_fence_end_signalling(cookie);
	return fence;
}

/* Signal a job that is in the ring without running it (further). */
static void refnpu_job_abort_locked(struct refnpu_job *job, int error)
{
	lockdep_assert_held(&job->queue->lock);

	dma_fence_set_error(job->hw_fence, error);
	list_del_init(&job->link);
	dma_fence_signal_locked(job->hw_fence);
}

static struct refnpu_job *refnpu_job_find(struct refnpu_queue *q, u64 seq)
{
	struct refnpu_job *job;

	list_for_each_entry(job, &q->active, link)
		if (job->seq == seq)
			return job;
	return NULL;
}

/* Account the device time of a job's completion record; returns it. */
static u64 refnpu_job_account(struct refnpu_job *job,
			      const struct refnpu_hw_done *done)
{
	struct refnpu_device *rdev = job->rdev;
	struct refnpu_queue *q = job->queue;
	u64 busy_ns = 0;

	if (done->end_ts > done->start_ts && rdev->info.timestamp_freq)
		busy_ns = mul_u64_u32_div(done->end_ts - done->start_ts,
					  NSEC_PER_SEC,
					  rdev->info.timestamp_freq);
	atomic64_add(busy_ns, &job->ctx->busy_ns[q->id]);
	atomic64_add(busy_ns, &q->stats.busy_ns);
	return busy_ns;
}

/**
 * refnpu_job_stopped() - a reset stopped a job that had started
 * @q: queue
 * @done: the job's completion record, status REFNPU_ERR_ABORTED
 *
 * Called by the backend after a queue or device reset, with @q->lock
 * held, for the record the device writes for the job it had fetched and
 * not finished (Documentation/hardware.rst, "Reset"). The job may have
 * written part of its output, so it must not run again: recovery fails
 * it (refnpu_queue_resubmit()) rather than resubmitting it.
 */
void refnpu_job_stopped(struct refnpu_queue *q,
			const struct refnpu_hw_done *done)
{
	struct refnpu_job *job;

	lockdep_assert_held(&q->lock);

	job = refnpu_job_find(q, done->seq);
	if (!job) {
		refnpu_err_ratelimited(q->rdev, "queue %u: reset record of unknown job %llu\n",
				       q->id, done->seq);
		return;
	}

	refnpu_job_account(job, done);
	job->stopped = true;
	refnpu_dbg(q->rdev, RESET, "queue %u job %llu ctx %u stopped by the reset\n",
		   q->id, job->seq, job->ctx->id);
}

/**
 * refnpu_job_done() - a job completed on the hardware
 * @q: queue
 * @done: the job's completion record
 *
 * Called by the backend's completion interrupt handler (or its polling
 * after a suspected lost interrupt), with @q->lock held, once per
 * completed job in ring order.
 */
void refnpu_job_done(struct refnpu_queue *q, const struct refnpu_hw_done *done)
{
	struct refnpu_device *rdev = q->rdev;
	struct refnpu_job *job;
	u64 busy_ns;
	int err;
	u32 i;

	lockdep_assert_held(&q->lock);

	job = refnpu_job_find(q, done->seq);
	if (!job) {
		refnpu_err_ratelimited(rdev, "queue %u: completion of unknown job %llu\n",
				       q->id, done->seq);
		return;
	}

	if (job != list_first_entry(&q->active, struct refnpu_job, link))
		refnpu_err_ratelimited(rdev, "queue %u: job %llu completed out of order\n",
				       q->id, job->seq);

	busy_ns = refnpu_job_account(job, done);

	err = refnpu_hw_status_to_errno(done->status);
	if (err) {
		atomic64_inc(&q->stats.failed);
		if (err == -EFAULT || err == -EIO)
			atomic64_inc(&job->ctx->faults);
		refnpu_dbg(rdev, JOB, "queue %u job %llu ctx %u failed: status %u va 0x%llx\n",
			   q->id, job->seq, job->ctx->id, done->status,
			   done->fault_va);
		dma_fence_set_error(job->hw_fence, err);
	} else {
		atomic64_inc(&q->stats.completed);
	}

	trace_refnpu_job_done(refnpu_dev_index(rdev), q->id, job->ctx->id,
			      job->seq, done->status, err, busy_ns);

	/* What the device wrote reaches the CPU before the fence signals. */
	for (i = 0; i < job->bo_count; i++)
		if (job->bo_flags[i] & DRM_REFNPU_BO_REF_WRITE)
			refnpu_bo_sync(to_refnpu_bo(job->bos[i]), false);

	list_del_init(&job->link);
	dma_fence_signal_locked(job->hw_fence);
}

/**
 * refnpu_fault_report() - log a fault record of the device
 * @rdev: device
 * @fault: the record
 *
 * Called from the backend's error interrupt. Only logs and counts: the
 * faulting job fails through its own completion record.
 */
void refnpu_fault_report(struct refnpu_device *rdev,
			 const struct refnpu_hw_fault *fault)
{
	atomic64_inc(&rdev->mmu_faults);
	trace_refnpu_fault(refnpu_dev_index(rdev), fault->queue, fault->ctx_id,
			   fault->seq, fault->code, fault->flags, fault->va);

	if (!__ratelimit(&rdev->fault_rs))
		return;

	switch (fault->code) {
	case REFNPU_ERR_MMU_UNMAPPED:
	case REFNPU_ERR_MMU_READ_PERM:
	case REFNPU_ERR_MMU_WRITE_PERM:
	case REFNPU_ERR_MMU_WALK:
	case REFNPU_ERR_DMA:
		drm_warn(&rdev->drm,
			 "fault: context %u queue %u job %llu: %s on %s%s at 0x%llx%s\n",
			 fault->ctx_id, fault->queue, fault->seq,
			 refnpu_engine_err_name(fault->code),
			 fault->flags & REFNPU_FAULT_F_WRITE ? "write" : "read",
			 fault->flags & REFNPU_FAULT_F_CMD_FETCH ?
			 " (command fetch)" : "", fault->va,
			 fault->overflow ? ", later faults lost" : "");
		break;
	default:
		drm_warn(&rdev->drm, "error: context %u queue %u job %llu: %s%s\n",
			 fault->ctx_id, fault->queue, fault->seq,
			 refnpu_engine_err_name(fault->code),
			 fault->overflow ? ", later faults lost" : "");
		break;
	}
}

/**
 * refnpu_queue_error() - the device halted a queue
 * @rdev: device
 * @queue: queue index
 *
 * Called from the backend's error interrupt; runs the queue's recovery
 * right away instead of waiting for the timeout.
 */
void refnpu_queue_error(struct refnpu_device *rdev, unsigned int queue)
{
	if (queue < rdev->info.num_queues)
		drm_sched_fault(&rdev->queues[queue].sched);
}

/* Count a hang against the guilty job's context, banning it at the limit. */
static void refnpu_job_blame(struct refnpu_job *job)
{
	struct refnpu_ctx *ctx = job->ctx;
	int hangs = atomic_inc_return(&ctx->hangs);

	if (hangs >= max(refnpu_hang_limit, 1U) && !READ_ONCE(ctx->banned)) {
		WRITE_ONCE(ctx->banned, true);
		refnpu_warn(job->rdev, "context %u banned after %d hangs\n",
			    ctx->id, hangs);
	}
}

/*
 * After a queue or device reset, decide the fate of every job still in
 * the ring (Documentation/driver.rst, "Recovery contract"): the guilty job
 * fails with @bad_err; a job the device reported as stopped by the reset
 * had started and may have written part of its output, so it fails with
 * the errno of REFNPU_ERR_ABORTED (-EAGAIN) instead of running twice; a
 * job of a banned context is cancelled; on a wedged device the others
 * fail with -EIO; else they had not started and are written into the
 * empty ring again, in their original order and with their original
 * sequence numbers.
 */
static void refnpu_queue_resubmit(struct refnpu_queue *q,
				  struct refnpu_job *bad, int bad_err)
{
	struct refnpu_device *rdev = q->rdev;
	struct refnpu_job *job, *tmp;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	list_for_each_entry_safe(job, tmp, &q->active, link) {
		struct refnpu_hw_job hw;

		if (job == bad) {
			job->stopped = false;
			refnpu_job_abort_locked(job, bad_err);
			continue;
		}
		if (job->stopped) {
			job->stopped = false;
			atomic64_inc(&q->stats.failed);
			refnpu_job_abort_locked(job,
						refnpu_hw_status_to_errno(REFNPU_ERR_ABORTED));
			continue;
		}
		if (READ_ONCE(job->ctx->banned)) {
			refnpu_job_abort_locked(job, -ECANCELED);
			continue;
		}
		if (READ_ONCE(rdev->wedged)) {
			atomic64_inc(&q->stats.failed);
			refnpu_job_abort_locked(job, -EIO);
			continue;
		}

		hw.ctx_id = job->ctx->id;
		hw.seq = job->seq;
		hw.cmd_va = job->cmd_va;
		hw.cmd_size = job->cmd_size;
		rdev->hw_ops->queue_submit(rdev, q->id, &hw);
	}
	spin_unlock_irqrestore(&q->lock, flags);
}

/*
 * drm_sched_stop() detached the scheduler from the hardware fences of the
 * jobs that had not completed (it drops s_fence->parent), and 6.12's
 * drm_sched_start() completes every job left without a parent with
 * -ECANCELED. Attach the hardware fences again, as panthor's queue_start()
 * and imagination's pvr_queue_start() do on 6.12, so that
 * drm_sched_start() waits for the resubmitted jobs and completes the
 * failed ones with their own error (guilty, stopped, banned). The
 * alternatives are worse: drm_sched_resubmit_jobs() is deprecated and
 * calls run_job again, which would give the job a new sequence number and
 * initialise its hardware fence twice; stopping only the scheduler's work
 * queues (drm_sched_wqueue_stop(), as xe does) would leave the timed-out
 * job off the pending list, and putting it back means editing the
 * scheduler's pending_list by hand. The fence is the job's own hardware
 * fence, with the same context and seqno as before: the reset does not
 * replace it, so nothing waiting on it sees a second fence.
 */
static void refnpu_queue_reattach(struct refnpu_queue *q)
{
	struct drm_sched_job *s_job;

	list_for_each_entry(s_job, &q->sched.pending_list, list) {
		struct refnpu_job *job = to_refnpu_job(s_job);

		if (!s_job->s_fence->parent && job->hw_fence_init)
			s_job->s_fence->parent = dma_fence_get(job->hw_fence);
	}
}

/*
 * drm_sched_job_timedout() took @sched_job off the pending list; only
 * drm_sched_stop() puts it back, so that it is freed once its hardware
 * fence signalled (at once when it did already). Nothing is reset: the
 * other jobs keep running and their hardware fences are attached again.
 */
static void refnpu_queue_requeue(struct refnpu_queue *q,
				 struct drm_sched_job *sched_job)
{
	bool cookie;

	drm_sched_stop(&q->sched, sched_job);
	cookie = dma_fence_begin_signalling();
	refnpu_queue_reattach(q);
	drm_sched_start(&q->sched);
	dma_fence_end_signalling(cookie);
}

/*
 * A device reset failed (Documentation/driver.rst, "Wedged device"): the
 * device may still be running the jobs in its rings and walking their
 * page tables, so nothing it was given may be given back until it is cut
 * off from memory. The backend does that and reports what completed
 * before; recovery then fails every job left with -EIO, and jobs fail
 * with -EIO until a device reset succeeds. What failed TLB invalidations
 * quarantined stays quarantined until then; invalidations are skipped
 * meanwhile (refnpu_mmu_tlb_invalidate()), since the reset that ends the
 * wedge drops every cached translation before memory is reachable again.
 */
static void refnpu_wedge(struct refnpu_device *rdev, int err)
{
	rdev->hw_ops->wedge(rdev);
	if (!READ_ONCE(rdev->wedged))
		refnpu_err(rdev, "device reset failed (%d): device wedged, cut off from memory; jobs fail with -EIO until a reset succeeds\n",
			   err);
	WRITE_ONCE(rdev->wedged, true);
}

/*
 * Recovery, run on the ordered reset workqueue (the schedulers' timeout
 * workqueue), which serialises it against every other timeout and reset:
 *   1. stop the schedulers of the queues being reset;
 *   2. reset the queue (or, when that fails or @q is NULL, the device),
 *      which reports the jobs that completed meanwhile and marks those
 *      the reset stopped after they had started;
 *   3. count the hang against the guilty job's context, banning it at
 *      the limit;
 *   4. fail the guilty job with @bad_err and the stopped ones with
 *      -EAGAIN, cancel banned contexts' jobs, resubmit the jobs that had
 *      not started (or, when the device reset failed, cut the device off
 *      from memory and fail them with -EIO: refnpu_wedge());
 *   5. restart the schedulers.
 *
 * Steps 2 to 5 are a fence signalling critical section; stopping the
 * schedulers is not. drm_sched_stop() waits (cancel_work_sync()) for a
 * run_job or free_job work that is running, and those are signalling
 * sections themselves: lockdep sees the section held around the wait for
 * the work and the work taking the section, a cycle it reports (as a
 * possible circular locking dependency) whenever a timeout meets a
 * running run_job. Waiting for those works cannot deadlock, since they
 * wait for nothing recovery holds; panfrost stops its schedulers outside
 * the section for the same reason.
 */
static void refnpu_recover(struct refnpu_device *rdev, struct refnpu_queue *bq,
			   struct refnpu_job *bad, int bad_err)
{
	unsigned long stopped = 0;
	unsigned int i;
	int ret = 0, idx;
	bool cookie;

	if (!drm_dev_enter(&rdev->drm, &idx)) {
		/*
		 * Removed since the timeout handler looked: nothing to reset,
		 * and refnpu_device_fini() fails the jobs, but the timed-out
		 * job must still go back to the scheduler to be freed.
		 */
		if (bq && bad)
			refnpu_queue_requeue(bq, &bad->base);
		return;
	}

	if (bq) {
		drm_sched_stop(&bq->sched, bad ? &bad->base : NULL);
		__set_bit(bq->id, &stopped);
	}

	cookie = dma_fence_begin_signalling();
	if (bq) {
		ret = rdev->hw_ops->queue_reset(rdev, bq->id);
		trace_refnpu_reset(refnpu_dev_index(rdev), bq->id, ret);
		atomic64_inc(&bq->stats.resets);
		if (ret)
			refnpu_err(rdev, "queue %u reset failed (%d), resetting the device\n",
				   bq->id, ret);
	}

	if (!bq || ret) {
		dma_fence_end_signalling(cookie);
		for (i = 0; i < rdev->info.num_queues; i++) {
			if (test_bit(i, &stopped))
				continue;
			drm_sched_stop(&rdev->queues[i].sched, NULL);
			__set_bit(i, &stopped);
		}
		cookie = dma_fence_begin_signalling();
		refnpu_mmu_reset_begin(rdev);
		ret = rdev->hw_ops->reset(rdev);
		trace_refnpu_reset(refnpu_dev_index(rdev), -1, ret);
		atomic64_inc(&rdev->device_resets);
		if (ret) {
			refnpu_wedge(rdev, ret);
		} else {
			if (READ_ONCE(rdev->wedged)) {
				WRITE_ONCE(rdev->wedged, false);
				refnpu_info(rdev, "device reset succeeded: no longer wedged\n");
			}
			refnpu_mmu_reset_done(rdev);
		}
	}

	/* The guilty job may have completed before the reset after all. */
	if (bad && dma_fence_is_signaled(bad->hw_fence))
		bad = NULL;
	if (bad)
		refnpu_job_blame(bad);

	for_each_set_bit(i, &stopped, rdev->info.num_queues)
		refnpu_queue_resubmit(&rdev->queues[i], bad, bad_err);

	for_each_set_bit(i, &stopped, rdev->info.num_queues) {
		refnpu_queue_reattach(&rdev->queues[i]);
		drm_sched_start(&rdev->queues[i].sched);
	}
	dma_fence_end_signalling(cookie);

	drm_dev_exit(idx);
}

/*
 * The timeout handler: a fence signalling critical section, except where
 * it stops schedulers (refnpu_queue_requeue(), refnpu_recover()).
 */
static enum drm_gpu_sched_stat refnpu_job_timedout(struct drm_sched_job *sched_job)
{
	struct refnpu_job *job = to_refnpu_job(sched_job);
	struct refnpu_device *rdev = job->rdev;
	struct refnpu_queue *q = job->queue;
	bool cookie, signaled;
	int idx;

	if (!drm_dev_enter(&rdev->drm, &idx)) {
		/*
		 * Removed: refnpu_device_fini() fails (or failed) the job's
		 * hardware fence. The job must still be freed, or its pins,
		 * context and device references would leak.
		 */
		refnpu_queue_requeue(q, sched_job);
		return DRM_GPU_SCHED_STAT_ENODEV;
	}

	/* The completion may be there with its interrupt lost or late. */
	cookie = dma_fence_begin_signalling();
	rdev->hw_ops->queue_poll(rdev, q->id);

	signaled = dma_fence_is_signaled(job->hw_fence);
	if (signaled) {
		atomic64_inc(&q->stats.lost_irqs);
		refnpu_warn(rdev, "queue %u: job %llu completed without interrupt\n",
			    q->id, job->seq);
	} else {
		refnpu_trace_job(job, trace_refnpu_job_timeout);
		atomic64_inc(&q->stats.timeouts);
		refnpu_err(rdev, "queue %u: job %llu of context %u timed out\n",
			   q->id, job->seq, job->ctx->id);
	}
	dma_fence_end_signalling(cookie);
	drm_dev_exit(idx);

	if (signaled)
		refnpu_queue_requeue(q, sched_job);
	else
		refnpu_recover(rdev, q, job, -ETIMEDOUT);

	return DRM_GPU_SCHED_STAT_NOMINAL;
}

static void refnpu_job_free_work(struct work_struct *work)
{
	refnpu_job_put_resources(container_of(work, struct refnpu_job,
					      free_work));
}

/*
 * Called from the scheduler's free_job work, and synchronously by
 * drm_sched_stop() in the timeout handler: on the signalling path either
 * way. Dropping the mappings takes BO and VM locks that are held around
 * allocations elsewhere, so it is deferred to the driver's workqueue.
 */
static void refnpu_job_free(struct drm_sched_job *sched_job)
{
	struct refnpu_job *job = to_refnpu_job(sched_job);
	bool cookie = dma_fence_begin_signalling();

	drm_sched_job_cleanup(sched_job);
	INIT_WORK(&job->free_work, refnpu_job_free_work);
	queue_work(refnpu_wq, &job->free_work);
	dma_fence_end_signalling(cookie);
}

static const struct drm_sched_backend_ops refnpu_sched_ops = {
	.run_job = refnpu_job_run,
	.timedout_job = refnpu_job_timedout,
	.free_job = refnpu_job_free,
};

static void refnpu_device_reset_work(struct work_struct *work)
{
	struct refnpu_device *rdev =
		container_of(work, struct refnpu_device, reset_work);

	refnpu_info(rdev, "device reset requested\n");
	refnpu_recover(rdev, NULL, NULL, 0);
}

/**
 * refnpu_device_reset_async() - reset the device from the reset workqueue
 * @rdev: device
 *
 * Used by the debugfs reset trigger and after a TLB invalidation timed
 * out. No job is blamed: the jobs the reset stops fail with -EAGAIN,
 * those that had not started are resubmitted after the reset.
 */
void refnpu_device_reset_async(struct refnpu_device *rdev)
{
	queue_work(rdev->reset_wq, &rdev->reset_work);
}

static void refnpu_job_destroy_wq(struct drm_device *drm, void *arg)
{
	destroy_workqueue(to_refnpu(drm)->reset_wq);
}

static void refnpu_job_sched_fini(struct drm_device *drm, void *arg)
{
	struct refnpu_device *rdev = to_refnpu(drm);
	unsigned int i;

	for (i = 0; i < rdev->info.num_queues; i++)
		drm_sched_fini(&rdev->queues[i].sched);
}

/**
 * refnpu_job_init() - create a scheduler per hardware queue
 * @rdev: device, after the backend's init
 *
 * Return: 0 or a negative errno.
 */
int refnpu_job_init(struct refnpu_device *rdev)
{
	struct drm_device *drm = &rdev->drm;
	unsigned int i;
	int ret;

	rdev->reset_wq = alloc_ordered_workqueue("refnpu-reset", 0);
	if (!rdev->reset_wq)
		return -ENOMEM;
	ret = drmm_add_action_or_reset(drm, refnpu_job_destroy_wq, NULL);
	if (ret)
		return ret;
	INIT_WORK(&rdev->reset_work, refnpu_device_reset_work);

	for (i = 0; i < rdev->info.num_queues; i++) {
		struct refnpu_queue *q = &rdev->queues[i];
		const struct drm_sched_init_args args = {
			.ops = &refnpu_sched_ops,
			.num_rqs = DRM_SCHED_PRIORITY_COUNT,
			.credit_limit = REFNPU_QUEUE_JOBS,
			/* 0: no timeout (0 jiffies would time out every job). */
			.timeout = refnpu_job_timeout_ms ?
				   msecs_to_jiffies(refnpu_job_timeout_ms) :
				   MAX_SCHEDULE_TIMEOUT,
			.timeout_wq = rdev->reset_wq,
			.name = q->name,
			.dev = drm->dev,
		};

		q->rdev = rdev;
		q->id = i;
		snprintf(q->name, sizeof(q->name), "queue%u", i);
		spin_lock_init(&q->lock);
		INIT_LIST_HEAD(&q->active);
		q->fence_context = dma_fence_context_alloc(1);

		ret = drm_sched_init(&q->sched, &args);
		if (ret) {
			while (i--)
				drm_sched_fini(&rdev->queues[i].sched);
			return ret;
		}
	}

	return drmm_add_action_or_reset(drm, refnpu_job_sched_fini, NULL);
}

/**
 * refnpu_job_cancel_all() - fail every job in the rings of a removed device
 * @rdev: device, unplugged, and stopped by the backend's fini
 *
 * Called once the device can no longer run or DMA (refnpu_device_fini()):
 * it will never complete the jobs it had, so fail them with -ENODEV. Only
 * then may their fences signal, since whoever waits for them frees the
 * memory the jobs used. Jobs not yet in a ring fail in refnpu_job_run().
 */
void refnpu_job_cancel_all(struct refnpu_device *rdev)
{
	struct refnpu_job *job, *tmp;
	unsigned long flags;
	unsigned int i;
	bool cookie;

	cookie = dma_fence_begin_signalling();
	for (i = 0; i < rdev->info.num_queues; i++) {
		struct refnpu_queue *q = &rdev->queues[i];

		spin_lock_irqsave(&q->lock, flags);
		list_for_each_entry_safe(job, tmp, &q->active, link)
			refnpu_job_abort_locked(job, -ENODEV);
		spin_unlock_irqrestore(&q->lock, flags);
	}
	dma_fence_end_signalling(cookie);
}

/**
 * refnpu_job_fini() - stop recovery of a removed device
 * @rdev: device, unplugged
 *
 * Waits for a pending device reset request; timeout handlers and resets
 * in progress finished already (they run inside drm_dev_enter()). The
 * schedulers are torn down with the DRM device, after the last file
 * closed, since open files keep entities on them.
 */
void refnpu_job_fini(struct refnpu_device *rdev)
{
	cancel_work_sync(&rdev->reset_work);
}

/**
 * refnpu_job_file_open() - create a file's scheduler entities
 * @rfile: file
 *
 * Return: 0 or a negative errno.
 */
int refnpu_job_file_open(struct refnpu_file *rfile)
{
	static const enum drm_sched_priority prio[REFNPU_NUM_PRIORITIES] = {
		[DRM_REFNPU_PRIORITY_NORMAL] = DRM_SCHED_PRIORITY_NORMAL,
		[DRM_REFNPU_PRIORITY_LOW] = DRM_SCHED_PRIORITY_LOW,
		[DRM_REFNPU_PRIORITY_HIGH] = DRM_SCHED_PRIORITY_HIGH,
	};
	struct refnpu_device *rdev = rfile->rdev;
	unsigned int q, p;
	int ret;

	for (q = 0; q < rdev->info.num_queues; q++) {
		struct drm_gpu_scheduler *sched = &rdev->queues[q].sched;

		for (p = 0; p < REFNPU_NUM_PRIORITIES; p++) {
			ret = drm_sched_entity_init(&rfile->entities[q][p],
						    prio[p], &sched, 1, NULL);
			if (ret)
				goto err;
		}
	}

	return 0;

err:
	while (p--)
		drm_sched_entity_destroy(&rfile->entities[q][p]);
	while (q--)
		for (p = 0; p < REFNPU_NUM_PRIORITIES; p++)
			drm_sched_entity_destroy(&rfile->entities[q][p]);
	return ret;
}

/**
 * refnpu_job_file_close() - destroy a file's scheduler entities
 * @rfile: file
 *
 * Waits (up to the scheduler's timeout) for the file's queued jobs to be
 * handed to the hardware; when the process is being killed, its queued
 * jobs are cancelled instead. Jobs already running complete normally and
 * keep what they use alive.
 */
void refnpu_job_file_close(struct refnpu_file *rfile)
{
	unsigned int q, p;

	for (q = 0; q < rfile->rdev->info.num_queues; q++)
		for (p = 0; p < REFNPU_NUM_PRIORITIES; p++)
			drm_sched_entity_destroy(&rfile->entities[q][p]);
}

/*
 * Copy @count elements of @ksize bytes from a user array of @stride-byte
 * elements. Bytes of an element beyond what this kernel knows must be 0.
 */
static int refnpu_copy_array(void *dst, size_t ksize, u64 uptr, u32 count,
			     u32 stride)
{
	void __user *src = u64_to_user_ptr(uptr);
	u32 i;
	int ret;

	if (!count)
		return 0;
	if (stride < ksize || stride > REFNPU_MAX_STRIDE)
		return -EINVAL;

	if (stride == ksize)
		return copy_from_user(dst, src, array_size(count, ksize)) ?
		       -EFAULT : 0;

	for (i = 0; i < count; i++) {
		void __user *elem = src + (size_t)i * stride;

		if (copy_from_user(dst + i * ksize, elem, ksize))
			return -EFAULT;
		ret = check_zeroed_user(elem + ksize, stride - ksize);
		if (ret < 0)
			return ret;
		if (!ret)
			return -EINVAL;
	}

	return 0;
}

/*
 * The user arrays of a SUBMIT, copied before the drm_dev_enter() section:
 * a copy from user memory may wait for as long as user space wants
 * (userfaultfd), and unbinding the device waits for every such section.
 */
struct refnpu_submit_arrays {
	struct drm_refnpu_bo_ref *bos;
	struct drm_refnpu_sync *in_syncs;
	struct drm_refnpu_sync *out_syncs;
};

static void refnpu_submit_free_arrays(struct refnpu_submit_arrays *arr)
{
	kvfree(arr->bos);
	kfree(arr->in_syncs);
	kfree(arr->out_syncs);
}

static int refnpu_submit_copy_sync_array(struct drm_refnpu_sync **syncs,
					 u64 uptr, u32 count, u32 stride)
{
	u32 i;
	int ret;

	if (!count)
		return 0;

	*syncs = kcalloc(count, sizeof(**syncs), GFP_KERNEL);
	if (!*syncs)
		return -ENOMEM;
	ret = refnpu_copy_array(*syncs, sizeof(**syncs), uptr, count, stride);
	if (ret)
		return ret;

	for (i = 0; i < count; i++)
		if ((*syncs)[i].flags)
			return -EINVAL;

	return 0;
}

static int refnpu_submit_copy_arrays(struct refnpu_submit_arrays *arr,
				     const struct drm_refnpu_submit *args)
{
	u32 count = args->bo_count, i;
	int ret;

	if (count) {
		arr->bos = kvcalloc(count, sizeof(*arr->bos), GFP_KERNEL);
		if (!arr->bos)
			return -ENOMEM;
		ret = refnpu_copy_array(arr->bos, sizeof(*arr->bos), args->bos,
					count, args->bo_stride);
		if (ret)
			return ret;
	}
	for (i = 0; i < count; i++) {
		u32 flags = arr->bos[i].flags;

		if (!flags || flags & ~(DRM_REFNPU_BO_REF_READ |
					DRM_REFNPU_BO_REF_WRITE))
			return -EINVAL;
	}

	ret = refnpu_submit_copy_sync_array(&arr->in_syncs, args->in_syncs,
					    args->in_sync_count,
					    args->in_sync_stride);
	if (ret)
		return ret;

	return refnpu_submit_copy_sync_array(&arr->out_syncs, args->out_syncs,
					     args->out_sync_count,
					     args->out_sync_stride);
}

/* Look up the listed BOs (merging duplicates) and the command buffer BO. */
static int refnpu_submit_lookup_bos(struct refnpu_job *job,
				    struct drm_file *file,
				    const struct drm_refnpu_submit *args,
				    const struct drm_refnpu_bo_ref *refs)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct drm_gem_object *cmd_obj;
	struct refnpu_mapping *cmd_map = NULL;
	u32 count = args->bo_count, n = 0, i, j;

	/* One more slot for the command buffer BO. */
	job->bos = kvcalloc(count + 1, sizeof(*job->bos), GFP_KERNEL);
	job->maps = kvcalloc(count + 1, sizeof(*job->maps), GFP_KERNEL);
	job->bo_flags = kvcalloc(count + 1, sizeof(*job->bo_flags), GFP_KERNEL);
	if (!job->bos || !job->maps || !job->bo_flags)
		return -ENOMEM;

	cmd_obj = drm_gem_object_lookup(file, args->cmd_handle);
	if (!cmd_obj)
		return -ENOENT;
	if (args->cmd_offset > cmd_obj->size ||
	    args->cmd_size > cmd_obj->size - args->cmd_offset) {
		drm_gem_object_put(cmd_obj);
		return -EINVAL;
	}
	job->bos[n] = cmd_obj;
	job->bo_flags[n] = DRM_REFNPU_BO_REF_READ;
	job->bo_count = ++n;

	for (i = 0; i < count; i++) {
		struct drm_gem_object *obj;

		obj = drm_gem_object_lookup(file, refs[i].handle);
		if (!obj)
			return -ENOENT;
		for (j = 0; j < n; j++)
			if (job->bos[j] == obj)
				break;
		if (j < n) {
			job->bo_flags[j] |= refs[i].flags;
			drm_gem_object_put(obj);
			continue;
		}
		job->bos[n] = obj;
		job->bo_flags[n] = refs[i].flags;
		job->bo_count = ++n;
	}

	for (i = 0; i < n; i++) {
		/* Closed by another thread since the lookup: gone. */
		job->maps[i] = refnpu_mapping_get(to_refnpu_bo(job->bos[i]),
						  rfile->ctx);
		if (!job->maps[i])
			return -ENOENT;
	}
	cmd_map = job->maps[0];
	job->cmd_va = cmd_map->va + args->cmd_offset;
	job->cmd_size = args->cmd_size;
	return 0;
}

static int refnpu_submit_in_syncs(struct refnpu_job *job, struct drm_file *file,
				  const struct drm_refnpu_submit *args,
				  const struct drm_refnpu_sync *syncs)
{
	u32 count = args->in_sync_count, i;
	int ret;

	if (!count)
		return 0;

	job->in_fences = kcalloc(count, sizeof(*job->in_fences), GFP_KERNEL);
	if (!job->in_fences)
		return -ENOMEM;

	for (i = 0; i < count; i++) {
		struct dma_fence *fence;

		/* A missing syncobj or a missing point both give -ENOENT. */
		ret = drm_syncobj_find_fence(file, syncs[i].handle,
					     syncs[i].point, 0, &fence);
		if (ret)
			return -ENOENT;

		/*
		 * An explicit dependency on a job of the same queue must wait
		 * for that job to finish, not just to be scheduled, so that
		 * its failure cancels this job (see refnpu_job_run()).
		 */
		if (to_drm_sched_fence(fence))
			set_bit(DRM_SCHED_FENCE_DONT_PIPELINE, &fence->flags);

		job->in_fences[job->in_count++] = dma_fence_get(fence);
		ret = drm_sched_job_add_dependency(&job->base, fence);
		if (ret)
			return ret;
	}

	return 0;
}

static int refnpu_submit_out_syncs(struct refnpu_job *job, struct drm_file *file,
				   const struct drm_refnpu_submit *args,
				   const struct drm_refnpu_sync *syncs)
{
	u32 count = args->out_sync_count, i;

	if (!count)
		return 0;

	job->out_syncobjs = kcalloc(count, sizeof(*job->out_syncobjs),
				    GFP_KERNEL);
	job->out_points = kcalloc(count, sizeof(*job->out_points), GFP_KERNEL);
	job->out_chains = kcalloc(count, sizeof(*job->out_chains), GFP_KERNEL);
	if (!job->out_syncobjs || !job->out_points || !job->out_chains)
		return -ENOMEM;

	for (i = 0; i < count; i++) {
		job->out_syncobjs[i] = drm_syncobj_find(file, syncs[i].handle);
		job->out_count = i + 1;
		if (!job->out_syncobjs[i])
			return -ENOENT;
		job->out_points[i] = syncs[i].point;
		if (syncs[i].point) {
			job->out_chains[i] = dma_fence_chain_alloc();
			if (!job->out_chains[i])
				return -ENOMEM;
		}
	}

	return 0;
}

static void refnpu_submit_signal_out_syncs(struct refnpu_job *job,
					   struct dma_fence *fence)
{
	u32 i;

	for (i = 0; i < job->out_count; i++) {
		if (job->out_points[i]) {
			drm_syncobj_add_point(job->out_syncobjs[i],
					      job->out_chains[i], fence,
					      job->out_points[i]);
			job->out_chains[i] = NULL;
		} else {
			drm_syncobj_replace_fence(job->out_syncobjs[i], fence);
		}
	}
}

/*
 * The fence slots the job's @i-th object needs on its reservation: one for
 * every listed object that shares that reservation, since the job adds its
 * fence once per listed object and a write fence does not replace a read
 * one. dma_resv_reserve_fences() guarantees that many free slots; calls
 * for the same reservation do not add up.
 */
static unsigned int refnpu_submit_resv_slots(const struct refnpu_job *job,
					     u32 i)
{
	struct dma_resv *resv = job->bos[i]->resv;
	unsigned int n = 0;
	u32 j;

	for (j = 0; j < job->bo_count; j++)
		n += job->bos[j]->resv == resv;
	return n;
}

/*
 * Lock the BOs, add implicit dependencies, arm and push the job.
 *
 * drm_exec, not drm_gem_lock_reservations(): two listed objects may share
 * one dma_resv (two imports of one dma-buf in a file, or an object opened
 * by global name beside another import, see
 * DmaBuf.JobListsTwoObjectsOfOneReservation), which the latter locks twice
 * and fails with -EALREADY; DRM_EXEC_IGNORE_DUPLICATES locks it once, and
 * refnpu_submit_resv_slots() reserves a slot for each object sharing it.
 */
static int refnpu_submit_push(struct refnpu_job *job, struct refnpu_file *rfile,
			      struct drm_sched_entity *entity, bool implicit)
{
	struct dma_fence *finished;
	struct drm_exec exec;
	unsigned int slots;
	u32 i;
	int ret;

	drm_exec_init(&exec, DRM_EXEC_INTERRUPTIBLE_WAIT |
		      DRM_EXEC_IGNORE_DUPLICATES, job->bo_count);
	drm_exec_until_all_locked(&exec) {
		for (i = 0; i < job->bo_count; i++) {
			slots = refnpu_submit_resv_slots(job, i);
			ret = drm_exec_prepare_obj(&exec, job->bos[i], slots);
			drm_exec_retry_on_contention(&exec);
			if (ret)
				goto unlock;
		}
	}

	for (i = 0; implicit && i < job->bo_count; i++) {
		bool write = job->bo_flags[i] & DRM_REFNPU_BO_REF_WRITE;

		ret = drm_sched_job_add_implicit_dependencies(&job->base,
							      job->bos[i],
							      write);
		if (ret)
			goto unlock;
	}

	mutex_lock(&rfile->submit_lock);
	drm_sched_job_arm(&job->base);
	finished = dma_fence_get(&job->base.s_fence->finished);

	for (i = 0; i < job->bo_count; i++) {
		bool write = job->bo_flags[i] & DRM_REFNPU_BO_REF_WRITE;
		struct refnpu_bo *bo = to_refnpu_bo(job->bos[i]);

		dma_resv_add_fence(job->bos[i]->resv, finished,
				   write ? DMA_RESV_USAGE_WRITE :
					   DMA_RESV_USAGE_READ);
		dma_fence_put(bo->last_fence);
		bo->last_fence = dma_fence_get(finished);
	}

	drm_exec_fini(&exec);
	refnpu_submit_signal_out_syncs(job, finished);
	refnpu_trace_job(job, trace_refnpu_job_submit);

	/* The job may run and be freed at once: nothing touches it after. */
	drm_sched_entity_push_job(&job->base);
	mutex_unlock(&rfile->submit_lock);
	dma_fence_put(finished);

	return 0;

unlock:
	drm_exec_fini(&exec);
	return ret;
}

/**
 * refnpu_submit_ioctl() - DRM_IOCTL_REFNPU_SUBMIT
 * @drm: DRM device
 * @data: &struct drm_refnpu_submit
 * @file: DRM file
 *
 * Return: 0 or a negative errno, as documented in the uAPI header.
 */
int refnpu_submit_ioctl(struct drm_device *drm, void *data,
			struct drm_file *file)
{
	struct refnpu_file *rfile = file->driver_priv;
	struct refnpu_device *rdev = rfile->rdev;
	struct drm_refnpu_submit *args = data;
	struct refnpu_submit_arrays arr = {};
	struct drm_sched_entity *entity;
	struct refnpu_job *job;
	int ret, idx;

	if (args->flags & ~DRM_REFNPU_SUBMIT_FLAGS || args->pad)
		return -EINVAL;
	if (args->queue >= rdev->info.num_queues ||
	    args->priority >= REFNPU_NUM_PRIORITIES)
		return -EINVAL;
	if (!args->cmd_size || args->cmd_size > REFNPU_CMDBUF_MAX_SIZE ||
	    !IS_ALIGNED(args->cmd_size | args->cmd_offset, REFNPU_CMD_ALIGN))
		return -EINVAL;
	if (args->bo_count > REFNPU_MAX_SUBMIT_BOS ||
	    args->in_sync_count > REFNPU_MAX_SUBMIT_SYNCS ||
	    args->out_sync_count > REFNPU_MAX_SUBMIT_SYNCS)
		return -EINVAL;
	if (args->priority == DRM_REFNPU_PRIORITY_HIGH && !capable(CAP_SYS_NICE))
		return -EPERM;
	if (READ_ONCE(rfile->ctx->banned))
		return -ECANCELED;

	ret = refnpu_submit_copy_arrays(&arr, args);
	if (ret)
		goto out_arrays;

	if (!drm_dev_enter(drm, &idx)) {
		ret = -ENODEV;
		goto out_arrays;
	}

	job = kzalloc(sizeof(*job), GFP_KERNEL);
	if (!job) {
		ret = -ENOMEM;
		goto out_exit;
	}
	job->rdev = rdev;
	job->queue = &rdev->queues[args->queue];
	job->ctx = refnpu_ctx_get(rfile->ctx);
	INIT_LIST_HEAD(&job->link);

	job->hw_fence = kzalloc(sizeof(*job->hw_fence), GFP_KERNEL);
	if (!job->hw_fence) {
		ret = -ENOMEM;
		goto out_free;
	}

	ret = refnpu_submit_lookup_bos(job, file, args, arr.bos);
	if (ret)
		goto out_free;

	entity = &rfile->entities[args->queue][args->priority];
	/* run_job may run after the entity is gone: keep what it needs. */
	job->entity_fence_context = entity->fence_context;
	ret = drm_sched_job_init(&job->base, entity, 1, rfile, file->client_id);
	if (ret)
		goto out_free;

	ret = refnpu_submit_in_syncs(job, file, args, arr.in_syncs);
	if (ret)
		goto out_cleanup;

	ret = refnpu_submit_out_syncs(job, file, args, arr.out_syncs);
	if (ret)
		goto out_cleanup;

	ret = refnpu_submit_push(job, rfile, entity,
				 !(args->flags & DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC));
	if (ret)
		goto out_cleanup;

	drm_dev_exit(idx);
	refnpu_submit_free_arrays(&arr);
	return 0;

out_cleanup:
	drm_sched_job_cleanup(&job->base);
out_free:
	refnpu_job_put_resources(job);
out_exit:
	drm_dev_exit(idx);
out_arrays:
	refnpu_submit_free_arrays(&arr);
	return ret;
}
