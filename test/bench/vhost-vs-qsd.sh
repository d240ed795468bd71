#!/usr/bin/env bash
# vhost-vs-qsd.sh: our vhost-user-blk target against qemu-storage-daemon's
# vhost-user-blk export, driven by the same client: bdevperf attached with
# bdev_virtio_attach_controller (vq_count 1), 4 KiB random reads at queue
# depth 32 and at queue depth 1, RUNTIME seconds each.
#
#   null   ours: hyperpath, bdev_null_create Null0 (1 GiB)   -- with --poll and adaptive
#          QSD:  --blockdev driver=null-co,size=1G,read-zeroes=on
#   ram    ours: hyperpath, bdev_malloc_create Malloc0 (1 GiB) -- with --poll and adaptive
#          QSD:  --blockdev driver=file on a 1 GiB file in /dev/shm, cache.direct=off
#
# Each side gets one core: the target (our daemon -m TARGET_MASK, QSD under
# taskset -c TARGET_CPU, its worker threads included) on CPU 1, bdevperf
# (-m CLIENT_MASK) on CPU 0. The client is identical for every side; it
# polls (CLIENT_ARGS, default --poll) so that its own wake-ups do not
# count against either target. Sides alternate within each of ROUNDS
# rounds. All bdevs use 512-byte blocks, as QSD's export does by default.
#
# Prints one line per run, then per setup the mean over rounds of IOPS,
# avg and p99 for every side, the ratios ours/QSD of IOPS and p99 at
# QD32, and the QD1 average latency through our target.
#
# Env: BDEVPERF, HYPERPATH (default: build/bdevperf, build/hyperpath built
# from this tree), RUNTIME seconds (10), ROUNDS (3), TARGET_CPU (1),
# TARGET_MASK (0x2), CLIENT_MASK (0x1), CLIENT_ARGS (--poll), SIZE_MB
# (1024), SHM_DIR (/dev/shm), SETUPS ("null ram"), BENCH_DIR (scratch for
# configs and sockets; default a temporary one, removed afterwards).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need jq taskset qemu-storage-daemon

if [[ -z "${HYPERPATH:-}" ]]; then
	HYPERPATH="$ROOT/build/hyperpath"
	(cd "$ROOT" && go build -o build/hyperpath ./app/hyperpath)
fi
RUNTIME=${RUNTIME:-10}
ROUNDS=${ROUNDS:-3}
TARGET_CPU=${TARGET_CPU:-1}
TARGET_MASK=${TARGET_MASK:-0x2}
CLIENT_MASK=${CLIENT_MASK:-0x1}
CLIENT_ARGS=${CLIENT_ARGS-"--poll"}
SIZE_MB=${SIZE_MB:-1024}
SHM_DIR=${SHM_DIR:-/dev/shm}
SETUPS=${SETUPS:-null ram}

if [[ -n "${BENCH_DIR:-}" ]]; then
	DIR=$BENCH_DIR
else
	# Short: vhost-user socket paths are limited to 107 bytes.
	DIR=$(mktemp -d /tmp/hpvq.XXXXXX)
fi
SHM_FILE="$SHM_DIR/hyperpath-vhost-vs-qsd.$$.img"
SOCK="$DIR/vhost.0"
TARGET_PID=

cleanup() {
	stop_target
	rm -f "$SHM_FILE"
	[[ -n "${BENCH_DIR:-}" ]] || rm -rf "$DIR"
}
trap cleanup EXIT

# stop_target ends the target this script started, by its PID.
stop_target() {
	if [[ -n "$TARGET_PID" ]]; then
		kill -TERM "$TARGET_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$TARGET_PID" 2>/dev/null || break
			sleep 0.05
		done
		kill -KILL "$TARGET_PID" 2>/dev/null || true
		wait "$TARGET_PID" 2>/dev/null || true
		TARGET_PID=
	fi
	rm -f "$SOCK"
}

# wait_sock waits until the target accepts connections on $SOCK (QSD
# creates the file at bind, before it listens).
wait_sock() {
	for _ in $(seq 1 200); do
		if [[ -S "$SOCK" ]] && python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$SOCK" 2>/dev/null; then
			sleep 0.1 # let the target finish with the probe connection
			return 0
		fi
		kill -0 "$TARGET_PID" 2>/dev/null || { echo "target exited; log:" >&2; cat "$DIR/target.log" >&2; exit 1; }
		sleep 0.05
	done
	echo "target did not listen on $SOCK; log:" >&2
	cat "$DIR/target.log" >&2
	exit 1
}

blocks=$((SIZE_MB * 2048)) # 512-byte blocks
ours_config() { # $1: bdev_null_create | bdev_malloc_create, $2: bdev name
	cat >"$DIR/target.json" <<JSON
{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "$1", "params": {"name": "$2", "num_blocks": $blocks, "block_size": 512}}]},
  {"subsystem": "vhost_blk", "config": [
    {"method": "vhost_create_blk_controller", "params": {"ctrlr": "vhost.0", "dev_name": "$2"}}]}
]}
JSON
}

# start_ours MODE (poll | adaptive) BDEV_METHOD BDEV_NAME
start_ours() {
	local poll=()
	[[ $1 == poll ]] && poll=(--poll)
	ours_config "$2" "$3"
	"$HYPERPATH" --no-default -c "$DIR/target.json" -S "$DIR" -r "$DIR/rpc.sock" -m "$TARGET_MASK" "${poll[@]}" \
		>"$DIR/target.log" 2>&1 &
	TARGET_PID=$!
	wait_sock
}

# start_qsd BLOCKDEV
start_qsd() {
	taskset -c "$TARGET_CPU" qemu-storage-daemon --blockdev "$1" \
		--export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$SOCK,writable=on,num-queues=1" \
		>"$DIR/target.log" 2>&1 &
	TARGET_PID=$!
	wait_sock
}

cat >"$DIR/client.json" <<JSON
{"subsystems": [{"subsystem": "bdev", "config": [
  {"method": "bdev_virtio_attach_controller",
   "params": {"name": "VirtioUser0", "trtype": "user", "traddr": "$SOCK", "dev_type": "blk", "vq_count": 1}}
]}]}
JSON

# run_client QD: prints "iops avg_us p99_us"
run_client() {
	# shellcheck disable=SC2086 # CLIENT_ARGS is a list of flags
	"$BDEVPERF" -c "$DIR/client.json" -b VirtioUser0 -q "$1" -o 4096 -w randread -t "$RUNTIME" -m "$CLIENT_MASK" \
		-S 0 --json-output "$DIR/client.json.out" ${CLIENT_ARGS} >"$DIR/client.out" 2>&1 ||
		{ echo "bdevperf failed:" >&2; cat "$DIR/client.out" "$DIR/target.log" >&2; exit 1; }
	jq -r '.results[0] | "\(.iops) \(.avg_latency_us) \(.p99_latency_us)"' "$DIR/client.json.out"
}

# sides SETUP: the sides of a setup, QSD last
sides() {
	case $1 in
	null) echo ours-poll ours-adaptive qsd ;;
	ram) echo ours-poll ours-adaptive qsd ;;
	*) echo "unknown setup $1" >&2; exit 2 ;;
	esac
}

start_side() { # SETUP SIDE
	case $1/$2 in
	null/ours-poll) start_ours poll bdev_null_create Null0 ;;
	null/ours-adaptive) start_ours adaptive bdev_null_create Null0 ;;
	null/qsd) start_qsd "driver=null-co,node-name=disk0,size=$((SIZE_MB << 20)),read-zeroes=on" ;;
	ram/ours-poll) start_ours poll bdev_malloc_create Malloc0 ;;
	ram/ours-adaptive) start_ours adaptive bdev_malloc_create Malloc0 ;;
	ram/qsd) start_qsd "driver=file,node-name=disk0,filename=$SHM_FILE,cache.direct=off" ;;
	esac
}

machine
echo "target: CPU $TARGET_CPU (ours -m $TARGET_MASK, QSD taskset -c $TARGET_CPU: $(qemu-storage-daemon --version | head -1))"
echo "client: bdevperf -m $CLIENT_MASK $CLIENT_ARGS, bdev_virtio_attach_controller vq_count 1, 4 KiB randread, ${RUNTIME}s per run"
echo "hugepages: $(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo ?)"
if [[ " $SETUPS " == *" ram "* ]]; then
	dd if=/dev/zero of="$SHM_FILE" bs=1M count="$SIZE_MB" status=none
fi

RES="$DIR/results.txt" # setup side qd round iops avg p99
: >"$RES"
printf '%-5s %-5s %-14s %-4s %12s %10s %10s\n' round setup side qd IOPS avg_us p99_us
for r in $(seq 1 "$ROUNDS"); do
	for setup in $SETUPS; do
		for side in $(sides "$setup"); do
			start_side "$setup" "$side"
			for qd in 32 1; do
				read -r iops avg p99 < <(run_client "$qd")
				printf '%-5s %-5s %-14s %-4s %12.0f %10.2f %10.2f\n' "$r" "$setup" "$side" "$qd" "$iops" "$avg" "$p99"
				echo "$setup $side $qd $r $iops $avg $p99" >>"$RES"
			done
			stop_target
		done
	done
done

echo
echo "mean over $ROUNDS rounds (ratio columns: ours/QSD; IOPS higher is better, p99 lower is better)"
printf '%-5s %-14s %-4s %12s %10s %10s %10s %10s\n' setup side qd IOPS avg_us p99_us IOPS_x p99_x
for setup in $SETUPS; do
	for qd in 32 1; do
		awk -v s="$setup" -v q="$qd" -v order="$(sides "$setup")" '
			$1 == s && $3 == q { n[$2]++; i[$2] += $5; a[$2] += $6; p[$2] += $7 }
			END {
				k = split(order, o, " ")
				qi = i["qsd"] / n["qsd"]; qp = p["qsd"] / n["qsd"]
				for (j = 1; j <= k; j++) {
					d = o[j]
					if (!n[d]) continue
					mi = i[d] / n[d]; ma = a[d] / n[d]; mp = p[d] / n[d]
					if (d == "qsd") { ri = "-"; rp = "-" } else { ri = sprintf("%.3f", mi / qi); rp = sprintf("%.3f", mp / qp) }
					printf "%-5s %-14s %-4s %12.0f %10.2f %10.2f %10s %10s\n", s, d, q, mi, ma, mp, ri, rp
				}
			}' "$RES"
	done
done
echo
awk '$3 == 1 && $2 ~ /^ours/ { n[$1" "$2]++; a[$1" "$2] += $6 }
	END { for (k in n) printf "QD1 average latency through our target (%s): %.2f us\n", k, a[k] / n[k] }' "$RES" | sort
echo "uptime after: $(uptime)"
