#!/usr/bin/env bash
# nvmf-tcp.sh: NVMe/TCP 4 KiB random reads end to end on one machine, and
# the floor under them.
#
#   target:    the hyperpath daemon, one reactor on CPU 1 (-m 0x2), a null
#              bdev (4 KiB blocks) in one subsystem, listening on 127.0.0.1
#   initiator: bdevperf, one reactor on CPU 0 (-m 0x1), attached with
#              bdev_nvme_attach_controller (no digests)
#   floor:     test/bench/tcpfloor, a raw 4 KiB request / 4 KiB response
#              TCP ping-pong over 127.0.0.1 between two threads pinned to
#              CPUs 0 and 1: spinning on non-blocking sockets (the physical
#              floor) and sleeping in blocking reads (the floor for reactors
#              that sleep); also, for reference, the spinning ping-pong with
#              the bytes of one NVMe/TCP 4 KiB read (72 B out, 24 + 4096 B
#              back)
#
# The floors run first, on an otherwise idle pair of CPUs. Then for each
# reactor mode (poll: target and bdevperf --poll; adaptive: both sleep when
# idle) it runs randread at QD1 (avg and p99 latency) and QD32 (IOPS) for
# RUNTIME seconds each, and prints
#   QD1 avg / floor avg and QD1 p99 / floor p99 (against the spinning
#   4 KiB floor, and in adaptive mode also against the blocking one),
#   QD32 IOPS per target core (the target has one core; its reactor's busy
#   share during QD32 comes from thread_get_stats).
# Each run also prints the CPU time of the target, of bdevperf and of
# everything else on the machine meanwhile (/proc): on a machine shared with
# other jobs, a run that had to share its CPUs says so. "Everything else" is
# the machine's tick-sampled busy time less our processes' exact times, so
# it reads low (floored at 0) when our threads sleep and wake very often.
#
# Env: RUNTIME (10 s per bdevperf run), FLOOR_TIME (10s), MODES ("poll
# adaptive"), PORT (NVMe/TCP port; default a free one), BDEVPERF and
# HYPERPATH (binaries; default build/ ones built from this tree),
# BENCH_DIR (scratch directory; default a temporary one), TARGET_ARGS
# (extra daemon flags).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need jq taskset go

RUNTIME=${RUNTIME:-10}
FLOOR_TIME=${FLOOR_TIME:-10s}
MODES=${MODES:-poll adaptive}
NQN=nqn.2016-06.io.hyperpath:bench
if [[ -z "${HYPERPATH:-}" ]]; then
	HYPERPATH="$ROOT/build/hyperpath"
	(cd "$ROOT" && go build -o build/hyperpath ./app/hyperpath)
fi
HPCTL="$ROOT/build/hpctl"
(cd "$ROOT" && go build -o build/hpctl ./app/hpctl)
if [[ -n "${BENCH_DIR:-}" ]]; then
	DIR=$BENCH_DIR
else
	DIR=$(mktemp -d /tmp/nvmf-tcp-bench.XXXXXX)
fi
TPID=
cleanup() {
	if [[ -n "$TPID" ]] && kill -0 "$TPID" 2>/dev/null; then
		kill "$TPID"
		wait "$TPID" 2>/dev/null || true
	fi
	[[ -n "${BENCH_DIR:-}" ]] || rm -rf "$DIR"
}
trap cleanup EXIT

if [[ -z "${PORT:-}" ]]; then
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

cat >"$DIR/target.json" <<EOF
{"subsystems": [
 {"subsystem": "bdev", "config": [
  {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 262144, "block_size": 4096}}]},
 {"subsystem": "nvmf", "config": [
  {"method": "nvmf_create_transport", "params": {"trtype": "TCP"}},
  {"method": "nvmf_create_subsystem", "params": {"nqn": "$NQN", "serial_number": "HPBENCH0001", "allow_any_host": true}},
  {"method": "nvmf_subsystem_add_ns", "params": {"nqn": "$NQN", "namespace": {"bdev_name": "Null0"}}},
  {"method": "nvmf_subsystem_add_listener", "params": {"nqn": "$NQN",
   "listen_address": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "$PORT"}}}]}]}
EOF
cat >"$DIR/initiator.json" <<EOF
{"subsystems": [{"subsystem": "bdev", "config": [
 {"method": "bdev_nvme_attach_controller", "params": {"name": "Nvme0", "trtype": "tcp", "adrfam": "ipv4",
  "traddr": "127.0.0.1", "trsvcid": "$PORT", "subnqn": "$NQN"}}]}]}
EOF

# start_target MODE_FLAGS...: the daemon on CPU 1; waits until it serves.
start_target() {
	# shellcheck disable=SC2086 # TARGET_ARGS is a list of flags
	"$HYPERPATH" --no-default -c "$DIR/target.json" -r "$DIR/target.sock" -m 0x2 "$@" ${TARGET_ARGS:-} \
		>"$DIR/target.log" 2>&1 &
	TPID=$!
	for _ in $(seq 100); do
		grep -q "hyperpath started" "$DIR/target.log" && return 0
		kill -0 "$TPID" 2>/dev/null || break
		sleep 0.1
	done
	echo "target did not start:" >&2
	cat "$DIR/target.log" >&2
	exit 1
}

stop_target() {
	kill "$TPID"
	wait "$TPID" 2>/dev/null || true
	TPID=
}

# busy_ticks: the target reactor's busy and busy+idle TSC ticks.
busy_ticks() {
	"$HPCTL" -s "$DIR/target.sock" thread_get_stats | jq -r '[.threads[0].busy, .threads[0].busy + .threads[0].idle] | @tsv'
}

# cpu_ticks: the target process's user+system time in clock ticks.
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$TPID/stat"
}

# sys_busy: busy clock ticks of all CPUs (user, nice, system, irq,
# softirq), from /proc/stat.
sys_busy() {
	awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat
}

# children_cpu VAR: sets VAR to the user+system clock ticks of this
# shell's reaped children (times must run in this shell, not a subshell).
children_cpu() {
	times >"$DIR/times"
	printf -v "$1" '%s' "$(awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
		printf "%d\n", t * hz + 0.5 }' "$DIR/times")"
}

# perf_run NAME QD FLAGS...: bdevperf on CPU 0, 4 KiB randread on Nvme0n1;
# prints who used the CPUs meanwhile, so that a run disturbed by other
# processes on this shared machine shows as such.
perf_run() {
	local name=$1 qd=$2
	shift 2
	local s0 k0 c0 w0 s1 k1 c1 w1
	children_cpu k0
	s0=$(sys_busy) c0=$(cpu_ticks) w0=$(date +%s%N)
	"$BDEVPERF" -c "$DIR/initiator.json" -b Nvme0n1 -m 0x1 "$@" -q "$qd" -o 4096 -w randread -t "$RUNTIME" -S 0 \
		--json-output "$DIR/$name.json" >"$DIR/$name.out" 2>&1 || {
		echo "bdevperf $name failed:" >&2
		cat "$DIR/$name.out" >&2
		exit 1
	}
	s1=$(sys_busy) c1=$(cpu_ticks) w1=$(date +%s%N)
	children_cpu k1
	awk -v wall="$(((w1 - w0) / 1000000))" -v hz="$(getconf CLK_TCK)" -v sys="$((s1 - s0))" \
		-v perf="$((k1 - k0))" -v tgt="$((c1 - c0))" -v name="$name" 'BEGIN {
		one = wall / 1000 * hz / 100
		printf "  CPU over the %s run (%.1f s, %% of one CPU): target %.0f%%, bdevperf %.0f%%, everything else %.0f%%\n",
			name, wall / 1000, tgt / one, perf / one, (sys > tgt + perf ? sys - tgt - perf : 0) / one }' >"$DIR/$name.cpu"
}

# floor NAME FLAGS...: tcpfloor pinned to CPUs 0 (client) and 1 (server);
# sets floor_avg and floor_p99 (us).
floor() {
	local name=$1 s0 k0 w0 s1 k1 w1
	shift
	children_cpu k0
	s0=$(sys_busy) w0=$(date +%s%N)
	taskset -c 0,1 go run "$ROOT/test/bench/tcpfloor" -t "$FLOOR_TIME" -client-cpu 0 -server-cpu 1 "$@" \
		>"$DIR/floor-$name.out"
	s1=$(sys_busy) w1=$(date +%s%N)
	children_cpu k1
	grep -v '^FLOOR' "$DIR/floor-$name.out"
	awk -v wall="$(((w1 - w0) / 1000000))" -v hz="$(getconf CLK_TCK)" -v sys="$((s1 - s0))" -v mine="$((k1 - k0))" 'BEGIN {
		one = wall / 1000 * hz / 100
		printf "  CPU over the run (%.1f s with go run, %% of one CPU): go run + tcpfloor %.0f%%, everything else %.0f%%\n",
			wall / 1000, mine / one, (sys > mine ? sys - mine : 0) / one }'
	floor_avg=$(sed -n 's/^FLOOR.* avg_us=\([0-9.]*\).*/\1/p' "$DIR/floor-$name.out")
	floor_p99=$(sed -n 's/^FLOOR.* p99_us=\([0-9.]*\).*/\1/p' "$DIR/floor-$name.out")
}

# ratios LABEL QD1_JSON FLOOR_AVG FLOOR_P99
ratios() {
	jq -r --arg name "$1" --arg fa "$3" --arg fp "$4" '.total |
		"  QD1 avg / \($name) avg = \(.avg_latency_us * 100 / ($fa | tonumber) | floor / 100)x   " +
		"QD1 p99 / \($name) p99 = \(.p99_latency_us * 100 / ($fp | tonumber) | floor / 100)x"' "$2"
}

machine
echo
echo "== floor: raw TCP ping-pong over 127.0.0.1, client thread on CPU 0, server thread on CPU 1, $FLOOR_TIME each"
floor spin -mode spin
spin_avg=$floor_avg spin_p99=$floor_p99
floor block -mode block
block_avg=$floor_avg block_p99=$floor_p99
floor spin-readshape -mode spin -req 72 -resp 4120
echo
echo "target: hyperpath -m 0x2 (CPU 1), null bdev 4 KiB blocks; initiator: bdevperf -m 0x1 (CPU 0); port $PORT"
for mode in $MODES; do
	case $mode in
	poll) flags=(--poll) ;;
	adaptive) flags=() ;;
	*)
		echo "MODES: $mode is not poll or adaptive" >&2
		exit 2
		;;
	esac
	echo
	echo "== $mode: target ${flags[*]:-(adaptive)}, bdevperf ${flags[*]:-(adaptive)}"
	start_target "${flags[@]}"
	perf_run "qd1-$mode" 1 "${flags[@]}"
	read -r b0 t0 < <(busy_ticks)
	perf_run "qd32-$mode" 32 "${flags[@]}"
	read -r b1 t1 < <(busy_ticks)
	stop_target

	jq -r '.total | "QD1  randread 4k: IOPS \(.iops | floor)  avg \(.avg_latency_us * 100 | floor / 100) us  p50 \(.p50_latency_us * 100 | floor / 100) us  p99 \(.p99_latency_us * 100 | floor / 100) us  p99.9 \(.p99_9_latency_us * 100 | floor / 100) us"' "$DIR/qd1-$mode.json"
	cat "$DIR/qd1-$mode.cpu"
	jq -r '.total | "QD32 randread 4k: IOPS \(.iops | floor)  avg \(.avg_latency_us * 100 | floor / 100) us  p99 \(.p99_latency_us * 100 | floor / 100) us"' "$DIR/qd32-$mode.json"
	cat "$DIR/qd32-$mode.cpu"
	echo "ratios ($mode):"
	ratios "floor(spin)" "$DIR/qd1-$mode.json" "$spin_avg" "$spin_p99"
	if [[ $mode == adaptive ]]; then
		ratios "floor(block)" "$DIR/qd1-$mode.json" "$block_avg" "$block_p99"
	fi
	jq -r --argjson busy "$(((b1 - b0) * 1000 / (t1 - t0)))" '.total |
		"  QD32 IOPS per target core = \(.iops | floor)   (the target reactor was busy \($busy / 10)% of its ticks)"' \
		"$DIR/qd32-$mode.json"
done
echo
echo "uptime after: $(uptime)"
