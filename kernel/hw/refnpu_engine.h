/* SPDX-License-Identifier: MIT */
/*
 * refnpu compute engine: the reference implementation of every command in
 * refnpu_hw.h.  Freestanding C (no libc, no libm); all memory is reached
 * through callbacks that translate a device VA in the job's context, check
 * permissions and do the DMA, and that may fail.
 *
 * The QEMU model, the in-kernel virtual device and libaccel's reference
 * checker all link this one engine, so they compute bit-identical results
 * (except where an implementation plugs in the fp32 GEMM fast path, whose
 * tolerance is REFNPU_GEMM_TOL_* in refnpu_hw.h).
 *
 * Floating point: every entry point uses SSE2 float/double arithmetic.
 * In the kernel the caller must hold kernel_fpu_begin(); the checkpoint
 * callback may drop and retake it.  The engine source must be compiled
 * without floating-point contraction (-ffp-contract=off, which it also
 * requests by pragma) so that products and sums are rounded separately.
 *
 * The public API only uses integer types so that this header can be
 * included from translation units built without FPU support.
 *
 * Copyright (c) 2025 The refnpu authors
 */
#ifndef REFNPU_ENGINE_H
#define REFNPU_ENGINE_H

#include "refnpu_hw.h"

#ifndef __KERNEL__
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Built with REFNPU_ENGINE_NO_FP the engine contains no floating point at
 * all, for hosts that cannot use the FPU (a kernel without
 * CONFIG_ARCH_HAS_KERNEL_FPU_SUPPORT): the integer commands (NOP, COPY,
 * FILL, int8 GEMM) run as usual, every floating-point one (and GEMM with
 * floating-point types) fails with REFNPU_ERR_UNSUPPORTED, and the
 * floating-point scalar helpers below do not exist.  A device built on it
 * clears REFNPU_ENGINE_FP_CAPS from REFNPU_REG_CAPS: REFNPU_ENGINE_CAPS is
 * what such an engine can back.
 */
#ifdef REFNPU_ENGINE_NO_FP
#define REFNPU_ENGINE_HAS_FP		0
#else
#define REFNPU_ENGINE_HAS_FP		1
#endif
#define REFNPU_ENGINE_FP_CAPS \
	(REFNPU_CAP_FP32 | REFNPU_CAP_FP16 | REFNPU_CAP_BF16 | REFNPU_CAP_CONV)
#define REFNPU_ENGINE_CAPS \
	(REFNPU_ENGINE_HAS_FP ? REFNPU_CAPS_BASE : \
	 REFNPU_CAPS_BASE & ~REFNPU_ENGINE_FP_CAPS)

/* Returned by &refnpu_engine_env.gemm_f32 to run the reference instead. */
#define REFNPU_ENGINE_DECLINED		0xffffffffU

/*
 * Work units (roughly multiply-adds or elements) between two calls of
 * &refnpu_engine_env.checkpoint.
 */
#define REFNPU_ENGINE_CHUNK_WORK	REFNPU_BIT(16)

/*
 * Upper bound of the stack the engine itself uses on its deepest path
 * (excluding the callbacks), for kernel stack budgeting.
 */
#define REFNPU_ENGINE_MAX_STACK		3072

/**
 * struct refnpu_engine_env - how the engine reaches memory and its host
 * @opaque: passed unchanged to every callback
 * @read: copy @len bytes at device VA @va into @buf.  Returns
 *        REFNPU_ERR_NONE or the error code of the first failing byte
 *        (MMU_UNMAPPED, MMU_READ_PERM, MMU_WALK, DMA, ...); on failure it
 *        may set *@fault_va to the exact failing address (the engine
 *        pre-sets it to @va).  @len is never 0.
 * @write: copy @len bytes from @buf to device VA @va; as @read, reporting
 *         MMU_WRITE_PERM for read-only pages.  A failed write may have
 *         stored any prefix of the data.
 * @checkpoint: optional; called every REFNPU_ENGINE_CHUNK_WORK units of
 *              work and between commands.  The host may yield the CPU
 *              here (kernel: kernel_fpu_end(), cond_resched(),
 *              kernel_fpu_begin()).  Returning non-zero stops the job with
 *              that error code (e.g. REFNPU_ERR_TIMEOUT, REFNPU_ERR_ABORTED).
 * @gemm_f32: optional fast path for GEMM with in_dtype and out_dtype
 *            REFNPU_DTYPE_FP32, called after the engine validated @cmd and
 *            only when m, n > 0.  It must honour the contract of
 *            REFNPU_GEMM_TOL_FACTOR and reach memory through @read/@write.
 *            Returns REFNPU_ERR_NONE, an error code (setting *@fault_va and
 *            *@fault_flags, REFNPU_FAULT_F_*) or REFNPU_ENGINE_DECLINED.
 */
struct refnpu_engine_env {
	void *opaque;
	__u32 (*read)(void *opaque, __u64 va, void *buf, __u64 len,
		      __u64 *fault_va);
	__u32 (*write)(void *opaque, __u64 va, const void *buf, __u64 len,
		       __u64 *fault_va);
	__u32 (*checkpoint)(void *opaque);
	__u32 (*gemm_f32)(void *opaque, const struct refnpu_cmd_gemm *cmd,
			  __u64 *fault_va, __u32 *fault_flags);
};

/**
 * struct refnpu_engine_result - outcome of a command buffer
 * @status: REFNPU_ERR_* of the first failing command, or REFNPU_ERR_NONE
 * @fault_flags: REFNPU_FAULT_F_* describing the failing access
 * @fault_va: device VA of the failing access (0 for non-memory errors)
 * @cmd_index: index of the failing command; on success, commands executed
 * @cmd_offset: byte offset of the failing command; on success, cmd_size
 *
 * These fields map one to one onto struct refnpu_completion.
 */
struct refnpu_engine_result {
	__u32 status;
	__u32 fault_flags;
	__u64 fault_va;
	__u32 cmd_index;
	__u32 cmd_offset;
};

__u32 refnpu_engine_run(const struct refnpu_engine_env *env, __u64 cmd_va,
			__u64 cmd_size, struct refnpu_engine_result *res);
__u32 refnpu_engine_exec(const struct refnpu_engine_env *env,
			 const void *cmd, __u64 len,
			 struct refnpu_engine_result *res);
__u32 refnpu_engine_cmd_size(__u32 opcode);
const char *refnpu_engine_err_name(__u32 code);

/* Numerics, exposed (as IEEE bit patterns) for encoders and tests. */
__u16 refnpu_fp32_to_fp16(__u32 f);
__u32 refnpu_fp16_to_fp32(__u16 h);
__u16 refnpu_fp32_to_bf16(__u32 f);
__u32 refnpu_bf16_to_fp32(__u16 h);
__s8 refnpu_requantize(__s32 acc, __s32 multiplier, __u32 shift,
		       __s32 zero_point);
__u32 refnpu_act_fp32(__u32 func, __u32 x);
__u32 refnpu_exp_fp32(__u32 x);
__u32 refnpu_sqrt_fp32(__u32 x);

#ifdef __cplusplus
}
#endif

#endif /* REFNPU_ENGINE_H */
