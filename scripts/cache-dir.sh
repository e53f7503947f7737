#!/bin/sh
# SPDX-License-Identifier: MIT
# Print the directory that holds refnpu's heavy cached artefacts (kernel
# images, kernel source, QEMU build, debug kernel), outside any clone.
if [ -n "${REFNPU_CACHE:-}" ]; then
	echo "$REFNPU_CACHE"
elif [ -w /var/cache ]; then
	echo /var/cache/refnpu
else
	echo "${XDG_CACHE_HOME:-$HOME/.cache}/refnpu"
fi
