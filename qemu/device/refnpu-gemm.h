/*
 * refnpu: host fast path for fp32 GEMM
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef HW_MISC_REFNPU_GEMM_H
#define HW_MISC_REFNPU_GEMM_H

/*
 * C[m][n] = sum_k A[m][k] * B[k][n] for row-major host matrices with
 * leading dimensions (in elements) lda, ldb and ldc.  C is overwritten.
 * The result satisfies the REFNPU_GEMM_TOL_* contract of refnpu_hw.h:
 * every product is exact in the fused multiply-add (or rounded once),
 * partial sums are rounded once per addition, so the error bound of a
 * k-term recursive summation applies whatever the blocking.
 *
 * Thread-safe; allocates its packing buffers per call.
 */
void refnpu_sgemm(size_t m, size_t n, size_t k,
                  const float *a, size_t lda,
                  const float *b, size_t ldb,
                  float *c, size_t ldc);

/* Name of the micro-kernel selected for this host, for diagnostics. */
const char *refnpu_sgemm_kernel_name(void);

#endif
