/* SPDX-License-Identifier: MIT */
/*
 * generic-fuzz configuration of the refnpu device.  qemu/build-qemu.sh
 * inserts the entry below (without these comment lines) at the top of
 * QEMU's tests/qtest/fuzz/generic_fuzz_configs.h, which makes the target
 * generic-fuzz-refnpu.  x-sync=on runs each doorbell in the MMIO handler,
 * so an input's effect depends on its bytes alone.
 */
    {
        .name = "refnpu",
        .args = "-machine q35 -nodefaults "
        "-device refnpu,x-sync=on,fault-inject=on,num-queues=2",
        .objects = "refnpu*",
    },
