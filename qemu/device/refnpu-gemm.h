/*
 * refnpu: host fast path for fp32 GEMM
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef HW_MISC_REFNPU_GEMM_H
#define HW_MISC_REFNPU_GEMM_H

typedef struct RefnpuGemmKernel RefnpuGemmKernel;

/*
 * Look up a micro-kernel by name ("generic", "avx2", "avx512"), or the
 * best one the host supports for NULL or "auto".  Returns NULL when the
 * name is unknown or the host lacks the instructions.
 */
const RefnpuGemmKernel *refnpu_sgemm_kernel(const char *name);

/* The kernel's name, for diagnostics. */
const char *refnpu_sgemm_kernel_name(const RefnpuGemmKernel *kern);

/*
 * C[m][n] = sum_k A[m][k] * B[k][n] for row-major host matrices with
 * leading dimensions (in elements) lda, ldb and ldc.  C is overwritten.
 * Every product is exact in a fused multiply-add (or rounded once) and
 * partial sums are rounded once per addition, so the error bound of a
 * k-term recursive summation, and with it the REFNPU_GEMM_TOL_* contract
 * of refnpu_hw.h, holds whatever the blocking.
 *
 * @stop, if not NULL, is polled every few hundred microseconds of work;
 * when it returns true the multiplication is abandoned (C is then only
 * partly computed) and refnpu_sgemm() returns false.
 *
 * @work holds the packing buffers: refnpu_sgemm_work_size() bytes, 64-byte
 * aligned, owned by the caller (no allocation happens here).
 *
 * Thread-safe for distinct @work and @c.
 */
bool refnpu_sgemm(const RefnpuGemmKernel *kern, size_t m, size_t n, size_t k,
                  const float *a, size_t lda,
                  const float *b, size_t ldb,
                  float *c, size_t ldc, float *work,
                  bool (*stop)(void *opaque), void *opaque);

/* Bytes of the @work buffer refnpu_sgemm() needs. */
size_t refnpu_sgemm_work_size(void);

#endif
