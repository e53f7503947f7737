/* SPDX-License-Identifier: MIT */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#ifndef __UAPI_REFNPU_ACCEL_H__
#define __UAPI_REFNPU_ACCEL_H__

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

/**
 * DOC: refnpu uAPI overview
 *
 * refnpu is a compute accelerator driven through /dev/accel/accelN.
 *
 * Every open file of the device is one *context*: it owns a private device
 * virtual address space, into which each buffer object (BO) it creates or
 * imports is mapped, and it submits jobs to the device's hardware queues.
 * Commands executed by the device only ever name device virtual addresses
 * of the submitting context; user space never sees or chooses physical or
 * bus addresses.
 *
 * Job completion is reported through DRM sync objects (binary or timeline)
 * and through the implicit fences of the BOs a job lists. A job that fails
 * signals its fences with an error, visible through the syncobj fence
 * status, DRM_IOCTL_REFNPU_BO_WAIT and sync_file status:
 *
 * ============  ===============================================================
 * -EFAULT       the job touched an unmapped device address or wrote to a
 *               read-only one (device MMU fault)
 * -EINVAL       the command buffer is malformed (unknown opcode, bad operand)
 * -EIO          a DMA transfer of the job failed (bus or IOMMU error), or
 *               the device is wedged: a reset of it failed, and until one
 *               succeeds it is cut off from memory and runs no job (memory
 *               the job writes may be partly written)
 * -ETIMEDOUT    the job exceeded the job timeout and was stopped
 * -EAGAIN       the job had started when the device, or its queue, was
 *               reset because of another job (or by an administrator) and
 *               was stopped part-way: memory it writes may be partly
 *               written, so restore its inputs before submitting it again
 *               (a job that updates memory in place must not simply be
 *               resubmitted)
 * -ECANCELED    the job was not run: its context was banned, or one of its
 *               in-syncobj fences failed (see &drm_refnpu_submit)
 * -ESRCH        the job was not run: it was queued when its process was
 *               killed (the DRM scheduler's code for a killed entity)
 * -ENODEV       the device was removed before the job completed
 * ============  ===============================================================
 *
 * A reset never runs a job twice: jobs that were queued but had not
 * started when it happened run afterwards as if nothing had happened
 * (unless their context is banned); the job that caused it fails with its
 * own error (-ETIMEDOUT for a hang); any other job it stopped fails with
 * -EAGAIN. These are status values of fences, never the return value of
 * an ioctl.
 *
 * A context whose jobs time out DRM_REFNPU_PARAM_HANG_LIMIT times is banned:
 * its pending jobs are cancelled and further submissions fail with
 * -ECANCELED. Open a new file to get a new context.
 *
 * Conventions of every ioctl: all reserved and padding fields must be zero
 * and all undefined flag bits clear, or the ioctl fails with -EINVAL. Sizes
 * and user pointers are __u64. Arrays are described by a user pointer, an
 * element count and an element size (*stride*), so that elements can grow
 * in later versions: the kernel accepts any stride at least as large as the
 * first version of the element (and at most 4096); bytes beyond the
 * elements it knows must be zero, or the ioctl fails with -EINVAL.
 * Once the device is removed (unbound or hot-unplugged), every ioctl fails
 * with -ENODEV; fences already handed out still signal (jobs the device
 * did not complete fail with -ENODEV), so user space can wait on exported
 * sync_files and then close the file.
 */

#define DRM_REFNPU_DRIVER_MAJOR		0
#define DRM_REFNPU_DRIVER_MINOR		1

#define DRM_REFNPU_GET_PARAM		0x00
#define DRM_REFNPU_BO_CREATE		0x01
#define DRM_REFNPU_BO_INFO		0x02
#define DRM_REFNPU_BO_WAIT		0x03
#define DRM_REFNPU_SUBMIT		0x04
#define DRM_REFNPU_BO_USERPTR		0x05

#define DRM_IOCTL_REFNPU_GET_PARAM \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_REFNPU_GET_PARAM, struct drm_refnpu_get_param)
#define DRM_IOCTL_REFNPU_BO_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_REFNPU_BO_CREATE, struct drm_refnpu_bo_create)
#define DRM_IOCTL_REFNPU_BO_INFO \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_REFNPU_BO_INFO, struct drm_refnpu_bo_info)
#define DRM_IOCTL_REFNPU_BO_WAIT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_REFNPU_BO_WAIT, struct drm_refnpu_bo_wait)
#define DRM_IOCTL_REFNPU_SUBMIT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_REFNPU_SUBMIT, struct drm_refnpu_submit)
#define DRM_IOCTL_REFNPU_BO_USERPTR \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_REFNPU_BO_USERPTR, struct drm_refnpu_bo_userptr)

/**
 * enum drm_refnpu_param - parameters queried with DRM_IOCTL_REFNPU_GET_PARAM
 * @DRM_REFNPU_PARAM_DRIVER_VERSION: driver version, major << 16 | minor
 * @DRM_REFNPU_PARAM_HW_VERSION: hardware version register of the device
 * @DRM_REFNPU_PARAM_CAPABILITIES: mask of DRM_REFNPU_CAP_* bits (driver
 *	features)
 * @DRM_REFNPU_PARAM_HW_CAPS: the device's capability register
 *	(REFNPU_CAP_* of the hardware specification, refnpu_hw.h)
 * @DRM_REFNPU_PARAM_OPS: mask of supported command opcodes, bit N set when
 *	opcode N of the hardware specification is supported
 * @DRM_REFNPU_PARAM_NUM_QUEUES: number of hardware queues; valid values of
 *	&drm_refnpu_submit.queue are 0 to this value minus one
 * @DRM_REFNPU_PARAM_VA_START: first device virtual address handed out to BOs
 * @DRM_REFNPU_PARAM_VA_SIZE: size in bytes of the device virtual address range
 * @DRM_REFNPU_PARAM_PAGE_SIZES: mask of page sizes the device MMU maps
 *	(4096 | 2097152)
 * @DRM_REFNPU_PARAM_MAX_BO_SIZE: largest size accepted by
 *	DRM_IOCTL_REFNPU_BO_CREATE
 * @DRM_REFNPU_PARAM_TIMESTAMP_FREQ: frequency in Hz of the device timestamps
 * @DRM_REFNPU_PARAM_MAX_SUBMIT_BOS: largest &drm_refnpu_submit.bo_count
 * @DRM_REFNPU_PARAM_MAX_SUBMIT_SYNCS: largest in- or out-sync count of a submit
 * @DRM_REFNPU_PARAM_JOB_TIMEOUT_MS: time in milliseconds after which a
 *	running job is stopped and fails with -ETIMEDOUT
 * @DRM_REFNPU_PARAM_HANG_LIMIT: number of timed-out jobs after which a context
 *	is banned
 * @DRM_REFNPU_PARAM_CONTEXT_HANGS: number of timed-out jobs of this file's
 *	context so far
 * @DRM_REFNPU_PARAM_CONTEXT_BANNED: 1 if this file's context is banned, else 0
 */
enum drm_refnpu_param {
	DRM_REFNPU_PARAM_DRIVER_VERSION = 0,
	DRM_REFNPU_PARAM_HW_VERSION = 1,
	DRM_REFNPU_PARAM_CAPABILITIES = 2,
	DRM_REFNPU_PARAM_OPS = 3,
	DRM_REFNPU_PARAM_NUM_QUEUES = 4,
	DRM_REFNPU_PARAM_VA_START = 5,
	DRM_REFNPU_PARAM_VA_SIZE = 6,
	DRM_REFNPU_PARAM_PAGE_SIZES = 7,
	DRM_REFNPU_PARAM_MAX_BO_SIZE = 8,
	DRM_REFNPU_PARAM_TIMESTAMP_FREQ = 9,
	DRM_REFNPU_PARAM_MAX_SUBMIT_BOS = 10,
	DRM_REFNPU_PARAM_MAX_SUBMIT_SYNCS = 11,
	DRM_REFNPU_PARAM_JOB_TIMEOUT_MS = 12,
	DRM_REFNPU_PARAM_HANG_LIMIT = 13,
	DRM_REFNPU_PARAM_CONTEXT_HANGS = 14,
	DRM_REFNPU_PARAM_CONTEXT_BANNED = 15,
	DRM_REFNPU_PARAM_HW_CAPS = 16,
};

/* submit accepts timeline points */
#define DRM_REFNPU_CAP_TIMELINE_SYNCOBJ	0x1ULL
/* BOs can be exported and imported as dma-bufs */
#define DRM_REFNPU_CAP_PRIME		0x2ULL
/* the device is emulated inside the kernel, not a PCI device */
#define DRM_REFNPU_CAP_VIRTUAL		0x4ULL
/* BOs can be created from user memory (DRM_IOCTL_REFNPU_BO_USERPTR) */
#define DRM_REFNPU_CAP_USERPTR		0x8ULL

/**
 * struct drm_refnpu_get_param - query a device or context parameter
 *
 * Errors: -EINVAL when @param is not an &enum drm_refnpu_param value or
 * @pad is not zero; -ENODEV when the device was removed.
 */
struct drm_refnpu_get_param {
	/** @param: in, an &enum drm_refnpu_param value */
	__u32 param;
	/** @pad: must be zero */
	__u32 pad;
	/** @value: out, the parameter's value */
	__u64 value;
};

/* map the BO write-combined on the CPU, not write-back */
#define DRM_REFNPU_BO_WC			0x1U
/* the device may read but not write the BO */
#define DRM_REFNPU_BO_DEVICE_RO		0x2U
/* every flag of &drm_refnpu_bo_create.flags */
#define DRM_REFNPU_BO_FLAGS			(DRM_REFNPU_BO_WC | DRM_REFNPU_BO_DEVICE_RO)

/**
 * struct drm_refnpu_bo_create - create a buffer object
 *
 * Creates a zero-filled, shmem-backed BO, returns a GEM handle for it and
 * maps it into the file's device address space. The BO's CPU mapping is
 * obtained with mmap() on the device file at the offset returned by
 * DRM_IOCTL_REFNPU_BO_INFO. A guard gap of unmapped device addresses
 * separates every two BOs, so running off the end of a BO faults.
 *
 * Errors: -EINVAL when @size is 0 or larger than DRM_REFNPU_PARAM_MAX_BO_SIZE,
 * @flags has undefined bits, or @handle or @va are not zero on input;
 * -ENOSPC when the device address space is full; -ENOMEM when out of
 * memory; -ENODEV when the device was removed.
 */
struct drm_refnpu_bo_create {
	/** @size: in, size in bytes, rounded up to a multiple of 4096 */
	__u64 size;
	/** @flags: in, DRM_REFNPU_BO_* flags */
	__u32 flags;
	/** @handle: out, GEM handle of the new BO */
	__u32 handle;
	/** @va: out, device virtual address of the BO in this file */
	__u64 va;
};

/**
 * struct drm_refnpu_bo_info - query a buffer object
 *
 * Every handle's BO is mapped in the file's device address space when the
 * handle is made (BO_CREATE, BO_USERPTR, PRIME import, GEM_OPEN): mapping
 * errors come from those calls, never from this one. A PRIME import
 * (DRM_IOCTL_PRIME_FD_TO_HANDLE) fails with -ENOSPC when the address
 * space is full, -ENOMEM when out of memory and -ENODEV after the
 * device's removal.
 *
 * Errors: -EINVAL when @pad is not zero; -ENOENT when @handle names no BO
 * (or was closed meanwhile by another thread).
 */
struct drm_refnpu_bo_info {
	/** @handle: in, GEM handle */
	__u32 handle;
	/** @flags: out, the DRM_REFNPU_BO_* flags the BO was created with */
	__u32 flags;
	/** @mmap_offset: out, offset to pass to mmap() on the device file */
	__u64 mmap_offset;
	/** @va: out, device virtual address of the BO in this file */
	__u64 va;
	/** @size: out, size of the BO in bytes */
	__u64 size;
	/** @pad: must be zero */
	__u64 pad;
};

/**
 * struct drm_refnpu_bo_wait - wait until every job using a BO completed
 *
 * Waits for all fences of the BO, those of refnpu jobs and of any other
 * driver sharing it, then reports the result of the last refnpu job that
 * listed the BO.
 *
 * Errors: -EINVAL when @flags or @pad are not zero; -ENOENT when @handle
 * names no BO; -ETIMEDOUT when the BO was still busy at @timeout_ns;
 * -EINTR (or a restart) when a signal arrived.
 */
struct drm_refnpu_bo_wait {
	/** @handle: in, GEM handle */
	__u32 handle;
	/** @flags: must be zero */
	__u32 flags;
	/**
	 * @timeout_ns: in, absolute CLOCK_MONOTONIC deadline in nanoseconds;
	 * a deadline in the past only polls
	 */
	__s64 timeout_ns;
	/**
	 * @status: out, 0 when the last job that used the BO succeeded (or no
	 * job used it), else that job's negative errno (see the overview)
	 */
	__s32 status;
	/** @pad: must be zero */
	__u32 pad;
};

/* the job reads the BO */
#define DRM_REFNPU_BO_REF_READ		0x1U
/* the job writes the BO */
#define DRM_REFNPU_BO_REF_WRITE		0x2U

/**
 * struct drm_refnpu_bo_ref - a BO used by a job
 *
 * Listing a BO keeps it (and its device mapping) alive until the job
 * completed, and orders the job against other users of the BO (implicit
 * synchronization): a job reading a BO waits for earlier writers, a job
 * writing it waits for all earlier users. Commands may still address any
 * BO of the context, but only listed BOs are ordered and kept alive, and
 * only what the job writes to BOs listed with DRM_REFNPU_BO_REF_WRITE is
 * guaranteed visible to the CPU when the job's fence signals (where the
 * DMA layer bounces or caches are not coherent, see Documentation/driver.rst).
 */
struct drm_refnpu_bo_ref {
	/** @handle: GEM handle of the BO */
	__u32 handle;
	/** @flags: DRM_REFNPU_BO_REF_READ and/or DRM_REFNPU_BO_REF_WRITE, not 0 */
	__u32 flags;
};

/**
 * struct drm_refnpu_sync - a DRM sync object used by a job
 *
 * As an in-fence, the job waits for the fence at @point of the syncobj
 * (the syncobj's current fence when @point is 0); a missing fence fails
 * the submission with -ENOENT. As an out-fence, the job's completion fence
 * replaces the syncobj's fence (@point 0) or is added as timeline @point.
 * A timeline point shows the job's error only while it is the syncobj's
 * last point: once a later point exists, a signalled point reads as
 * signalled without error (the DRM core drops signalled chain links).
 */
struct drm_refnpu_sync {
	/** @handle: sync object handle */
	__u32 handle;
	/** @flags: must be zero */
	__u32 flags;
	/** @point: timeline point, or 0 for a binary syncobj */
	__u64 point;
};

/* do not wait for the listed BOs' fences */
#define DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC	0x1U
/* every flag of &drm_refnpu_submit.flags */
#define DRM_REFNPU_SUBMIT_FLAGS		(DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC)

/**
 * enum drm_refnpu_priority - scheduling priority of a job
 * @DRM_REFNPU_PRIORITY_LOW: runs when no normal or high priority job is ready
 * @DRM_REFNPU_PRIORITY_NORMAL: the default
 * @DRM_REFNPU_PRIORITY_HIGH: runs first; needs CAP_SYS_NICE
 */
enum drm_refnpu_priority {
	DRM_REFNPU_PRIORITY_NORMAL = 0,
	DRM_REFNPU_PRIORITY_LOW = 1,
	DRM_REFNPU_PRIORITY_HIGH = 2,
};

/**
 * struct drm_refnpu_submit - submit a job to a hardware queue
 *
 * Queues the command buffer at @cmd_offset of BO @cmd_handle for execution
 * on queue @queue in this file's context, once every in-fence signalled
 * and, unless DRM_REFNPU_SUBMIT_NO_IMPLICIT_SYNC, the implicit fences of the
 * listed BOs allow it. The command buffer BO is implicitly listed for
 * reading.
 *
 * Ordering: jobs of one file on one queue and priority run in submission
 * order. A job waits for its in-fences to *finish*, and when one of them
 * failed, the job is not run and fails with -ECANCELED; the exception is
 * an in-fence of an earlier job of the same file, queue and priority,
 * which is already ordered before it and does not cancel it.
 *
 * Errors:
 *
 * - -EINVAL: undefined bits in @flags or in a BO or sync flag, non-zero
 *   @pad, @queue or @priority out of range, a stride smaller than the
 *   element or larger than 4096, non-zero bytes beyond a known element, a
 *   count above its DRM_REFNPU_PARAM_MAX_SUBMIT_* limit, @cmd_size 0 or not a
 *   multiple of 8, the command range outside its BO, a BO reference with
 *   neither READ nor WRITE;
 * - -ENOENT: a BO or syncobj handle names nothing, or an in-syncobj has
 *   no fence (at that point);
 * - -EFAULT: an array pointer is not readable;
 * - -EPERM: DRM_REFNPU_PRIORITY_HIGH without CAP_SYS_NICE;
 * - -ECANCELED: the context is banned;
 * - -ENOMEM: out of memory; -ENODEV: the device was removed;
 * - -EINTR or a restart: a signal arrived while locking the BOs.
 */
struct drm_refnpu_submit {
	/** @queue: hardware queue index, below DRM_REFNPU_PARAM_NUM_QUEUES */
	__u32 queue;
	/** @priority: an &enum drm_refnpu_priority value */
	__u32 priority;
	/** @flags: DRM_REFNPU_SUBMIT_* flags */
	__u32 flags;
	/** @cmd_handle: GEM handle of the BO holding the command buffer */
	__u32 cmd_handle;
	/** @cmd_offset: byte offset of the command buffer in its BO */
	__u64 cmd_offset;
	/** @cmd_size: size in bytes of the command buffer, a multiple of 8 */
	__u64 cmd_size;
	/** @bos: user pointer to an array of &struct drm_refnpu_bo_ref */
	__u64 bos;
	/** @bo_count: number of elements of @bos */
	__u32 bo_count;
	/** @bo_stride: size of one element of @bos */
	__u32 bo_stride;
	/** @in_syncs: user pointer to an array of &struct drm_refnpu_sync */
	__u64 in_syncs;
	/** @in_sync_count: number of elements of @in_syncs */
	__u32 in_sync_count;
	/** @in_sync_stride: size of one element of @in_syncs */
	__u32 in_sync_stride;
	/** @out_syncs: user pointer to an array of &struct drm_refnpu_sync */
	__u64 out_syncs;
	/** @out_sync_count: number of elements of @out_syncs */
	__u32 out_sync_count;
	/** @out_sync_stride: size of one element of @out_syncs */
	__u32 out_sync_stride;
	/** @pad: must be zero */
	__u64 pad;
};

/**
 * struct drm_refnpu_bo_userptr - create a buffer object from user memory
 *
 * Makes the calling process's memory [@user_ptr, @user_ptr + @size) a BO,
 * without copying: its pages are pinned and mapped into the file's device
 * address space, so the device and the process (through its own mapping)
 * share them. The pages stay pinned until the BO is freed, that is after
 * its last handle was closed and the last job listing it completed. If the
 * process unmaps or remaps the range meanwhile, the BO keeps the pages it
 * pinned, which the process no longer sees: keep the range mapped while
 * the BO is used.
 *
 * Pinned pages are accounted to the process's RLIMIT_MEMLOCK (as pinned
 * memory, VmPin in /proc/PID/status), unless it has CAP_IPC_LOCK.
 *
 * With DRM_REFNPU_BO_DEVICE_RO in @flags, the BO is mapped read-only in the
 * device MMU (DRM_IOCTL_REFNPU_BO_INFO reports the flag) and a job writing
 * it fails with -EFAULT. That flag is required for memory the process may
 * not write (a PROT_READ mapping, a file opened read-only) or that the
 * kernel lets no device write long term (a shared writable mapping of a
 * regular file on a file system that tracks dirty pages, such as ext4):
 * without it, such a range fails with -EACCES and nothing is pinned.
 *
 * A userptr BO has no mmap offset (DRM_IOCTL_REFNPU_BO_INFO reports 0: the
 * process maps the memory already) and cannot be exported as a dma-buf
 * (PRIME export fails with -EOPNOTSUPP), nor opened by global name by
 * another process, even in a file it inherited (DRM_IOCTL_GEM_OPEN fails
 * with -EOPNOTSUPP): its pages are the process's own. Available when
 * DRM_REFNPU_PARAM_CAPABILITIES has DRM_REFNPU_CAP_USERPTR.
 *
 * Errors: -EINVAL when @user_ptr or @size is not a multiple of the CPU page
 * size, @size is 0 or larger than DRM_REFNPU_PARAM_MAX_BO_SIZE, @flags has
 * bits other than DRM_REFNPU_BO_DEVICE_RO, or @handle or @va are not zero
 * on input; -EFAULT when part of the range is not mapped or cannot be
 * pinned (I/O memory, PFN mappings); -EACCES when part of the range cannot
 * be pinned for writing (above) and @flags lacks DRM_REFNPU_BO_DEVICE_RO;
 * -ENOMEM when the pages would exceed RLIMIT_MEMLOCK, or when out of
 * memory; -ENOSPC when the device address space is full; -ENODEV when
 * the device was removed.
 */
struct drm_refnpu_bo_userptr {
	/** @user_ptr: in, start address of the memory */
	__u64 user_ptr;
	/** @size: in, size of the memory in bytes */
	__u64 size;
	/** @flags: in, 0 or DRM_REFNPU_BO_DEVICE_RO */
	__u32 flags;
	/** @handle: out, GEM handle of the new BO */
	__u32 handle;
	/** @va: out, device virtual address of the BO in this file */
	__u64 va;
};

#if defined(__cplusplus)
}
#endif

#endif /* __UAPI_REFNPU_ACCEL_H__ */
