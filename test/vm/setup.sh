#!/bin/sh
# Builds the cached guest image of hyperpath/test/vm: installs the Debian
# packages it needs when missing (as root), downloads the current Debian
# kernel, extracts vmlinux and modules, and writes the initramfs and the
# tools disk under build/vm. Idempotent; rebuilds only what changed.
#   test/vm/setup.sh [-extra SRC[=DST]]...
set -e
cd "$(dirname "$0")/../.."
GO=go
command -v go >/dev/null 2>&1 || GO=/usr/local/go/bin/go
exec "$GO" run ./test/vm/cmd/vm build "$@"
