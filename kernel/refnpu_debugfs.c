// SPDX-License-Identifier: GPL-2.0-only
/*
 * Copyright (C) 2025 The refnpu authors
 *
 * debugfs, under /sys/kernel/debug/accel/<minor>/:
 *   queues     per-queue counters and ring state
 *   contexts   every context: owner, hangs, faults, address space
 *   counters   device-wide counters
 *   registers  the device's registers (through the backend)
 *   reset      write 1 to reset the device (jobs in flight fail with -EAGAIN,
 *              queued ones are resubmitted); on a wedged device (counters:
 *              "wedged 1") this tries the reset again
 *   inject     write "<queue> <flags> [<error> [<delay_us> [<fault_va>]]]"
 *              to arm fault injection (REFNPU_DBG_INJECT_* flags) for the
 *              next job of a queue, or "spurious <vector>" to make the
 *              device send an interrupt with nothing behind it (vector 0:
 *              error, 1 + q: queue q), when the device supports it
 */

#include <linux/debugfs.h>
#include <linux/kstrtox.h>
#include <linux/pid.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include <drm/drm_debugfs.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_print.h>

#include "refnpu_debugfs.h"
#include "refnpu_drv.h"
#include "refnpu_hw_ops.h"
#include "refnpu_job.h"
#include "refnpu_mmu.h"

static int refnpu_debugfs_queues(struct seq_file *m, void *unused)
{
	struct refnpu_device *rdev = to_refnpu(((struct drm_debugfs_entry *)m->private)->dev);
	unsigned int i;

	for (i = 0; i < rdev->info.num_queues; i++) {
		struct refnpu_queue *q = &rdev->queues[i];
		struct refnpu_queue_stats *s = &q->stats;
		struct refnpu_job *job;
		unsigned long flags;
		unsigned int active = 0;
		u64 next;

		spin_lock_irqsave(&q->lock, flags);
		list_for_each_entry(job, &q->active, link)
			active++;
		next = q->next_seq;
		spin_unlock_irqrestore(&q->lock, flags);

		seq_printf(m, "%s: active %u next_seq %llu submitted %lld completed %lld failed %lld timeouts %lld resets %lld lost_irqs %lld busy_ns %lld credits %u\n",
			   q->name, active, next,
			   atomic64_read(&s->submitted),
			   atomic64_read(&s->completed),
			   atomic64_read(&s->failed),
			   atomic64_read(&s->timeouts),
			   atomic64_read(&s->resets),
			   atomic64_read(&s->lost_irqs),
			   atomic64_read(&s->busy_ns),
			   atomic_read(&q->sched.credit_count));
	}

	return 0;
}

static int refnpu_debugfs_contexts(struct seq_file *m, void *unused)
{
	struct refnpu_device *rdev = to_refnpu(((struct drm_debugfs_entry *)m->private)->dev);
	struct drm_printer p = drm_seq_file_printer(m);
	struct refnpu_ctx *ctx;

	mutex_lock(&rdev->ctx_lock);
	list_for_each_entry(ctx, &rdev->ctx_list, link) {
		seq_printf(m, "context %u pid %d hangs %d banned %d faults %lld\n",
			   ctx->id, pid_nr(ctx->pid), atomic_read(&ctx->hangs),
			   READ_ONCE(ctx->banned), atomic64_read(&ctx->faults));
		refnpu_mmu_show(ctx, &p);
	}
	mutex_unlock(&rdev->ctx_lock);

	return 0;
}

static int refnpu_debugfs_counters(struct seq_file *m, void *unused)
{
	struct refnpu_device *rdev = to_refnpu(((struct drm_debugfs_entry *)m->private)->dev);

	seq_printf(m, "device_resets %lld\nfaults %lld\nspurious_irqs %lld\ntlb_timeouts %lld\nwedged %d\n",
		   atomic64_read(&rdev->device_resets),
		   atomic64_read(&rdev->mmu_faults),
		   atomic64_read(&rdev->spurious_irqs),
		   atomic64_read(&rdev->tlb_timeouts),
		   READ_ONCE(rdev->wedged));
	return 0;
}

static int refnpu_debugfs_registers(struct seq_file *m, void *unused)
{
	struct refnpu_device *rdev = to_refnpu(((struct drm_debugfs_entry *)m->private)->dev);
	struct drm_printer p = drm_seq_file_printer(m);
	int idx;

	if (!drm_dev_enter(&rdev->drm, &idx))
		return -ENODEV;
	rdev->hw_ops->show(rdev, &p);
	drm_dev_exit(idx);

	return 0;
}

static const struct drm_debugfs_info refnpu_debugfs_list[] = {
	{ "queues", refnpu_debugfs_queues, 0 },
	{ "contexts", refnpu_debugfs_contexts, 0 },
	{ "counters", refnpu_debugfs_counters, 0 },
	{ "registers", refnpu_debugfs_registers, 0 },
};

static ssize_t refnpu_debugfs_reset_write(struct file *file,
					  const char __user *ubuf,
					  size_t count, loff_t *pos)
{
	struct refnpu_device *rdev = file->private_data;
	bool go;
	int ret;

	ret = kstrtobool_from_user(ubuf, count, &go);
	if (ret)
		return ret;
	if (go)
		refnpu_device_reset_async(rdev);

	return count;
}

static const struct file_operations refnpu_debugfs_reset_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = refnpu_debugfs_reset_write,
};

/* "spurious <vector>": an interrupt with nothing behind it, right now. */
static int refnpu_debugfs_spurious_irq(struct refnpu_device *rdev, char *arg)
{
	unsigned int vector;
	int ret, idx;

	ret = kstrtouint(strim(arg), 0, &vector);
	if (ret)
		return ret;

	if (!drm_dev_enter(&rdev->drm, &idx))
		return -ENODEV;
	ret = rdev->hw_ops->spurious_irq ?
	      rdev->hw_ops->spurious_irq(rdev, vector) : -EOPNOTSUPP;
	drm_dev_exit(idx);

	return ret;
}

static ssize_t refnpu_debugfs_inject_write(struct file *file,
					   const char __user *ubuf,
					   size_t count, loff_t *pos)
{
	struct refnpu_device *rdev = file->private_data;
	struct refnpu_hw_inject inj = {};
	char buf[96], *s = buf, *tok;
	unsigned int queue = 0, n = 0;
	u64 vals[5] = {};
	int ret, idx;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';

	s = skip_spaces(buf);
	if (str_has_prefix(s, "spurious ")) {
		ret = refnpu_debugfs_spurious_irq(rdev, s + strlen("spurious "));
		return ret ? ret : count;
	}

	while ((tok = strsep(&s, " \t\n")) && n < ARRAY_SIZE(vals)) {
		if (!*tok)
			continue;
		ret = kstrtou64(tok, 0, &vals[n++]);
		if (ret)
			return ret;
	}
	if (n < 2 || vals[0] >= rdev->info.num_queues)
		return -EINVAL;

	queue = vals[0];
	inj.flags = vals[1];
	inj.error = vals[2];
	inj.delay_us = vals[3];
	inj.fault_va = vals[4];

	if (!drm_dev_enter(&rdev->drm, &idx))
		return -ENODEV;
	ret = rdev->hw_ops->inject(rdev, queue, &inj);
	drm_dev_exit(idx);

	return ret ? ret : count;
}

static const struct file_operations refnpu_debugfs_inject_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = refnpu_debugfs_inject_write,
};

/**
 * refnpu_debugfs_init() - create the device's debugfs files
 * @rdev: device, before registration
 */
void refnpu_debugfs_init(struct refnpu_device *rdev)
{
	struct dentry *root = rdev->drm.debugfs_root;

	drm_debugfs_add_files(&rdev->drm, refnpu_debugfs_list,
			      ARRAY_SIZE(refnpu_debugfs_list));
	debugfs_create_file("reset", 0200, root, rdev,
			    &refnpu_debugfs_reset_fops);
	debugfs_create_file("inject", 0200, root, rdev,
			    &refnpu_debugfs_inject_fops);
}
