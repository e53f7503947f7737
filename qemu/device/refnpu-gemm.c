/*
 * refnpu: host fast path for fp32 GEMM
 *
 * A cache-blocked GEMM in the style of Goto/BLIS: B is packed into
 * KC x NR column panels, A into MC x KC blocks of MR-row panels, and a
 * register-tiled micro-kernel (MR = 6 rows by two vectors) accumulates
 * into C.  The micro-kernel is written once with GCC vector extensions and
 * instantiated for 4-float vectors (baseline ISA), 8-float vectors
 * (AVX2+FMA) and 16-float vectors (AVX-512); the best one the host
 * supports is chosen at run time.  Results differ from the reference engine only by the
 * summation order and by fused multiply-adds, which the tolerance of
 * REFNPU_GEMM_TOL_FACTOR covers.
 *
 * Copyright (c) 2025 The refnpu authors
 *
 * SPDX-License-Identifier: MIT
 */

#include "qemu/osdep.h"
#include "refnpu-gemm.h"

#define MR 6            /* rows of the micro-tile */
#define NR_MAX 32       /* widest micro-tile (two 16-float vectors) */
#define KC 256          /* depth of a packed panel */
#define MC 96           /* rows of a packed A block (multiple of MR) */
#define NC 1024         /* columns of a packed B block (multiple of NR) */

typedef void MicroKernel(size_t kc, const float *a, const float *b,
                         float *c, size_t ldc, size_t mr, size_t nr,
                         bool first);

struct RefnpuGemmKernel {
    const char *name;
    MicroKernel *fn;
    size_t nr;              /* columns of the micro-tile */
    bool (*supported)(void);
};

typedef float v4sf __attribute__((vector_size(16), aligned(16)));
typedef float v4sf_u __attribute__((vector_size(16), aligned(4)));
typedef float v8sf __attribute__((vector_size(32), aligned(32)));
typedef float v8sf_u __attribute__((vector_size(32), aligned(4)));
typedef float v16sf __attribute__((vector_size(64), aligned(64)));
typedef float v16sf_u __attribute__((vector_size(64), aligned(4)));

/*
 * c[0..mr)[0..nr) (+)= a-panel (kc x MR, packed by k) * b-panel
 * (kc x 2*VL, packed by k).  Computes a full MR x 2*VL tile in registers
 * and stores only mr x nr of it.
 */
#define DEFINE_MICRO_KERNEL(fname, attr, vt, vt_u, VL)                      \
static attr void fname(size_t kc, const float *restrict a,                  \
                       const float *restrict b, float *restrict c,          \
                       size_t ldc, size_t mr, size_t nr, bool first)        \
{                                                                           \
    vt c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};    \
    vt c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};    \
    vt zero = {0};                                                          \
                                                                            \
    for (size_t p = 0; p < kc; p++) {                                       \
        vt b0 = *(const vt *)b;                                             \
        vt b1 = *(const vt *)(b + VL);                                      \
        vt av;                                                              \
                                                                            \
        av = zero + a[0];                                                   \
        c00 += av * b0;                                                     \
        c01 += av * b1;                                                     \
        av = zero + a[1];                                                   \
        c10 += av * b0;                                                     \
        c11 += av * b1;                                                     \
        av = zero + a[2];                                                   \
        c20 += av * b0;                                                     \
        c21 += av * b1;                                                     \
        av = zero + a[3];                                                   \
        c30 += av * b0;                                                     \
        c31 += av * b1;                                                     \
        av = zero + a[4];                                                   \
        c40 += av * b0;                                                     \
        c41 += av * b1;                                                     \
        av = zero + a[5];                                                   \
        c50 += av * b0;                                                     \
        c51 += av * b1;                                                     \
        a += MR;                                                            \
        b += 2 * VL;                                                        \
    }                                                                       \
                                                                            \
    vt acc[MR][2] = {                                                       \
        { c00, c01 }, { c10, c11 }, { c20, c21 },                           \
        { c30, c31 }, { c40, c41 }, { c50, c51 },                           \
    };                                                                      \
                                                                            \
    if (mr == MR && nr == 2 * VL) {                                         \
        for (size_t i = 0; i < MR; i++) {                                   \
            vt_u *row = (vt_u *)(c + i * ldc);                              \
                                                                            \
            if (first) {                                                    \
                row[0] = acc[i][0];                                         \
                row[1] = acc[i][1];                                         \
            } else {                                                        \
                row[0] += acc[i][0];                                        \
                row[1] += acc[i][1];                                        \
            }                                                               \
        }                                                                   \
        return;                                                             \
    }                                                                       \
    for (size_t i = 0; i < mr; i++) {                                       \
        float tmp[2 * VL];                                                  \
                                                                            \
        memcpy(tmp, acc[i], sizeof(tmp));                                   \
        for (size_t j = 0; j < nr; j++) {                                   \
            c[i * ldc + j] = first ? tmp[j] : c[i * ldc + j] + tmp[j];      \
        }                                                                   \
    }                                                                       \
}

DEFINE_MICRO_KERNEL(micro_kernel_generic, , v4sf, v4sf_u, 4)

static bool always(void)
{
    return true;
}

#if defined(__x86_64__) || defined(__i386__)
DEFINE_MICRO_KERNEL(micro_kernel_avx2, __attribute__((target("avx2,fma"))),
                    v8sf, v8sf_u, 8)
DEFINE_MICRO_KERNEL(micro_kernel_avx512, __attribute__((target("avx512f"))),
                    v16sf, v16sf_u, 16)

static bool have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static bool have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}
#endif

/* In order of preference. */
static const RefnpuGemmKernel kernels[] = {
#if defined(__x86_64__) || defined(__i386__)
    { "avx512", micro_kernel_avx512, 32, have_avx512 },
    { "avx2", micro_kernel_avx2, 16, have_avx2 },
#endif
    { "generic", micro_kernel_generic, 8, always },
};

const RefnpuGemmKernel *refnpu_sgemm_kernel(const char *name)
{
    bool any = !name || !strcmp(name, "auto");

    for (size_t i = 0; i < ARRAY_SIZE(kernels); i++) {
        if ((any || !strcmp(name, kernels[i].name)) &&
            kernels[i].supported()) {
            return &kernels[i];
        }
    }
    return NULL;
}

const char *refnpu_sgemm_kernel_name(const RefnpuGemmKernel *kern)
{
    return kern->name;
}

/* Pack B[0..kc)[0..nc) into nr-wide panels, zero-padding the last one. */
static void pack_b(size_t kc, size_t nc, size_t nr, const float *b,
                   size_t ldb, float *dst)
{
    for (size_t jr = 0; jr < nc; jr += nr) {
        size_t w = MIN(nc - jr, nr);
        float *panel = dst + jr * kc;

        for (size_t p = 0; p < kc; p++) {
            memcpy(panel + p * nr, b + p * ldb + jr, w * sizeof(float));
            if (w < nr) {
                memset(panel + p * nr + w, 0, (nr - w) * sizeof(float));
            }
        }
    }
}

/* Pack A[0..mc)[0..kc) into MR-high panels stored k-major. */
static void pack_a(size_t mc, size_t kc, const float *a, size_t lda,
                   float *dst)
{
    for (size_t ir = 0; ir < mc; ir += MR) {
        size_t h = MIN(mc - ir, MR);
        float *panel = dst + ir * kc;

        for (size_t i = 0; i < MR; i++) {
            if (i < h) {
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

bool refnpu_sgemm(const RefnpuGemmKernel *kern, size_t m, size_t n, size_t k,
                  const float *a, size_t lda,
                  const float *b, size_t ldb,
                  float *c, size_t ldc, float *work,
                  bool (*stop)(void *opaque), void *opaque)
{
    size_t nr = kern->nr;
    float *bpack = work, *apack = work + KC * NC;

    if (!m || !n) {
        return true;
    }
    if (!k) {
        for (size_t i = 0; i < m; i++) {
            memset(c + i * ldc, 0, n * sizeof(float));
        }
        return true;
    }

    for (size_t jc = 0; jc < n; jc += NC) {
        size_t nc = MIN(n - jc, NC);

        for (size_t pc = 0; pc < k; pc += KC) {
            size_t kc = MIN(k - pc, KC);

            pack_b(kc, nc, nr, b + pc * ldb + jc, ldb, bpack);
            for (size_t ic = 0; ic < m; ic += MC) {
                size_t mc = MIN(m - ic, MC);

                /* one MC x KC x NC block: at most ~25M multiply-adds */
                if (stop && stop(opaque)) {
                    return false;
                }
                pack_a(mc, kc, a + ic * lda + pc, lda, apack);
                for (size_t jr = 0; jr < nc; jr += nr) {
                    for (size_t ir = 0; ir < mc; ir += MR) {
                        kern->fn(kc, apack + ir * kc, bpack + jr * kc,
                                 c + (ic + ir) * ldc + jc + jr, ldc,
                                 MIN(mc - ir, MR), MIN(nc - jr, nr),
                                 pc == 0);
                    }
                }
            }
        }
    }
    return true;
}

size_t refnpu_sgemm_work_size(void)
{
    return sizeof(float) * (KC * NC + KC * MC);
}
