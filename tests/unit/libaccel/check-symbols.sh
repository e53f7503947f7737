#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The ABI of libaccel.so: SONAME libaccel.so.<major>, every exported symbol
# in namespace accel (versioned LIBACCEL_<major>), and the entry points
# applications need are there.  TAP output.
set -uo pipefail
lib=$1
echo "TAP version 13"
echo "1..3"
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [[ $soname =~ ^libaccel\.so\.[0-9]+$ ]]; then
	echo "ok 1 - SONAME $soname"
else
	echo "not ok 1 - SONAME '$soname' is not libaccel.so.<major>"
fi
syms=$(nm -D --defined-only "$lib" | awk '{print $3}')
demangled=$(c++filt <<<"$syms")
bad=$(grep -v -E '^(accel::|typeinfo for accel::|typeinfo name for accel::|vtable for accel::|LIBACCEL_[0-9]+$)' <<<"$demangled")
if [ -z "$bad" ]; then
	echo "ok 2 - $(echo "$syms" | wc -l) exported symbols, all in namespace accel"
else
	echo "not ok 2 - symbols outside namespace accel are exported"
	echo "$bad" | head -20 | sed 's/^/# /'
fi
missing=
for want in 'accel::Device::open(unsigned int)' 'accel::enumerate_devices(' \
	'accel::Context::submit(accel::Job const&)' 'accel::Fence::wait(' \
	'accel::Device::import_dmabuf(int) const' 'accel::category()' \
	'accel::CommandEncoder::gemm(' 'accel::ReferenceMachine::run(' \
	'accel::CompiledGraph::compile('; do
	grep -qF "$want" <<<"$demangled" || missing+="$want; "
done
if [ -z "$missing" ]; then
	echo "ok 3 - the application entry points are exported"
else
	echo "not ok 3 - missing: $missing"
fi
[ -z "$bad" ] && [ -z "$missing" ] && [[ $soname =~ ^libaccel\.so\.[0-9]+$ ]]
