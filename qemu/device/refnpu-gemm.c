/*
 * refnpu: host fast path for fp32 GEMM
 *
 * A cache-blocked GEMM in the style of Goto/BLIS: B is packed into
 * KC x NR column panels that stay in L2, A into MC x KC blocks of MR-row
 * panels, and a 6x16 register-tiled micro-kernel accumulates into C.  The
 * micro-kernel is written with GCC vector extensions and compiled twice:
 * for AVX2+FMA (selected at run time when the host has them) and for the
 * baseline ISA.  Results differ from the reference engine only by the
 * summation order and by fused multiply-adds, which the tolerance of
 * REFNPU_GEMM_TOL_FACTOR covers.
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/memalign.h"
#include "refnpu-gemm.h"

#define MR 6            /* rows of the micro-tile */
#define NR 16           /* columns of the micro-tile (two 8-float vectors) */
#define KC 256          /* depth of a packed panel */
#define MC 96           /* rows of a packed A block (multiple of MR) */
#define NC 1024         /* columns of a packed B block (multiple of NR) */

typedef float v8sf __attribute__((vector_size(32), aligned(32)));
typedef float v8sf_u __attribute__((vector_size(32), aligned(4)));

typedef void MicroKernel(size_t kc, const float *a, const float *b,
                         float *c, size_t ldc, size_t mr, size_t nr,
                         bool first);

/*
 * c[0..mr)[0..nr) (+)= a-panel (kc x MR, packed by k) * b-panel (kc x NR).
 * Always computes a full MR x NR tile in registers; stores only mr x nr.
 */
static inline __attribute__((always_inline))
void micro_kernel_body(size_t kc, const float *restrict a,
                       const float *restrict b, float *restrict c,
                       size_t ldc, size_t mr, size_t nr, bool first)
{
    v8sf c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    v8sf c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    v8sf zero = {0};

    for (size_t p = 0; p < kc; p++) {
        v8sf b0 = *(const v8sf *)b;
        v8sf b1 = *(const v8sf *)(b + 8);
        v8sf av;

        av = zero + a[0];
        c00 += av * b0;
        c01 += av * b1;
        av = zero + a[1];
        c10 += av * b0;
        c11 += av * b1;
        av = zero + a[2];
        c20 += av * b0;
        c21 += av * b1;
        av = zero + a[3];
        c30 += av * b0;
        c31 += av * b1;
        av = zero + a[4];
        c40 += av * b0;
        c41 += av * b1;
        av = zero + a[5];
        c50 += av * b0;
        c51 += av * b1;
        a += MR;
        b += NR;
    }

    v8sf acc[MR][2] = {
        { c00, c01 }, { c10, c11 }, { c20, c21 },
        { c30, c31 }, { c40, c41 }, { c50, c51 },
    };

    if (mr == MR && nr == NR) {
        for (size_t i = 0; i < MR; i++) {
            v8sf_u *row = (v8sf_u *)(c + i * ldc);

            if (first) {
                row[0] = acc[i][0];
                row[1] = acc[i][1];
            } else {
                row[0] += acc[i][0];
                row[1] += acc[i][1];
            }
        }
        return;
    }
    for (size_t i = 0; i < mr; i++) {
        float tmp[NR];

        memcpy(tmp, acc[i], sizeof(tmp));
        for (size_t j = 0; j < nr; j++) {
            c[i * ldc + j] = first ? tmp[j] : c[i * ldc + j] + tmp[j];
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
static __attribute__((target("avx2,fma")))
void micro_kernel_avx2(size_t kc, const float *a, const float *b, float *c,
                       size_t ldc, size_t mr, size_t nr, bool first)
{
    micro_kernel_body(kc, a, b, c, ldc, mr, nr, first);
}
#endif

static void micro_kernel_generic(size_t kc, const float *a, const float *b,
                                 float *c, size_t ldc, size_t mr, size_t nr,
                                 bool first)
{
    micro_kernel_body(kc, a, b, c, ldc, mr, nr, first);
}

static MicroKernel *select_kernel(const char **name)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *name = "avx2-fma-6x16";
        return micro_kernel_avx2;
    }
#endif
    *name = "generic-6x16";
    return micro_kernel_generic;
}

static MicroKernel *kernel_fn;
static const char *kernel_name;

static MicroKernel *get_kernel(void)
{
    MicroKernel *k = qatomic_read(&kernel_fn);

    if (!k) {
        const char *name;

        k = select_kernel(&name);
        qatomic_set(&kernel_name, name);
        qatomic_set(&kernel_fn, k);
    }
    return k;
}

const char *refnpu_sgemm_kernel_name(void)
{
    get_kernel();
    return qatomic_read(&kernel_name);
}

/* Pack B[0..kc)[0..nc) into NR-wide panels, zero-padding the last one. */
static void pack_b(size_t kc, size_t nc, const float *b, size_t ldb,
                   float *dst)
{
    for (size_t jr = 0; jr < nc; jr += NR) {
        size_t nr = MIN(nc - jr, NR);
        float *panel = dst + jr * kc;

        for (size_t p = 0; p < kc; p++) {
            const float *src = b + p * ldb + jr;

            memcpy(panel + p * NR, src, nr * sizeof(float));
            if (nr < NR) {
                memset(panel + p * NR + nr, 0, (NR - nr) * sizeof(float));
            }
        }
    }
}

/* Pack A[0..mc)[0..kc) into MR-high panels stored k-major. */
static void pack_a(size_t mc, size_t kc, const float *a, size_t lda,
                   float *dst)
{
    for (size_t ir = 0; ir < mc; ir += MR) {
        size_t mr = MIN(mc - ir, MR);
        float *panel = dst + ir * kc;

        for (size_t i = 0; i < MR; i++) {
            if (i < mr) {
                const float *src = a + (ir + i) * lda;

                for (size_t p = 0; p < kc; p++) {
                    panel[p * MR + i] = src[p];
                }
            } else {
                for (size_t p = 0; p < kc; p++) {
                    panel[p * MR + i] = 0.0f;
                }
            }
        }
    }
}

void refnpu_sgemm(size_t m, size_t n, size_t k,
                  const float *a, size_t lda,
                  const float *b, size_t ldb,
                  float *c, size_t ldc)
{
    MicroKernel *kern = get_kernel();
    float *bpack, *apack;

    if (!m || !n) {
        return;
    }
    if (!k) {
        for (size_t i = 0; i < m; i++) {
            memset(c + i * ldc, 0, n * sizeof(float));
        }
        return;
    }

    bpack = qemu_memalign(64, sizeof(float) * KC * NC);
    apack = qemu_memalign(64, sizeof(float) * KC * MC);

    for (size_t jc = 0; jc < n; jc += NC) {
        size_t nc = MIN(n - jc, NC);

        for (size_t pc = 0; pc < k; pc += KC) {
            size_t kc = MIN(k - pc, KC);

            pack_b(kc, nc, b + pc * ldb + jc, ldb, bpack);
            for (size_t ic = 0; ic < m; ic += MC) {
                size_t mc = MIN(m - ic, MC);

                pack_a(mc, kc, a + ic * lda + pc, lda, apack);
                for (size_t jr = 0; jr < nc; jr += NR) {
                    for (size_t ir = 0; ir < mc; ir += MR) {
                        kern(kc, apack + ir * kc, bpack + jr * kc,
                             c + (ic + ir) * ldc + jc + jr, ldc,
                             MIN(mc - ir, MR), MIN(nc - jr, NR), pc == 0);
                    }
                }
            }
        }
    }

    qemu_vfree(apack);
    qemu_vfree(bpack);
}
