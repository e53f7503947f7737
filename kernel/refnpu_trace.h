/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copyright (C) 2025 The refnpu authors
 */

#if !defined(__REFNPU_TRACE_H__) || defined(TRACE_HEADER_MULTI_READ)
#define __REFNPU_TRACE_H__

#include <linux/tracepoint.h>
#include <linux/types.h>

#undef TRACE_SYSTEM
#define TRACE_SYSTEM refnpu
#define TRACE_INCLUDE_FILE refnpu_trace

DECLARE_EVENT_CLASS(refnpu_job,
		    TP_PROTO(u32 dev, u32 queue, u32 ctx, u64 seq, u64 cmd_va,
			     u64 cmd_size),
		    TP_ARGS(dev, queue, ctx, seq, cmd_va, cmd_size),
		    TP_STRUCT__entry(__field(u32, dev)
				     __field(u32, queue)
				     __field(u32, ctx)
				     __field(u64, seq)
				     __field(u64, cmd_va)
				     __field(u64, cmd_size)),
		    TP_fast_assign(__entry->dev = dev;
				   __entry->queue = queue;
				   __entry->ctx = ctx;
				   __entry->seq = seq;
				   __entry->cmd_va = cmd_va;
				   __entry->cmd_size = cmd_size;),
		    TP_printk("dev=%u queue=%u ctx=%u seq=%llu cmd=0x%llx+0x%llx",
			      __entry->dev, __entry->queue, __entry->ctx,
			      __entry->seq, __entry->cmd_va, __entry->cmd_size)
);

DEFINE_EVENT(refnpu_job, refnpu_job_submit,
	     TP_PROTO(u32 dev, u32 queue, u32 ctx, u64 seq, u64 cmd_va,
		      u64 cmd_size),
	     TP_ARGS(dev, queue, ctx, seq, cmd_va, cmd_size)
);

DEFINE_EVENT(refnpu_job, refnpu_job_run,
	     TP_PROTO(u32 dev, u32 queue, u32 ctx, u64 seq, u64 cmd_va,
		      u64 cmd_size),
	     TP_ARGS(dev, queue, ctx, seq, cmd_va, cmd_size)
);

DEFINE_EVENT(refnpu_job, refnpu_job_timeout,
	     TP_PROTO(u32 dev, u32 queue, u32 ctx, u64 seq, u64 cmd_va,
		      u64 cmd_size),
	     TP_ARGS(dev, queue, ctx, seq, cmd_va, cmd_size)
);

TRACE_EVENT(refnpu_job_done,
	    TP_PROTO(u32 dev, u32 queue, u32 ctx, u64 seq, u32 status,
		     int error, u64 busy_ns),
	    TP_ARGS(dev, queue, ctx, seq, status, error, busy_ns),
	    TP_STRUCT__entry(__field(u32, dev)
			     __field(u32, queue)
			     __field(u32, ctx)
			     __field(u64, seq)
			     __field(u32, status)
			     __field(int, error)
			     __field(u64, busy_ns)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->queue = queue;
			   __entry->ctx = ctx;
			   __entry->seq = seq;
			   __entry->status = status;
			   __entry->error = error;
			   __entry->busy_ns = busy_ns;),
	    TP_printk("dev=%u queue=%u ctx=%u seq=%llu status=%u error=%d busy=%lluns",
		      __entry->dev, __entry->queue, __entry->ctx, __entry->seq,
		      __entry->status, __entry->error, __entry->busy_ns)
);

TRACE_EVENT(refnpu_fault,
	    TP_PROTO(u32 dev, u32 queue, u32 ctx, u64 seq, u32 code, u32 flags,
		     u64 va),
	    TP_ARGS(dev, queue, ctx, seq, code, flags, va),
	    TP_STRUCT__entry(__field(u32, dev)
			     __field(u32, queue)
			     __field(u32, ctx)
			     __field(u64, seq)
			     __field(u32, code)
			     __field(u32, flags)
			     __field(u64, va)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->queue = queue;
			   __entry->ctx = ctx;
			   __entry->seq = seq;
			   __entry->code = code;
			   __entry->flags = flags;
			   __entry->va = va;),
	    TP_printk("dev=%u queue=%u ctx=%u seq=%llu code=%u flags=0x%x va=0x%llx",
		      __entry->dev, __entry->queue, __entry->ctx, __entry->seq,
		      __entry->code, __entry->flags, __entry->va)
);

TRACE_EVENT(refnpu_reset,
	    TP_PROTO(u32 dev, int queue, int ret),
	    TP_ARGS(dev, queue, ret),
	    TP_STRUCT__entry(__field(u32, dev)
			     __field(int, queue)
			     __field(int, ret)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->queue = queue;
			   __entry->ret = ret;),
	    TP_printk("dev=%u %s%d ret=%d", __entry->dev,
		      __entry->queue < 0 ? "device" : "queue=",
		      __entry->queue < 0 ? 0 : __entry->queue, __entry->ret)
);

#endif /* __REFNPU_TRACE_H__ */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#include <trace/define_trace.h>
