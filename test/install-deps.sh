#!/bin/sh
# Installs the Debian packages Hyperpath's tests use as real peers (fio,
# QEMU and qemu-storage-daemon, nvme-cli, RDMA tools, busybox for guest
# initramfs). Packages already present are left alone; without root or a
# package mirror the tests that need them skip and say what is missing.
set -u
pkgs="fio qemu-system-x86 qemu-utils busybox-static nvme-cli ibverbs-utils rdmacm-utils ibverbs-providers libibverbs-dev python3"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "install-deps: not root or no apt-get; missing:$missing (tests needing them will skip)" >&2
	exit 0
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq $missing >/dev/null 2>&1 || echo "install-deps: apt-get install failed for:$missing (tests needing them will skip)" >&2
exit 0
