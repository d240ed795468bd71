#!/usr/bin/env bash
# local-vs-fio.sh: 4 KiB random reads at queue depth 32 on one file, by fio
# (io_uring, O_DIRECT) and by bdevperf on a bdev_uring_create bdev of the
# same file, alternated ROUNDS times. Prints IOPS and p99 latency of every
# run and the ratio bdevperf/fio of each pair.
#
# Both sides get one core: bdevperf's reactor runs on core mask 0x1 and fio
# is pinned to CPU 0 (FIO_CPUS). p99 is submission to completion on both
# (fio's lat_ns, bdevperf's latency).
#
# Env: BDEVPERF (default: build/bdevperf, built from this tree), BENCH_DIR
# (directory for the file; default a temporary one under /var/tmp, removed
# afterwards), SIZE_MB (1024), RUNTIME seconds (10), ROUNDS (3), FIO_CPUS
# (0), CORE_MASK (0x1), BDEVPERF_ARGS (extra bdevperf flags, e.g. --poll).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need fio jq

SIZE_MB=${SIZE_MB:-1024}
RUNTIME=${RUNTIME:-10}
ROUNDS=${ROUNDS:-3}
FIO_CPUS=${FIO_CPUS:-0}
CORE_MASK=${CORE_MASK:-0x1}
if [[ -n "${BENCH_DIR:-}" ]]; then
	DIR=$BENCH_DIR
else
	DIR=$(mktemp -d /var/tmp/hyperpath-bench.XXXXXX)
	trap 'rm -rf "$DIR"' EXIT
fi
FILE="$DIR/local-vs-fio.img"

machine
echo "file: $FILE, $SIZE_MB MiB on $(df --output=fstype "$DIR" | tail -1)"
# Written through, so that reads hit allocated blocks rather than holes.
dd if=/dev/zero of="$FILE" bs=1M count="$SIZE_MB" oflag=direct conv=fsync status=none

cat >"$DIR/uring.json" <<JSON
{"subsystems": [{"subsystem": "bdev", "config": [
  {"method": "bdev_uring_create", "params": {"name": "Uring0", "filename": "$FILE", "block_size": 4096}}
]}]}
JSON

run_fio() {
	fio --name=randread --filename="$FILE" --ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=32 \
		--runtime="$RUNTIME" --time_based --cpus_allowed="$FIO_CPUS" --lat_percentiles=1 \
		--output-format=json --output="$DIR/fio.json"
	jq -r '.jobs[0].read | "\(.iops) \(.lat_ns.percentile["99.000000"] / 1000)"' "$DIR/fio.json"
}

run_bdevperf() {
	# shellcheck disable=SC2086 # BDEVPERF_ARGS is a list of flags
	"$BDEVPERF" -c "$DIR/uring.json" -b Uring0 -q 32 -o 4096 -w randread -t "$RUNTIME" -m "$CORE_MASK" -S 0 \
		--json-output "$DIR/bdevperf.json" ${BDEVPERF_ARGS:-} >"$DIR/bdevperf.out"
	jq -r '.results[0] | "\(.iops) \(.p99_latency_us)"' "$DIR/bdevperf.json"
}

printf '%-6s %-9s %12s %12s\n' round tool IOPS p99_us
sum_iops=0
sum_p99=0
for r in $(seq 1 "$ROUNDS"); do
	read -r fio_iops fio_p99 < <(run_fio)
	printf '%-6s %-9s %12.0f %12.1f\n' "$r" fio "$fio_iops" "$fio_p99"
	read -r bp_iops bp_p99 < <(run_bdevperf)
	printf '%-6s %-9s %12.0f %12.1f\n' "$r" bdevperf "$bp_iops" "$bp_p99"
	read -r ri rp < <(awk -v a="$bp_iops" -v b="$fio_iops" -v c="$bp_p99" -v d="$fio_p99" \
		'BEGIN { printf "%.3f %.3f\n", a / b, c / d }')
	printf '%-6s %-9s %12s %12s\n' "$r" ratio "$ri" "$rp"
	sum_iops=$(awk -v s="$sum_iops" -v x="$ri" 'BEGIN { print s + x }')
	sum_p99=$(awk -v s="$sum_p99" -v x="$rp" 'BEGIN { print s + x }')
done
awk -v i="$sum_iops" -v p="$sum_p99" -v n="$ROUNDS" \
	'BEGIN { printf "mean ratio bdevperf/fio over %d rounds: IOPS %.3f, p99 %.3f\n", n, i / n, p / n }'
echo "uptime after: $(uptime)"
