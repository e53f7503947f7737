#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Print the guest kernel ABI name (e.g. 6.12.117+deb12-amd64).
#
# This is the one place where the guest kernel version is decided: the ABI
# that the installed linux-headers-<series>-<flavour> metapackage points at.
# The module is built against those headers and the guest boots the image of
# exactly the same ABI (scripts/fetch-kernel.sh).
set -euo pipefail
SERIES=${REFNPU_KERNEL_SERIES:-6.12}
FLAVOUR=amd64
meta="linux-headers-$SERIES-$FLAVOUR"
dep=$(dpkg-query -W -f='${Depends}' "$meta" 2>/dev/null |
	tr ',' '\n' | sed -n "s/^ *linux-headers-\([0-9][^ ]*-$FLAVOUR\).*/\1/p" | head -1)
if [ -z "$dep" ]; then
	echo "kernel-version: $meta is not installed; run scripts/setup-deps.sh" >&2
	exit 1
fi
echo "$dep"
