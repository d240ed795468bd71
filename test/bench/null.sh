#!/usr/bin/env bash
# null.sh: bdevperf on a null bdev, 4 KiB random reads at queue depth 128,
# one reactor (core mask 0x1): the cost of an IO through bdevperf and the
# generic bdev layer with no device behind it.
#
# Env: BDEVPERF (default: build/bdevperf, built from this tree), RUNTIME
# seconds (10), CORE_MASK (0x1), BDEVPERF_ARGS (extra flags, e.g. --poll),
# BENCH_DIR (scratch directory; default a temporary one).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need jq

RUNTIME=${RUNTIME:-10}
CORE_MASK=${CORE_MASK:-0x1}
if [[ -n "${BENCH_DIR:-}" ]]; then
	DIR=$BENCH_DIR
else
	DIR=$(mktemp -d)
	trap 'rm -rf "$DIR"' EXIT
fi

machine
# shellcheck disable=SC2086 # BDEVPERF_ARGS is a list of flags
"$BDEVPERF" --null 1024 --block-size 4096 -b Null0 -q 128 -o 4096 -w randread -t "$RUNTIME" -m "$CORE_MASK" -S 0 \
	--json-output "$DIR/null.json" ${BDEVPERF_ARGS:-}
jq -r '.results[0] | "null randread 4k qd128 1 reactor: IOPS \(.iops | floor)  MiB/s \(.mibps * 100 | floor / 100)  avg \(.avg_latency_us * 100 | floor / 100) us  p99 \(.p99_latency_us * 100 | floor / 100) us"' "$DIR/null.json"
echo "uptime after: $(uptime)"
