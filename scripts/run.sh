#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The main job: install what is missing, build, boot the guest with
# refnpu.ko and run work on the device through the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
builddir=${REFNPU_BUILD:-build}
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" >/dev/null
# ninja (not meson compile) so that an edited meson.build is picked up first.
ninja -C "$builddir" demo
