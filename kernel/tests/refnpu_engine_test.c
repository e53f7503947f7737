// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * KUnit: the shared compute engine (hw/refnpu_engine.c) as the virtual
 * device runs it: under kernel_fpu_begin(), on memory reached through
 * callbacks that can fail. Covers the dispatch of every opcode (on small
 * operands whose results are exact, written as IEEE bit patterns since
 * this file is built without floating point), command-stream errors with
 * the failing command's index and offset, faults with their address and
 * flags, and the checkpoint hook the device uses to yield and to stop a
 * job.
 */

#include <kunit/test.h>

#include <linux/fpu.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "refnpu_engine.h"
#include "refnpu_kunit.h"

/* fp32 bit patterns */
#define F_M1	0xbf800000U
#define F_0	0x00000000U
#define F_HALF	0x3f000000U
#define F_1	0x3f800000U
#define F_2	0x40000000U
#define F_3	0x40400000U
#define F_4	0x40800000U
#define F_5	0x40a00000U
#define F_6	0x40c00000U
#define F_7	0x40e00000U
#define F_8	0x41000000U

#define MEM_BASE	0x100000ULL
#define MEM_SIZE	SZ_64K
/* Commands at the start of memory, data from here on. */
#define DATA		(MEM_BASE + SZ_32K)

/**
 * struct eng_mem - flat device memory for the engine
 * @buf: MEM_SIZE bytes at device VA MEM_BASE; outside is unmapped
 * @ro_start: first read-only address
 * @ro_end: end of the read-only range
 * @checkpoints: calls of the checkpoint hook
 * @abort_at: checkpoint call that stops the job (0: never)
 */
struct eng_mem {
	u8 *buf;
	u64 ro_start;
	u64 ro_end;
	unsigned int checkpoints;
	unsigned int abort_at;
};

static u32 eng_access(struct eng_mem *m, u64 va, u64 len, bool write,
		      u64 *fault_va)
{
	if (va < MEM_BASE || va >= MEM_BASE + MEM_SIZE) {
		*fault_va = va;
		return REFNPU_ERR_MMU_UNMAPPED;
	}
	if (len > MEM_BASE + MEM_SIZE - va) {
		*fault_va = MEM_BASE + MEM_SIZE;
		return REFNPU_ERR_MMU_UNMAPPED;
	}
	if (write && va < m->ro_end && va + len > m->ro_start) {
		*fault_va = max(va, m->ro_start);
		return REFNPU_ERR_MMU_WRITE_PERM;
	}

	return REFNPU_ERR_NONE;
}

static __u32 eng_read(void *opaque, __u64 va, void *buf, __u64 len,
		      __u64 *fault_va)
{
	struct eng_mem *m = opaque;
	u32 st = eng_access(m, va, len, false, fault_va);

	if (!st)
		memcpy(buf, m->buf + (va - MEM_BASE), len);
	return st;
}

static __u32 eng_write(void *opaque, __u64 va, const void *buf, __u64 len,
		       __u64 *fault_va)
{
	struct eng_mem *m = opaque;
	u32 st = eng_access(m, va, len, true, fault_va);

	if (!st)
		memcpy(m->buf + (va - MEM_BASE), buf, len);
	return st;
}

static __u32 eng_checkpoint(void *opaque)
{
	struct eng_mem *m = opaque;

	m->checkpoints++;
	return m->abort_at && m->checkpoints >= m->abort_at ?
	       REFNPU_ERR_ABORTED : REFNPU_ERR_NONE;
}

static struct eng_mem *eng_mem(struct kunit *test)
{
	struct eng_mem *m;

	m = kunit_kzalloc(test, sizeof(*m), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, m);
	m->buf = kunit_kzalloc(test, MEM_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, m->buf);

	return m;
}

static void *at(struct eng_mem *m, u64 va)
{
	return m->buf + (va - MEM_BASE);
}

static u32 *f32(struct eng_mem *m, u64 va)
{
	return at(m, va);
}

/* Run the command buffer at MEM_BASE, as the virtual device does. */
static u32 eng_run(struct eng_mem *m, u64 size, struct refnpu_engine_result *res)
{
	const struct refnpu_engine_env env = {
		.opaque = m,
		.read = eng_read,
		.write = eng_write,
		.checkpoint = eng_checkpoint,
	};
	u32 st;

	kernel_fpu_begin();
	st = refnpu_engine_run(&env, MEM_BASE, size, res);
	kernel_fpu_end();

	return st;
}

static void engine_cmd_sizes(struct kunit *test)
{
	static const u32 sizes[][2] = {
		{ REFNPU_OP_NOP, REFNPU_CMD_NOP_SIZE },
		{ REFNPU_OP_COPY, REFNPU_CMD_COPY_SIZE },
		{ REFNPU_OP_FILL, REFNPU_CMD_FILL_SIZE },
		{ REFNPU_OP_GEMM, REFNPU_CMD_GEMM_SIZE },
		{ REFNPU_OP_EWISE, REFNPU_CMD_EWISE_SIZE },
		{ REFNPU_OP_ACT, REFNPU_CMD_ACT_SIZE },
		{ REFNPU_OP_SOFTMAX, REFNPU_CMD_SOFTMAX_SIZE },
		{ REFNPU_OP_LAYERNORM, REFNPU_CMD_LAYERNORM_SIZE },
		{ REFNPU_OP_CONV2D, REFNPU_CMD_CONV2D_SIZE },
		{ REFNPU_OP_POOL2D, REFNPU_CMD_POOL2D_SIZE },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		KUNIT_EXPECT_EQ_MSG(test, refnpu_engine_cmd_size(sizes[i][0]),
				    sizes[i][1], "opcode 0x%x", sizes[i][0]);
	KUNIT_EXPECT_EQ(test, refnpu_engine_cmd_size(0x0003), 0U);
	KUNIT_EXPECT_EQ(test, refnpu_engine_cmd_size(0xffff), 0U);
	KUNIT_EXPECT_STREQ(test, refnpu_engine_err_name(REFNPU_ERR_MMU_UNMAPPED),
			   "MMU_UNMAPPED");
	KUNIT_EXPECT_STREQ(test, refnpu_engine_err_name(REFNPU_ERR_COUNT),
			   "UNKNOWN");
}

static void engine_nop_copy_fill(struct kunit *test)
{
	struct eng_mem *m = eng_mem(test);
	struct refnpu_engine_result res;
	u8 *p = m->buf;
	u64 off = 0;
	unsigned int i;

	for (i = 0; i < 32; i++)
		*(u8 *)at(m, DATA + i) = i;

	off += refnpu_test_cmd_nop(p + off);
	/* Two rows of 16 bytes, 64 bytes apart. */
	off += refnpu_test_cmd_copy(p + off, DATA, DATA + 0x100, 64, 2, 16);
	off += refnpu_test_cmd_fill(p + off, DATA + 0x200, 0, 1, 8,
				    0xa5a5, 2);
	KUNIT_ASSERT_EQ(test, eng_run(m, off, &res), (u32)REFNPU_ERR_NONE);
	KUNIT_EXPECT_EQ(test, res.status, (u32)REFNPU_ERR_NONE);
	KUNIT_EXPECT_EQ(test, res.cmd_index, 3U);
	KUNIT_EXPECT_EQ(test, res.cmd_offset, (u32)off);
	KUNIT_EXPECT_EQ(test, res.fault_va, 0ULL);

	KUNIT_EXPECT_MEMEQ(test, at(m, DATA + 0x100), at(m, DATA), 16);
	KUNIT_EXPECT_MEMEQ(test, at(m, DATA + 0x140), at(m, DATA + 64), 16);
	/* Nothing between the rows. */
	KUNIT_EXPECT_EQ(test, *(u8 *)at(m, DATA + 0x110), 0);
	KUNIT_EXPECT_EQ(test, *(u64 *)at(m, DATA + 0x200), 0xa5a5a5a5a5a5a5a5ULL);
	KUNIT_EXPECT_EQ(test, *(u8 *)at(m, DATA + 0x208), 0);

	/* An empty buffer runs nothing and succeeds. */
	KUNIT_EXPECT_EQ(test, eng_run(m, 0, &res), (u32)REFNPU_ERR_NONE);
	KUNIT_EXPECT_EQ(test, res.cmd_index, 0U);
}

static void engine_gemm(struct kunit *test)
{
	static const u32 a[] = { F_1, F_2, F_3, F_4 };
	static const u32 b[] = { F_2, F_0, F_0, F_2 };
	static const u32 bias[] = { F_1, F_M1 };
	static const u32 c_plain[] = { F_2, F_4, F_6, F_8 };
	static const u32 c_bias[] = { F_3, F_3, F_7, F_7 };
	struct eng_mem *m = eng_mem(test);
	struct refnpu_cmd_gemm *g = at(m, MEM_BASE);
	struct refnpu_engine_result res;

	memcpy(at(m, DATA), a, sizeof(a));
	memcpy(at(m, DATA + 0x100), b, sizeof(b));
	memcpy(at(m, DATA + 0x300), bias, sizeof(bias));

	g->hdr.opcode = REFNPU_OP_GEMM;
	g->hdr.len_dw = REFNPU_CMD_GEMM_SIZE / 4;
	g->a.va = DATA;
	g->a.pitch = 8;
	g->b.va = DATA + 0x100;
	g->b.pitch = 8;
	g->c.va = DATA + 0x200;
	g->c.pitch = 8;
	g->m = 2;
	g->n = 2;
	g->k = 2;
	g->in_dtype = REFNPU_DTYPE_FP32;
	g->out_dtype = REFNPU_DTYPE_FP32;
	KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_GEMM_SIZE, &res),
			(u32)REFNPU_ERR_NONE);
	KUNIT_EXPECT_MEMEQ(test, at(m, DATA + 0x200), c_plain, sizeof(c_plain));

	g->hdr.flags = REFNPU_GEMM_F_BIAS;
	g->bias_va = DATA + 0x300;
	KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_GEMM_SIZE, &res),
			(u32)REFNPU_ERR_NONE);
	KUNIT_EXPECT_MEMEQ(test, at(m, DATA + 0x200), c_bias, sizeof(c_bias));

	/* Unknown flag bits, or a bias address without the bias flag. */
	g->hdr.flags = 0x80;
	KUNIT_EXPECT_EQ(test, eng_run(m, REFNPU_CMD_GEMM_SIZE, &res),
			(u32)REFNPU_ERR_MALFORMED);
	g->hdr.flags = 0;
	KUNIT_EXPECT_EQ(test, eng_run(m, REFNPU_CMD_GEMM_SIZE, &res),
			(u32)REFNPU_ERR_MALFORMED);
	/* A dtype combination the device does not implement. */
	g->bias_va = 0;
	g->out_dtype = REFNPU_DTYPE_INT8;
	KUNIT_EXPECT_EQ(test, eng_run(m, REFNPU_CMD_GEMM_SIZE, &res),
			(u32)REFNPU_ERR_UNSUPPORTED);
	KUNIT_EXPECT_EQ(test, res.cmd_index, 0U);
}

static void engine_elementwise(struct kunit *test)
{
	static const u32 x[] = { F_1, F_2, F_3, F_4 };
	static const u32 add1[] = { F_2, F_3, F_4, F_5 };
	static const u32 relu_in[] = { F_M1, F_2 };
	static const u32 relu_out[] = { F_0, F_2 };
	static const u32 ln_in[] = { F_1, F_3 };
	static const u32 ln_out[] = { F_M1, F_1 };
	struct eng_mem *m = eng_mem(test);
	struct refnpu_engine_result res;
	u32 one = F_1;

	/* EWISE: add a broadcast scalar. */
	{
		struct refnpu_cmd_ewise *c = at(m, MEM_BASE);

		memcpy(at(m, DATA), x, sizeof(x));
		memcpy(at(m, DATA + 0x80), &one, 4);
		c->hdr.opcode = REFNPU_OP_EWISE;
		c->hdr.len_dw = REFNPU_CMD_EWISE_SIZE / 4;
		c->a.va = DATA;
		c->b.va = DATA + 0x80;
		c->out.va = DATA + 0x100;
		c->rows = 1;
		c->cols = 4;
		c->op = REFNPU_EWISE_ADD;
		c->bcast = REFNPU_BCAST_SCALAR;
		c->dtype = REFNPU_DTYPE_FP32;
		KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_EWISE_SIZE, &res),
				(u32)REFNPU_ERR_NONE);
		KUNIT_EXPECT_MEMEQ(test, at(m, DATA + 0x100), add1, sizeof(add1));
		c->op = REFNPU_EWISE_COUNT;
		KUNIT_EXPECT_EQ(test, eng_run(m, REFNPU_CMD_EWISE_SIZE, &res),
				(u32)REFNPU_ERR_UNSUPPORTED);
	}

	/* ACT: ReLU. */
	{
		struct refnpu_cmd_act *c = at(m, MEM_BASE);

		memset(m->buf, 0, REFNPU_CMD_MAX_SIZE);
		memcpy(at(m, DATA + 0x200), relu_in, sizeof(relu_in));
		c->hdr.opcode = REFNPU_OP_ACT;
		c->hdr.len_dw = REFNPU_CMD_ACT_SIZE / 4;
		c->src.va = DATA + 0x200;
		c->dst.va = DATA + 0x280;
		c->rows = 1;
		c->cols = 2;
		c->func = REFNPU_ACT_RELU;
		c->dtype = REFNPU_DTYPE_FP32;
		KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_ACT_SIZE, &res),
				(u32)REFNPU_ERR_NONE);
		KUNIT_EXPECT_MEMEQ(test, at(m, DATA + 0x280), relu_out,
				   sizeof(relu_out));
	}

	/* SOFTMAX of two equal values: one half each. */
	{
		struct refnpu_cmd_softmax *c = at(m, MEM_BASE);

		memset(m->buf, 0, REFNPU_CMD_MAX_SIZE);
		*f32(m, DATA + 0x300) = F_3;
		*f32(m, DATA + 0x304) = F_3;
		c->hdr.opcode = REFNPU_OP_SOFTMAX;
		c->hdr.len_dw = REFNPU_CMD_SOFTMAX_SIZE / 4;
		c->src.va = DATA + 0x300;
		c->dst.va = DATA + 0x380;
		c->rows = 1;
		c->cols = 2;
		c->dtype = REFNPU_DTYPE_FP32;
		KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_SOFTMAX_SIZE, &res),
				(u32)REFNPU_ERR_NONE);
		KUNIT_EXPECT_EQ(test, *f32(m, DATA + 0x380), F_HALF);
		KUNIT_EXPECT_EQ(test, *f32(m, DATA + 0x384), F_HALF);
	}

	/* LAYERNORM of {1, 3}: mean 2, variance 1. */
	{
		struct refnpu_cmd_layernorm *c = at(m, MEM_BASE);

		memset(m->buf, 0, REFNPU_CMD_MAX_SIZE);
		memcpy(at(m, DATA + 0x400), ln_in, sizeof(ln_in));
		c->hdr.opcode = REFNPU_OP_LAYERNORM;
		c->hdr.len_dw = REFNPU_CMD_LAYERNORM_SIZE / 4;
		c->src.va = DATA + 0x400;
		c->dst.va = DATA + 0x480;
		c->rows = 1;
		c->cols = 2;
		c->eps_bits = F_0;
		c->dtype = REFNPU_DTYPE_FP32;
		KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_LAYERNORM_SIZE, &res),
				(u32)REFNPU_ERR_NONE);
		KUNIT_EXPECT_MEMEQ(test, at(m, DATA + 0x480), ln_out,
				   sizeof(ln_out));
	}
}

static void engine_conv_pool(struct kunit *test)
{
	static const u32 pool_in[] = { F_1, F_4, F_2, F_3 };
	struct eng_mem *m = eng_mem(test);
	struct refnpu_engine_result res;

	/* 1x1 convolution of one element: 3 * 2. */
	{
		struct refnpu_cmd_conv2d *c = at(m, MEM_BASE);

		*f32(m, DATA) = F_3;
		*f32(m, DATA + 0x40) = F_2;
		c->hdr.opcode = REFNPU_OP_CONV2D;
		c->hdr.len_dw = REFNPU_CMD_CONV2D_SIZE / 4;
		c->in.va = DATA;
		c->out.va = DATA + 0x80;
		c->filter.va = DATA + 0x40;
		c->n = 1;
		c->h = 1;
		c->w = 1;
		c->c = 1;
		c->oc = 1;
		c->kh = 1;
		c->kw = 1;
		c->stride_h = 1;
		c->stride_w = 1;
		c->dil_h = 1;
		c->dil_w = 1;
		c->dtype = REFNPU_DTYPE_FP32;
		KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_CONV2D_SIZE, &res),
				(u32)REFNPU_ERR_NONE);
		KUNIT_EXPECT_EQ(test, *f32(m, DATA + 0x80), F_6);
		c->stride_h = 0;
		KUNIT_EXPECT_EQ(test, eng_run(m, REFNPU_CMD_CONV2D_SIZE, &res),
				(u32)REFNPU_ERR_MALFORMED);
	}

	/* 2x2 max pooling of a 2x2 image. */
	{
		struct refnpu_cmd_pool2d *c = at(m, MEM_BASE);

		memset(m->buf, 0, REFNPU_CMD_MAX_SIZE);
		memcpy(at(m, DATA + 0x100), pool_in, sizeof(pool_in));
		c->hdr.opcode = REFNPU_OP_POOL2D;
		c->hdr.len_dw = REFNPU_CMD_POOL2D_SIZE / 4;
		c->in.va = DATA + 0x100;
		c->in.pitch_h = 8;
		c->out.va = DATA + 0x180;
		c->n = 1;
		c->h = 2;
		c->w = 2;
		c->c = 1;
		c->kh = 2;
		c->kw = 2;
		c->stride_h = 2;
		c->stride_w = 2;
		c->mode = REFNPU_POOL_MAX;
		c->dtype = REFNPU_DTYPE_FP32;
		KUNIT_ASSERT_EQ(test, eng_run(m, REFNPU_CMD_POOL2D_SIZE, &res),
				(u32)REFNPU_ERR_NONE);
		KUNIT_EXPECT_EQ(test, *f32(m, DATA + 0x180), F_4);
	}
}

static void engine_bad_commands(struct kunit *test)
{
	struct eng_mem *m = eng_mem(test);
	struct refnpu_engine_result res;
	struct refnpu_cmd_hdr *h;
	u8 *p = m->buf;

	/* An unknown opcode after two good commands. */
	refnpu_test_cmd_nop(p);
	refnpu_test_cmd_nop(p + 8);
	h = (struct refnpu_cmd_hdr *)(p + 16);
	h->opcode = 0x0777;
	h->flags = 0;
	h->len_dw = 2;
	KUNIT_EXPECT_EQ(test, eng_run(m, 24, &res), (u32)REFNPU_ERR_UNSUPPORTED);
	KUNIT_EXPECT_EQ(test, res.cmd_index, 2U);
	KUNIT_EXPECT_EQ(test, res.cmd_offset, 16U);

	/* A known opcode with the wrong length. */
	h->opcode = REFNPU_OP_COPY;
	KUNIT_EXPECT_EQ(test, eng_run(m, 24, &res), (u32)REFNPU_ERR_MALFORMED);
	KUNIT_EXPECT_EQ(test, res.cmd_index, 2U);

	/* A command running past the end of the buffer. */
	h->len_dw = REFNPU_CMD_COPY_SIZE / 4;
	KUNIT_EXPECT_EQ(test, eng_run(m, 24, &res), (u32)REFNPU_ERR_MALFORMED);

	/* A zero length, and flags on a NOP. */
	h->opcode = REFNPU_OP_NOP;
	h->len_dw = 0;
	KUNIT_EXPECT_EQ(test, eng_run(m, 24, &res), (u32)REFNPU_ERR_MALFORMED);
	h->len_dw = 2;
	h->flags = 1;
	KUNIT_EXPECT_EQ(test, eng_run(m, 24, &res), (u32)REFNPU_ERR_MALFORMED);

	/* The buffer size itself must be a multiple of 8. */
	h->flags = 0;
	KUNIT_EXPECT_EQ(test, eng_run(m, 20, &res), (u32)REFNPU_ERR_MALFORMED);
	KUNIT_EXPECT_EQ(test, eng_run(m, 24, &res), (u32)REFNPU_ERR_NONE);
}

static void engine_faults(struct kunit *test)
{
	struct eng_mem *m = eng_mem(test);
	struct refnpu_engine_result res;
	u8 *p = m->buf;
	u64 off = 0;

	/* A fill that completes, then a copy reading unmapped memory. */
	off += refnpu_test_cmd_fill(p + off, DATA, 0, 1, 8, 0x11, 1);
	off += refnpu_test_cmd_copy(p + off, MEM_BASE + MEM_SIZE + SZ_4K, DATA,
				    0, 1, 8);
	KUNIT_EXPECT_EQ(test, eng_run(m, off, &res),
			(u32)REFNPU_ERR_MMU_UNMAPPED);
	KUNIT_EXPECT_EQ(test, res.status, (u32)REFNPU_ERR_MMU_UNMAPPED);
	KUNIT_EXPECT_EQ(test, res.fault_va, MEM_BASE + MEM_SIZE + SZ_4K);
	KUNIT_EXPECT_EQ(test, res.fault_flags, 0U);
	KUNIT_EXPECT_EQ(test, res.cmd_index, 1U);
	KUNIT_EXPECT_EQ(test, res.cmd_offset, (u32)REFNPU_CMD_FILL_SIZE);
	/* What the first command wrote stays written. */
	KUNIT_EXPECT_EQ(test, *(u64 *)at(m, DATA), 0x1111111111111111ULL);

	/* A write to read-only memory: the flags say so. */
	m->ro_start = DATA + 0x1000;
	m->ro_end = DATA + 0x2000;
	off = refnpu_test_cmd_fill(p, DATA + 0x1008, 0, 1, 8, 0, 1);
	KUNIT_EXPECT_EQ(test, eng_run(m, off, &res),
			(u32)REFNPU_ERR_MMU_WRITE_PERM);
	KUNIT_EXPECT_EQ(test, res.fault_va, DATA + 0x1008);
	KUNIT_EXPECT_TRUE(test, res.fault_flags & REFNPU_FAULT_F_WRITE);

	/* Running off the end of the memory while fetching commands. */
	off = MEM_SIZE - 8;
	refnpu_test_cmd_nop(p + off);
	{
		const struct refnpu_engine_env env = {
			.opaque = m,
			.read = eng_read,
			.write = eng_write,
		};

		kernel_fpu_begin();
		refnpu_engine_run(&env, MEM_BASE + off, 16, &res);
		kernel_fpu_end();
	}
	KUNIT_EXPECT_EQ(test, res.status, (u32)REFNPU_ERR_MMU_UNMAPPED);
	KUNIT_EXPECT_TRUE(test, res.fault_flags & REFNPU_FAULT_F_CMD_FETCH);
	KUNIT_EXPECT_EQ(test, res.cmd_index, 1U);
	KUNIT_EXPECT_EQ(test, res.fault_va, MEM_BASE + MEM_SIZE);
}

static void engine_checkpoint(struct kunit *test)
{
	struct eng_mem *m = eng_mem(test);
	unsigned int n = SZ_32K / REFNPU_CMD_NOP_SIZE, i;
	struct refnpu_engine_result res;

	for (i = 0; i < n; i++)
		refnpu_test_cmd_nop(m->buf + i * REFNPU_CMD_NOP_SIZE);

	/* The hook runs while the buffer executes, then it is done. */
	KUNIT_EXPECT_EQ(test, eng_run(m, SZ_32K, &res), (u32)REFNPU_ERR_NONE);
	KUNIT_EXPECT_EQ(test, res.cmd_index, n);
	KUNIT_EXPECT_GE(test, m->checkpoints, 2U);

	/* A stop from the hook ends the job where it is. */
	m->checkpoints = 0;
	m->abort_at = 1;
	KUNIT_EXPECT_EQ(test, eng_run(m, SZ_32K, &res), (u32)REFNPU_ERR_ABORTED);
	KUNIT_EXPECT_EQ(test, m->checkpoints, 1U);
	KUNIT_EXPECT_LT(test, res.cmd_index, n);
	KUNIT_EXPECT_EQ(test, res.cmd_offset, res.cmd_index * REFNPU_CMD_NOP_SIZE);
}

static int engine_init(struct kunit *test)
{
	if (!kernel_fpu_available())
		kunit_skip(test, "no kernel-mode floating point");
	return 0;
}

static struct kunit_case refnpu_engine_cases[] = {
	KUNIT_CASE(engine_cmd_sizes),
	KUNIT_CASE(engine_nop_copy_fill),
	KUNIT_CASE(engine_gemm),
	KUNIT_CASE(engine_elementwise),
	KUNIT_CASE(engine_conv_pool),
	KUNIT_CASE(engine_bad_commands),
	KUNIT_CASE(engine_faults),
	KUNIT_CASE(engine_checkpoint),
	{}
};

static struct kunit_suite refnpu_engine_suite = {
	.name = "refnpu_engine",
	.init = engine_init,
	.test_cases = refnpu_engine_cases,
};

kunit_test_suite(refnpu_engine_suite);
