// SPDX-License-Identifier: MIT
//
// Documentation/hardware.rst against kernel/hw/refnpu_hw.h: every value
// written in a table of the specification ("0x0028  ``REFNPU_REG_RESET``")
// must equal the header's definition, every structure field offset
// ("0x08  ``cmd_va``" after ".. refnpu-struct: refnpu_job_desc") must equal
// offsetof(), and every name listed here must appear in the document.
// Register reset values are checked against what the device core
// (refnpu_core.c) reads back after power-on and after a device reset, and
// the opcode table's command sizes against the header, the structures and
// the engine.
#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "harness.h"

extern "C" {
#include "refnpu_core.h"
}

namespace {

#define C(name)                                                                                    \
	{                                                                                          \
#name, static_cast < uint64_t>(name)                                               \
	}
const std::map<std::string, uint64_t> kConstants = {
	C(REFNPU_PCI_VENDOR_ID),
	C(REFNPU_PCI_DEVICE_ID),
	C(REFNPU_PCI_REVISION),
	C(REFNPU_PCI_CLASS_CODE),
	C(REFNPU_PCI_SUBSYSTEM_VENDOR_ID),
	C(REFNPU_PCI_SUBSYSTEM_ID),
	C(REFNPU_BAR_REGS),
	C(REFNPU_BAR_REGS_SIZE),
	C(REFNPU_BAR_MSIX),
	C(REFNPU_REG_ID),
	C(REFNPU_REG_VERSION),
	C(REFNPU_REG_CAPS),
	C(REFNPU_REG_NUM_QUEUES),
	C(REFNPU_REG_MMU_CAPS),
	C(REFNPU_REG_MAX_CONTEXTS),
	C(REFNPU_REG_TIMESTAMP_FREQ),
	C(REFNPU_REG_STATUS),
	C(REFNPU_REG_RESET),
	C(REFNPU_REG_IRQ_STATUS),
	C(REFNPU_REG_IRQ_MASK),
	C(REFNPU_REG_TIMESTAMP),
	C(REFNPU_REG_CTX_TABLE_BASE),
	C(REFNPU_REG_CTX_TABLE_COUNT),
	C(REFNPU_REG_TLB_INVALIDATE),
	C(REFNPU_REG_FAULT_STATUS),
	C(REFNPU_REG_FAULT_CTX),
	C(REFNPU_REG_FAULT_ADDR),
	C(REFNPU_REG_FAULT_SEQ),
	C(REFNPU_REG_FAULT_ACK),
	C(REFNPU_REG_SCRATCH),
	C(REFNPU_REG_DBG_SPURIOUS_IRQ),
	C(REFNPU_CAP_FP16),
	C(REFNPU_CAP_BF16),
	C(REFNPU_CAP_INT8),
	C(REFNPU_CAP_CONV),
	C(REFNPU_CAP_WATCHDOG),
	C(REFNPU_CAP_FP32),
	C(REFNPU_CAPS_BASE),
	C(REFNPU_CAP_FAULT_INJECT),
	C(REFNPU_Q_RING_BASE),
	C(REFNPU_Q_RING_SIZE),
	C(REFNPU_Q_CTRL),
	C(REFNPU_Q_TAIL),
	C(REFNPU_Q_HEAD),
	C(REFNPU_Q_STATUS),
	C(REFNPU_Q_RESET),
	C(REFNPU_Q_WATCHDOG_MS),
	C(REFNPU_Q_ERROR),
	C(REFNPU_Q_LAST_SEQ),
	C(REFNPU_Q_DBG_INJECT),
	C(REFNPU_Q_DBG_ERROR),
	C(REFNPU_Q_DBG_DELAY_US),
	C(REFNPU_Q_DBG_FAULT_VA),
	C(REFNPU_PTE_VALID),
	C(REFNPU_PTE_READ),
	C(REFNPU_PTE_WRITE),
	C(REFNPU_PTE_LEAF),
	C(REFNPU_PTE_ADDR_MASK),
	C(REFNPU_PTE_RSVD_MASK),
	C(REFNPU_PTE_HUGE_ADDR_MASK),
	C(REFNPU_ERR_NONE),
	C(REFNPU_ERR_MMU_UNMAPPED),
	C(REFNPU_ERR_MMU_READ_PERM),
	C(REFNPU_ERR_MMU_WRITE_PERM),
	C(REFNPU_ERR_MMU_WALK),
	C(REFNPU_ERR_DMA),
	C(REFNPU_ERR_MALFORMED),
	C(REFNPU_ERR_UNSUPPORTED),
	C(REFNPU_ERR_INVALID_CONTEXT),
	C(REFNPU_ERR_TIMEOUT),
	C(REFNPU_ERR_INJECTED),
	C(REFNPU_ERR_BAD_DESCRIPTOR),
	C(REFNPU_ERR_RING),
	C(REFNPU_ERR_ABORTED),
	C(REFNPU_ERR_COUNT),
	C(REFNPU_DTYPE_FP32),
	C(REFNPU_DTYPE_FP16),
	C(REFNPU_DTYPE_BF16),
	C(REFNPU_DTYPE_INT8),
	C(REFNPU_DTYPE_INT32),
	C(REFNPU_DTYPE_COUNT),
	C(REFNPU_OP_NOP),
	C(REFNPU_OP_COPY),
	C(REFNPU_OP_FILL),
	C(REFNPU_OP_GEMM),
	C(REFNPU_OP_EWISE),
	C(REFNPU_OP_ACT),
	C(REFNPU_OP_SOFTMAX),
	C(REFNPU_OP_LAYERNORM),
	C(REFNPU_OP_CONV2D),
	C(REFNPU_OP_POOL2D),
	C(REFNPU_BCAST_NONE),
	C(REFNPU_BCAST_ROW),
	C(REFNPU_BCAST_COL),
	C(REFNPU_BCAST_SCALAR),
	C(REFNPU_BCAST_COUNT),
	C(REFNPU_EWISE_ADD),
	C(REFNPU_EWISE_SUB),
	C(REFNPU_EWISE_MUL),
	C(REFNPU_EWISE_MAX),
	C(REFNPU_EWISE_MIN),
	C(REFNPU_EWISE_COUNT),
	C(REFNPU_ACT_RELU),
	C(REFNPU_ACT_GELU),
	C(REFNPU_ACT_GELU_TANH),
	C(REFNPU_ACT_SIGMOID),
	C(REFNPU_ACT_TANH),
	C(REFNPU_ACT_COUNT),
	C(REFNPU_POOL_MAX),
	C(REFNPU_POOL_AVG),
	C(REFNPU_POOL_COUNT),
	C(REFNPU_DBG_INJECT_HANG),
	C(REFNPU_DBG_INJECT_ERROR),
	C(REFNPU_DBG_INJECT_DELAY),
	C(REFNPU_DBG_INJECT_DROP_IRQ),
	C(REFNPU_DBG_INJECT_MMU_FAULT),
	C(REFNPU_DBG_INJECT_STRAY_DMA),
	C(REFNPU_DBG_INJECT_STUCK),
	C(REFNPU_DBG_INJECT_ALL),
	C(REFNPU_DBG_STUCK_MAX_US),
	C(REFNPU_DBG_STRAY_DMA_BYTES),
	C(REFNPU_DBG_STRAY_DMA_PATTERN),
};
#undef C

#define F(st, field)                                                                               \
	{                                                                                          \
#st "." #field, offsetof(struct st, field)                                         \
	}
const std::map<std::string, uint64_t> kFields = {
	F(refnpu_job_desc, ctx_id),
	F(refnpu_job_desc, flags),
	F(refnpu_job_desc, cmd_va),
	F(refnpu_job_desc, cmd_size),
	F(refnpu_job_desc, completion_addr),
	F(refnpu_job_desc, seq),
	F(refnpu_job_desc, rsvd),
	F(refnpu_completion, status),
	F(refnpu_completion, fault_flags),
	F(refnpu_completion, seq),
	F(refnpu_completion, fault_va),
	F(refnpu_completion, cmd_index),
	F(refnpu_completion, cmd_offset),
	F(refnpu_completion, start_ts),
	F(refnpu_completion, end_ts),
	F(refnpu_completion, done),
	F(refnpu_completion, ctx_id),
	F(refnpu_completion, rsvd),
	F(refnpu_ctx_entry, pt_root),
	F(refnpu_ctx_entry, flags),
	F(refnpu_ctx_entry, rsvd),
	F(refnpu_cmd_hdr, opcode),
	F(refnpu_cmd_hdr, flags),
	F(refnpu_cmd_hdr, len_dw),
	F(refnpu_tensor2d, va),
	F(refnpu_tensor2d, pitch),
	F(refnpu_tensor_nhwc, va),
	F(refnpu_tensor_nhwc, pitch_h),
	F(refnpu_tensor_nhwc, pitch_n),
	F(refnpu_cmd_nop, hdr),
	F(refnpu_cmd_copy, hdr),
	F(refnpu_cmd_copy, src),
	F(refnpu_cmd_copy, dst),
	F(refnpu_cmd_copy, rows),
	F(refnpu_cmd_copy, row_bytes),
	F(refnpu_cmd_fill, hdr),
	F(refnpu_cmd_fill, dst),
	F(refnpu_cmd_fill, rows),
	F(refnpu_cmd_fill, row_bytes),
	F(refnpu_cmd_fill, pattern),
	F(refnpu_cmd_fill, pattern_bytes),
	F(refnpu_cmd_fill, rsvd),
	F(refnpu_cmd_gemm, hdr),
	F(refnpu_cmd_gemm, a),
	F(refnpu_cmd_gemm, b),
	F(refnpu_cmd_gemm, c),
	F(refnpu_cmd_gemm, bias_va),
	F(refnpu_cmd_gemm, m),
	F(refnpu_cmd_gemm, n),
	F(refnpu_cmd_gemm, k),
	F(refnpu_cmd_gemm, in_dtype),
	F(refnpu_cmd_gemm, out_dtype),
	F(refnpu_cmd_gemm, rq_multiplier),
	F(refnpu_cmd_gemm, rq_shift),
	F(refnpu_cmd_gemm, rq_zero_point),
	F(refnpu_cmd_ewise, hdr),
	F(refnpu_cmd_ewise, a),
	F(refnpu_cmd_ewise, b),
	F(refnpu_cmd_ewise, out),
	F(refnpu_cmd_ewise, rows),
	F(refnpu_cmd_ewise, cols),
	F(refnpu_cmd_ewise, op),
	F(refnpu_cmd_ewise, bcast),
	F(refnpu_cmd_ewise, dtype),
	F(refnpu_cmd_ewise, rsvd),
	F(refnpu_cmd_act, hdr),
	F(refnpu_cmd_act, src),
	F(refnpu_cmd_act, dst),
	F(refnpu_cmd_act, rows),
	F(refnpu_cmd_act, cols),
	F(refnpu_cmd_act, func),
	F(refnpu_cmd_act, dtype),
	F(refnpu_cmd_softmax, hdr),
	F(refnpu_cmd_softmax, src),
	F(refnpu_cmd_softmax, dst),
	F(refnpu_cmd_softmax, rows),
	F(refnpu_cmd_softmax, cols),
	F(refnpu_cmd_softmax, dtype),
	F(refnpu_cmd_softmax, rsvd),
	F(refnpu_cmd_layernorm, hdr),
	F(refnpu_cmd_layernorm, src),
	F(refnpu_cmd_layernorm, dst),
	F(refnpu_cmd_layernorm, gamma_va),
	F(refnpu_cmd_layernorm, beta_va),
	F(refnpu_cmd_layernorm, rows),
	F(refnpu_cmd_layernorm, cols),
	F(refnpu_cmd_layernorm, eps_bits),
	F(refnpu_cmd_layernorm, dtype),
	F(refnpu_cmd_conv2d, hdr),
	F(refnpu_cmd_conv2d, in),
	F(refnpu_cmd_conv2d, out),
	F(refnpu_cmd_conv2d, filter),
	F(refnpu_cmd_conv2d, bias_va),
	F(refnpu_cmd_conv2d, n),
	F(refnpu_cmd_conv2d, h),
	F(refnpu_cmd_conv2d, w),
	F(refnpu_cmd_conv2d, c),
	F(refnpu_cmd_conv2d, oc),
	F(refnpu_cmd_conv2d, kh),
	F(refnpu_cmd_conv2d, kw),
	F(refnpu_cmd_conv2d, stride_h),
	F(refnpu_cmd_conv2d, stride_w),
	F(refnpu_cmd_conv2d, dil_h),
	F(refnpu_cmd_conv2d, dil_w),
	F(refnpu_cmd_conv2d, pad_top),
	F(refnpu_cmd_conv2d, pad_bottom),
	F(refnpu_cmd_conv2d, pad_left),
	F(refnpu_cmd_conv2d, pad_right),
	F(refnpu_cmd_conv2d, dtype),
	F(refnpu_cmd_pool2d, hdr),
	F(refnpu_cmd_pool2d, in),
	F(refnpu_cmd_pool2d, out),
	F(refnpu_cmd_pool2d, n),
	F(refnpu_cmd_pool2d, h),
	F(refnpu_cmd_pool2d, w),
	F(refnpu_cmd_pool2d, c),
	F(refnpu_cmd_pool2d, kh),
	F(refnpu_cmd_pool2d, kw),
	F(refnpu_cmd_pool2d, stride_h),
	F(refnpu_cmd_pool2d, stride_w),
	F(refnpu_cmd_pool2d, pad_top),
	F(refnpu_cmd_pool2d, pad_bottom),
	F(refnpu_cmd_pool2d, pad_left),
	F(refnpu_cmd_pool2d, pad_right),
	F(refnpu_cmd_pool2d, mode),
	F(refnpu_cmd_pool2d, dtype),
};
#undef F

std::string doc_path()
{
	const char *p = std::getenv("REFNPU_SPEC_DOC");
	return p ? p : "Documentation/hardware.rst";
}

} // namespace

TEST(SpecDoc, TablesMatchHeader)
{
	std::ifstream in(doc_path());
	ASSERT_TRUE(in.good()) << "cannot open " << doc_path();
	const std::regex row(R"(^(0x[0-9a-fA-F]+|[0-9]+)\s+``(\w+)``)");
	const std::regex strct(R"(^\.\. refnpu-struct: (\w+))");
	std::string line, cur;
	std::set<std::string> seen;
	int lineno = 0;
	while (std::getline(in, line)) {
		lineno++;
		std::smatch m;
		if (std::regex_search(line, m, strct)) {
			cur = m[1];
			continue;
		}
		if (!std::regex_search(line, m, row))
			continue;
		uint64_t v = std::stoull(m[1], nullptr, 0);
		std::string name = m[2];
		if (name.rfind("REFNPU_", 0) != 0)
			name = cur + "." + name;
		const auto &table = name.find('.') == std::string::npos ? kConstants : kFields;
		auto it = table.find(name);
		if (it == table.end()) {
			ADD_FAILURE() << "line " << lineno << ": " << name
				      << " is not checked by this test";
			continue;
		}
		EXPECT_EQ(v, it->second) << "line " << lineno << ": " << name;
		seen.insert(name);
	}
	for (const auto &[name, v] : kConstants)
		EXPECT_TRUE(seen.count(name)) << name << " is not documented";
	for (const auto &[name, v] : kFields)
		EXPECT_TRUE(seen.count(name)) << name << " is not documented";
}

namespace {

// A device core with nothing behind it: every DMA fails, time stands still.
struct QuietCore {
	struct refnpu_core core;
	struct refnpu_core_ops ops = {};
	static constexpr unsigned kQueues = 5;

	static __u32 dma(void *, unsigned int, __u64, void *, __u64, bool)
	{
		return REFNPU_ERR_DMA;
	}
	static void irq(void *, unsigned int) { }
	static __u64 now_ns(void *) { return 0; }
	static void lock(void *, int) { }
	static void kick(void *, unsigned int) { }

	QuietCore()
	{
		ops.dma = dma;
		ops.irq = irq;
		ops.now_ns = now_ns;
		ops.lock = lock;
		ops.unlock = lock;
		ops.kick = kick;
		refnpu_core_init(&core, &ops, this, kQueues,
				 REFNPU_CAPS_BASE | REFNPU_CAP_FAULT_INJECT, false);
	}
};

struct RegRow {
	int lineno;
	std::string name;
	uint32_t off;
	unsigned width;
	std::string access, reset;
};

std::vector<RegRow> register_rows()
{
	std::ifstream in(doc_path());
	const std::regex row(R"(^(0x[0-9a-fA-F]+)\s+``(REFNPU_(?:REG|Q)_\w+)``\s+(32|64)\s+)"
			     R"((RO|RW|WO|RW1C)\s+(0x[0-9a-fA-F]+|[0-9]+|\w+(?: \w+)?)\s)");
	std::vector<RegRow> rows;
	std::string line;
	int lineno = 0;

	while (std::getline(in, line)) {
		std::smatch m;

		lineno++;
		if (std::regex_search(line, m, row))
			rows.push_back({lineno, m[2],
					static_cast<uint32_t>(std::stoul(m[1], nullptr, 0)),
					static_cast<unsigned>(std::stoul(m[3])), m[4], m[5]});
	}
	return rows;
}

// Reset values of a core's registers as the table gives them.
void check_reset_values(QuietCore &d, const char *when)
{
	auto rows = register_rows();
	unsigned checked = 0;

	ASSERT_GT(rows.size(), 30u);
	for (const auto &r : rows) {
		bool queue = r.name.rfind("REFNPU_Q_", 0) == 0;
		uint64_t want;

		if (r.reset == "property")
			want = QuietCore::kQueues;
		else if (std::isdigit(static_cast<unsigned char>(r.reset[0])))
			want = std::stoull(r.reset, nullptr, 0);
		else
			continue; // "see below", "n/a": checked elsewhere
		for (unsigned q = 0; q < (queue ? QuietCore::kQueues : 1); q++) {
			uint32_t addr = queue ? REFNPU_REG_QUEUE(q, r.off) : r.off;

			EXPECT_EQ(refnpu_core_read(&d.core, addr, r.width / 8), want)
				<< when << ", line " << r.lineno << ": " << r.name << " queue "
				<< q;
		}
		checked++;
	}
	EXPECT_GT(checked, 30u);
}

} // namespace

TEST(SpecDoc, ResetValuesMatchCore)
{
	QuietCore d;

	check_reset_values(d, "power-on");
	EXPECT_EQ(refnpu_core_read(&d.core, REFNPU_REG_CAPS, 4),
		  (uint64_t)(REFNPU_CAPS_BASE | REFNPU_CAP_FAULT_INJECT));

	// Scribble on every writable register, then reset the device.
	for (const auto &r : register_rows()) {
		if (r.access != "RW" || r.name == "REFNPU_Q_CTRL")
			continue;
		bool queue = r.name.rfind("REFNPU_Q_", 0) == 0;
		for (unsigned q = 0; q < (queue ? QuietCore::kQueues : 1); q++)
			refnpu_core_write(&d.core, queue ? REFNPU_REG_QUEUE(q, r.off) : r.off,
					  0x5a5a5a5a5a5a5a40ULL, r.width / 8);
	}
	EXPECT_NE(refnpu_core_read(&d.core, REFNPU_REG_SCRATCH, 4), 0u);
	refnpu_core_write(&d.core, REFNPU_REG_RESET, REFNPU_RESET_GO, 4);
	check_reset_values(d, "after REFNPU_REG_RESET");

	// Queue blocks beyond NUM_QUEUES are RAZ/WI.
	refnpu_core_write(&d.core, REFNPU_REG_QUEUE(QuietCore::kQueues, REFNPU_Q_RING_SIZE), 16, 4);
	EXPECT_EQ(refnpu_core_read(&d.core,
				   REFNPU_REG_QUEUE(QuietCore::kQueues, REFNPU_Q_RING_SIZE), 4),
		  0u);
}

TEST(SpecDoc, CommandSizesMatchHeaderAndEngine)
{
#define S(st, op, size)                                                                            \
	{                                                                                          \
#st,                                                                               \
		{                                                                                  \
			sizeof(struct st), op, size                                                \
		}                                                                                  \
	}
	const std::map<std::string, std::tuple<size_t, uint32_t, uint32_t>> kCmds = {
		S(refnpu_cmd_nop, REFNPU_OP_NOP, REFNPU_CMD_NOP_SIZE),
		S(refnpu_cmd_copy, REFNPU_OP_COPY, REFNPU_CMD_COPY_SIZE),
		S(refnpu_cmd_fill, REFNPU_OP_FILL, REFNPU_CMD_FILL_SIZE),
		S(refnpu_cmd_gemm, REFNPU_OP_GEMM, REFNPU_CMD_GEMM_SIZE),
		S(refnpu_cmd_ewise, REFNPU_OP_EWISE, REFNPU_CMD_EWISE_SIZE),
		S(refnpu_cmd_act, REFNPU_OP_ACT, REFNPU_CMD_ACT_SIZE),
		S(refnpu_cmd_softmax, REFNPU_OP_SOFTMAX, REFNPU_CMD_SOFTMAX_SIZE),
		S(refnpu_cmd_layernorm, REFNPU_OP_LAYERNORM, REFNPU_CMD_LAYERNORM_SIZE),
		S(refnpu_cmd_conv2d, REFNPU_OP_CONV2D, REFNPU_CMD_CONV2D_SIZE),
		S(refnpu_cmd_pool2d, REFNPU_OP_POOL2D, REFNPU_CMD_POOL2D_SIZE),
	};
#undef S
	std::ifstream in(doc_path());
	const std::regex row(
		R"(^(0x[0-9a-fA-F]+)\s+``REFNPU_OP_\w+``\s+``struct (\w+)``\s+([0-9]+)\s*$)");
	std::set<std::string> seen;
	std::string line;
	uint32_t largest = 0;

	while (std::getline(in, line)) {
		std::smatch m;

		if (!std::regex_search(line, m, row))
			continue;
		auto it = kCmds.find(m[2]);
		ASSERT_NE(it, kCmds.end()) << m[2] << " is not checked by this test";
		auto [size, op, hsize] = it->second;
		uint32_t bytes = static_cast<uint32_t>(std::stoul(m[3]));

		EXPECT_EQ(std::stoul(m[1], nullptr, 0), op) << m[2];
		EXPECT_EQ(bytes, size) << m[2];
		EXPECT_EQ(bytes, hsize) << m[2];
		EXPECT_EQ(refnpu_engine_cmd_size(op), bytes) << m[2];
		largest = std::max(largest, bytes);
		seen.insert(m[2]);
	}
	EXPECT_EQ(seen.size(), kCmds.size());
	EXPECT_EQ(largest, (uint32_t)REFNPU_CMD_MAX_SIZE);
}
