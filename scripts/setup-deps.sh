#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Install everything refnpu needs on a Debian 12 host.  Idempotent: when
# every package is present it returns in well under a second.
#
# Usage: scripts/setup-deps.sh [--with-kernel-source]
set -euo pipefail

BASE_PKGS=(
	build-essential g++ pkg-config git ninja-build cpio xz-utils zstd kmod
	busybox-static qemu-system-x86 qemu-system-data seabios ovmf
	libdrm-dev libgtest-dev libgmock-dev googletest libopenblas-dev
	linux-headers-6.12-amd64
	python3 python3-venv perl bc bison flex libssl-dev libelf-dev dwarves
	libfdt-dev libglib2.0-dev libpixman-1-dev zlib1g-dev
	clang-format sparse
	clang libclang-rt-14-dev
)
BPO_PKGS=(meson python3-pycotap)
BPO_LIST=/etc/apt/sources.list.d/refnpu-backports.sources
SRC_LIST=/etc/apt/sources.list.d/refnpu-src.sources

want_source=0
[ "${1:-}" = "--with-kernel-source" ] && want_source=1
[ $want_source = 1 ] && BASE_PKGS+=(linux-source-6.12)

missing=()
for p in "${BASE_PKGS[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing+=("$p")
done
bpo_missing=()
meson_ok=0
if command -v meson >/dev/null &&
	dpkg --compare-versions "$(meson --version)" ge 1.5.0; then
	meson_ok=1
fi
[ $meson_ok = 1 ] || bpo_missing+=(meson)
dpkg-query -W -f='${Status}\n' python3-pycotap 2>/dev/null | grep -q '^install ok installed' ||
	bpo_missing+=(python3-pycotap)
need_lists=0
[ -f "$BPO_LIST" ] && [ -f "$SRC_LIST" ] || need_lists=1

if [ ${#missing[@]} = 0 ] && [ ${#bpo_missing[@]} = 0 ] && [ $need_lists = 0 ]; then
	exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		SUDO=sudo
	else
		echo "refnpu: missing packages and not root (no passwordless sudo)." >&2
		echo "Run as root:" >&2
		[ $need_lists = 1 ] && echo "  (add bookworm-backports deb/deb-src and bookworm deb-src to /etc/apt/sources.list.d)" >&2
		[ ${#missing[@]} != 0 ] && echo "  apt-get install -y ${missing[*]}" >&2
		[ ${#bpo_missing[@]} != 0 ] && echo "  apt-get install -y -t bookworm-backports ${bpo_missing[*]}" >&2
		exit 1
	fi
fi

if [ $need_lists = 1 ]; then
	$SUDO tee "$BPO_LIST" >/dev/null <<'EOS'
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
	$SUDO tee "$SRC_LIST" >/dev/null <<'EOS'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
fi
export DEBIAN_FRONTEND=noninteractive
echo "refnpu: apt-get update" >&2
# Third-party lists configured on a machine may be unreachable; Debian's are enough.
$SUDO apt-get update -q >/dev/null 2>&1 || $SUDO apt-get update -q || true
if [ ${#missing[@]} != 0 ]; then
	echo "refnpu: apt-get install -y ${missing[*]}" >&2
	$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ${#bpo_missing[@]} != 0 ]; then
	echo "refnpu: apt-get install -y -t bookworm-backports ${bpo_missing[*]}" >&2
	$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${bpo_missing[@]}" >/dev/null
fi
