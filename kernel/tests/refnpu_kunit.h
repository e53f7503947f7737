/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * Helpers shared by the KUnit suites: a virtual device of their own, files
 * opened on it, ioctls issued through the real uAPI path (drm_ioctl() and
 * user memory), BOs filled from the kernel, and command encoders.
 */

#ifndef __REFNPU_KUNIT_H__
#define __REFNPU_KUNIT_H__

#include <linux/types.h>

#include "refnpu_hw.h"

struct device;
struct file;
struct kunit;
struct refnpu_ctx;
struct refnpu_device;

/* Scheduler timeout of the devices the recovery suites create. */
#define REFNPU_TEST_TIMEOUT_MS		1000
/* How long a test waits for a job before it gives up. */
#define REFNPU_TEST_WAIT_MS		20000

/* User scratch memory: slot 0 holds ioctl arguments, 1..15 arrays. */
#define REFNPU_TEST_SLOT_SIZE		4096
#define REFNPU_TEST_SLOTS		16

struct refnpu_device *refnpu_test_device(struct kunit *test,
					 unsigned int timeout_ms);
void refnpu_test_remove(struct kunit *test, struct refnpu_device *rdev);
struct device *refnpu_test_dma_device(struct kunit *test);
struct file *refnpu_test_open(struct kunit *test, struct refnpu_device *rdev);
void refnpu_test_close(struct kunit *test, struct file *filp);
struct refnpu_ctx *refnpu_test_ctx(struct file *filp);

u64 refnpu_test_user(struct kunit *test, unsigned int slot, const void *data,
		     size_t len);
int refnpu_test_ioctl(struct kunit *test, struct file *filp, unsigned int cmd,
		      void *arg);

int refnpu_test_bo(struct kunit *test, struct file *filp, u64 size, u32 flags,
		   u32 *handle, u64 *va);
void *refnpu_test_bo_map(struct kunit *test, struct file *filp, u32 handle);
void refnpu_test_bo_close(struct kunit *test, struct file *filp, u32 handle);
int refnpu_test_submit(struct kunit *test, struct file *filp,
		       unsigned int queue, u32 handle, u64 size);
int refnpu_test_wait(struct kunit *test, struct file *filp, u32 handle,
		     unsigned int timeout_ms, s32 *status);
int refnpu_test_run(struct kunit *test, struct file *filp, unsigned int queue,
		    u32 handle, u64 size, s32 *status);
u64 refnpu_test_param(struct kunit *test, struct file *filp, u32 param);

int refnpu_test_inject(struct refnpu_device *rdev, unsigned int queue,
		       u32 flags, u32 error, u32 delay_us, u64 fault_va);
u32 refnpu_test_reg(struct refnpu_device *rdev, u32 off);
void refnpu_test_reg_write(struct refnpu_device *rdev, u32 off, u32 val);

/* Command encoders: each writes one command at @p and returns its size. */

static inline size_t refnpu_test_cmd_nop(void *p)
{
	struct refnpu_cmd_nop *c = p;

	c->hdr.opcode = REFNPU_OP_NOP;
	c->hdr.flags = 0;
	c->hdr.len_dw = REFNPU_CMD_NOP_SIZE / 4;
	return REFNPU_CMD_NOP_SIZE;
}

static inline size_t refnpu_test_cmd_fill(void *p, u64 va, u64 pitch, u32 rows,
					  u32 row_bytes, u64 pattern,
					  u32 pattern_bytes)
{
	struct refnpu_cmd_fill *c = p;

	memset(c, 0, sizeof(*c));
	c->hdr.opcode = REFNPU_OP_FILL;
	c->hdr.len_dw = REFNPU_CMD_FILL_SIZE / 4;
	c->dst.va = va;
	c->dst.pitch = pitch;
	c->rows = rows;
	c->row_bytes = row_bytes;
	c->pattern = pattern;
	c->pattern_bytes = pattern_bytes;
	return REFNPU_CMD_FILL_SIZE;
}

static inline size_t refnpu_test_cmd_copy(void *p, u64 src, u64 dst,
					  u64 pitch, u32 rows, u32 row_bytes)
{
	struct refnpu_cmd_copy *c = p;

	memset(c, 0, sizeof(*c));
	c->hdr.opcode = REFNPU_OP_COPY;
	c->hdr.len_dw = REFNPU_CMD_COPY_SIZE / 4;
	c->src.va = src;
	c->src.pitch = pitch;
	c->dst.va = dst;
	c->dst.pitch = pitch;
	c->rows = rows;
	c->row_bytes = row_bytes;
	return REFNPU_CMD_COPY_SIZE;
}

#endif /* __REFNPU_KUNIT_H__ */
