#!/usr/bin/env bash
# vhost-vs-qsd.sh: our vhost-user-blk target against qemu-storage-daemon's
# vhost-user-blk export, driven by the same client: bdevperf attached with
# bdev_virtio_attach_controller (vq_count 1), 4 KiB random reads at queue
# depth 32 and at queue depth 1, RUNTIME seconds each.
#
#   null   ours: hyperpath, bdev_null_create Null0 (1 GiB)   -- with --poll and adaptive
#          QSD:  --blockdev driver=null-co,size=1G,read-zeroes=on (QSD zeroes
#                each read's buffer; our null bdev leaves it untouched)
#   ram    ours: hyperpath, bdev_malloc_create Malloc0 (1 GiB) -- with --poll and adaptive
#          QSD:  --blockdev driver=file on a 1 GiB file in /dev/shm, cache.direct=off,
#                aio=io_uring (QSD_AIO; io_uring doubled QSD's QD32 IOPS over
#                the default thread pool here, so it is the baseline to beat)
#
# Each side gets one core: the target (our daemon -m TARGET_MASK, QSD under
# taskset -c TARGET_CPU, its worker threads included) on CPU 1, bdevperf
# (-m CLIENT_MASK) on CPU 0. The client is identical for every side; it
# polls (CLIENT_ARGS, default --poll) so that its own wake-ups do not
# count against either target. Sides alternate within each of ROUNDS
# rounds. All bdevs use 512-byte blocks, as QSD's export does by default.
#
# Prints one line per run (with the CPU time anything else on the machine
# used meanwhile, and the hypervisor's steal time: the machine is shared),
# then per setup and queue depth the mean over rounds of IOPS, avg and p99
# for every side with the ratios ours/QSD of IOPS and of p99, and the QD1
# average latency through our target. Each target start is followed by an
# unmeasured warm-up run.
#
# Env: BDEVPERF, HYPERPATH (default: build/bdevperf, build/hyperpath built
# from this tree), RUNTIME seconds (10), ROUNDS (3), WARMUP seconds of the
# unmeasured run after each target start (2), TARGET_CPU (1), TARGET_MASK
# (0x2), CLIENT_CPU (0), CLIENT_MASK (0x1), CLIENT_ARGS (--poll), SIZE_MB
# (1024), SHM_DIR (/dev/shm), SETUPS ("null ram"), ORDER (poll: ours-poll runs
# before ours-adaptive in each round; adaptive: the other way), QSD_AIO (io_uring;
# threads is QSD's default), BENCH_DIR (scratch for configs and sockets;
# default a temporary one, removed afterwards).
#
# Reference results: 2-vCPU AMD EPYC VM (kernel 6.18.44), no
# hugepages, QSD 7.2.22, 2026-11-25 19:45, RUNTIME=6 ROUNDS=5; other jobs
# took at most 1.8% of a CPU in any run (hypervisor steal up to 12%); mean
# over the rounds:
#
#	setup side           qd           IOPS     avg_us     p99_us     IOPS_x      p99_x
#	null  ours-poll      32        4155538       8.13      20.70      2.950      0.286
#	null  ours-adaptive  32        3364589       9.59      25.96      2.389      0.359
#	null  qsd            32        1408470      22.98      72.36          -          -
#	null  ours-poll      1          849105       1.30       1.97      4.420      0.069
#	null  ours-adaptive  1          879207       1.24       2.05      4.577      0.071
#	null  qsd            1          192097       5.26      28.79          -          -
#	ram   ours-poll      32         907116      35.44     115.42      5.251      0.306
#	ram   ours-adaptive  32         935614      34.41     109.84      5.415      0.291
#	ram   qsd            32         172767     185.87     377.14          -          -
#	ram   ours-poll      1          392683       2.56       6.13      7.316      0.086
#	ram   ours-adaptive  1          485793       2.14       3.65      9.051      0.051
#	ram   qsd            1           53673      18.78      71.44          -          -
#
# Single runs of one side ranged 2.9M-5.3M IOPS (null, QD32) with c2c
# between 65 and 627 ns; 3 of 20 single null QD32 rounds over this run and
# one with ORDER=adaptive fell below 2x QSD (1.53-1.94x). At QD32 the
# adaptive reactor never sleeps, so the two modes differ only by noise and
# by their slot in the round.
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
WARMUP=${WARMUP:-2}
QSD_AIO=${QSD_AIO:-io_uring}
ORDER=${ORDER:-poll}

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

# c2c: the round trip of a cache line between the client's and the
# target's CPU, measured right before each run. On a VM the host moves
# vCPUs between physical cores, and this latency (60 ns on neighbouring
# cores, 400+ ns across core complexes on the 2-vCPU EPYC VM) moves every
# number below with it; compare sides only where it is alike. Measured
# before each target starts (a polling target holds its CPU), so it can
# have changed by the time of the run. Needs cc; "-" without it.
C2C=
if command -v cc >/dev/null; then
	cat >"$DIR/c2c.c" <<'C'
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
enum { N = 200000 };
static _Alignas(64) atomic_long line;
static void pin(int cpu) {
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
static void *echo(void *arg) {
	pin(*(int *)arg);
	for (long i = 0; i < N; i++) {
		while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1)
			;
		atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
	}
	return 0;
}
int main(int argc, char **argv) {
	int a = atoi(argv[1]), b = atoi(argv[2]);
	pthread_t t;
	struct timespec t0, t1;
	pthread_create(&t, 0, echo, &b);
	pin(a);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < N; i++) {
		atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
		while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2)
			;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(t, 0);
	printf("%.0f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / N);
	return 0;
}
C
	cc -O2 -pthread -o "$DIR/c2c" "$DIR/c2c.c" && C2C="$DIR/c2c"
fi
CLIENT_CPU=${CLIENT_CPU:-0}
c2c() { if [[ -n "$C2C" ]]; then "$C2C" "$CLIENT_CPU" "$TARGET_CPU"; else echo -; fi; }

HZ=$(getconf CLK_TCK)
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; } # jiffies, all CPUs
cpu_steal() { awk '/^cpu / { print $9 }' /proc/stat; }
proc_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime+stime of every thread

# bdevperf_once QD SECONDS: one client run; its results in $DIR/client.json.out
bdevperf_once() {
	# shellcheck disable=SC2086 # CLIENT_ARGS is a list of flags
	"$BDEVPERF" -c "$DIR/client.json" -b VirtioUser0 -q "$1" -o 4096 -w randread -t "$2" -m "$CLIENT_MASK" \
		-S 0 --json-output "$DIR/client.json.out" ${CLIENT_ARGS} >"$DIR/client.out" 2>&1
}

# run_client QD: prints "iops avg_us p99_us other_pct steal_pct". other_pct
# is the CPU time of everything but the target and this client during the
# run, in percent of one CPU (other engineers' jobs on a shared machine);
# steal_pct the hypervisor's steal time likewise. A failed run is retried
# once, with a note on stderr.
run_client() {
	local b0 s0 t0 w0 b1 s1 t1 w1 c other steal
	b0=$(cpu_busy) s0=$(cpu_steal) t0=$(proc_cpu "$TARGET_PID") w0=$(date +%s.%N)
	TIMEFORMAT='%3U %3S'
	if ! { time bdevperf_once "$1" "$RUNTIME"; } 2>"$DIR/client.time"; then
		echo "note: bdevperf failed, retrying once in 1 s:" >&2
		sed 's/^/  | /' "$DIR/client.out" >&2
		sleep 1
		b0=$(cpu_busy) s0=$(cpu_steal) t0=$(proc_cpu "$TARGET_PID") w0=$(date +%s.%N)
		if ! { time bdevperf_once "$1" "$RUNTIME"; } 2>"$DIR/client.time"; then
			echo "bdevperf failed again:" >&2
			cat "$DIR/client.out" "$DIR/target.log" >&2
			exit 1
		fi
	fi
	b1=$(cpu_busy) s1=$(cpu_steal) t1=$(proc_cpu "$TARGET_PID") w1=$(date +%s.%N)
	c=$(awk '{ print $1 + $2 }' "$DIR/client.time")
	read -r other steal < <(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v t="$((t1 - t0))" -v c="$c" -v w="$w1" -v w0="$w0" -v hz="$HZ" \
		'BEGIN { o = (b - s - t) / hz - c; if (o < 0) o = 0; printf "%.1f %.1f\n", 100 * o / (w - w0), 100 * s / hz / (w - w0) }')
	jq -r --arg o "$other" --arg s "$steal" '.results[0] | "\(.iops) \(.avg_latency_us) \(.p99_latency_us) \($o) \($s)"' "$DIR/client.json.out"
}

# warm_up: an unmeasured QD32 run, so that both sides have touched their
# memory (a fresh 1 GiB RAM bdev faults its pages in on first read).
warm_up() {
	bdevperf_once 32 "$WARMUP" || { echo "note: warm-up run failed:" >&2; sed 's/^/  | /' "$DIR/client.out" >&2; }
}

# sides SETUP: the sides of a setup in the order they run, QSD last
# (ORDER: "poll" runs ours-poll before ours-adaptive, "adaptive" the other
# way round)
sides() {
	case $1 in
	null | ram) ;;
	*) echo "unknown setup $1" >&2; exit 2 ;;
	esac
	case $ORDER in
	poll) echo ours-poll ours-adaptive qsd ;;
	adaptive) echo ours-adaptive ours-poll qsd ;;
	*) echo "ORDER is poll or adaptive, not $ORDER" >&2; exit 2 ;;
	esac
}

start_side() { # SETUP SIDE
	case $1/$2 in
	null/ours-poll) start_ours poll bdev_null_create Null0 ;;
	null/ours-adaptive) start_ours adaptive bdev_null_create Null0 ;;
	null/qsd) start_qsd "driver=null-co,node-name=disk0,size=$((SIZE_MB << 20)),read-zeroes=on" ;;
	ram/ours-poll) start_ours poll bdev_malloc_create Malloc0 ;;
	ram/ours-adaptive) start_ours adaptive bdev_malloc_create Malloc0 ;;
	ram/qsd) start_qsd "driver=file,node-name=disk0,filename=$SHM_FILE,cache.direct=off,aio=$QSD_AIO" ;;
	esac
}

machine
echo "target: CPU $TARGET_CPU (ours -m $TARGET_MASK, QSD taskset -c $TARGET_CPU: $(qemu-storage-daemon --version | head -1))"
echo "client: bdevperf -m $CLIENT_MASK $CLIENT_ARGS, bdev_virtio_attach_controller vq_count 1, 4 KiB randread, ${RUNTIME}s per run"
echo "hugepages: $(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo ?); QSD file aio=$QSD_AIO"
if [[ " $SETUPS " == *" ram "* ]]; then
	dd if=/dev/zero of="$SHM_FILE" bs=1M count="$SIZE_MB" status=none
fi

RES="$DIR/results.txt" # setup side qd round iops avg p99
: >"$RES"
echo "other%: CPU used by anything but the target and the client during the run; steal%: hypervisor steal (both in % of one CPU)"
echo "c2c_ns: cache-line round trip CPU $CLIENT_CPU <-> CPU $TARGET_CPU measured just before the target started"
printf '%-5s %-5s %-14s %-4s %12s %10s %10s %7s %7s %7s\n' round setup side qd IOPS avg_us p99_us other% steal% c2c_ns
for r in $(seq 1 "$ROUNDS"); do
	for setup in $SETUPS; do
		for side in $(sides "$setup"); do
			c2c_ns=$(c2c) # before the start: a polling target holds its CPU
			start_side "$setup" "$side"
			warm_up
			for qd in 32 1; do
				read -r iops avg p99 other steal < <(run_client "$qd")
				printf '%-5s %-5s %-14s %-4s %12.0f %10.2f %10.2f %7s %7s %7s\n' "$r" "$setup" "$side" "$qd" "$iops" "$avg" "$p99" "$other" "$steal" "$c2c_ns"
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
echo "per-round ratios ours/QSD (each round runs the sides back to back, so a ratio pairs runs close in time), and their median"
awk '
	{ iops[$1" "$2" "$3" "$4] = $5; p99[$1" "$2" "$3" "$4] = $7; if ($4 > rounds) rounds = $4
	  if ($2 != "qsd") key[$1" "$2" "$3] = 1 }
	function median(v, n,    i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
		return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
	}
	END {
		for (k in key) {
			split(k, f, " ")
			li = ""; lp = ""; n = 0
			for (r = 1; r <= rounds; r++) {
				o = f[1]" "f[2]" "f[3]" "r; q = f[1]" qsd "f[3]" "r
				if (!(o in iops) || !(q in iops) || iops[q] == 0 || p99[q] == 0) continue
				n++; ri[n] = iops[o] / iops[q]; rp[n] = p99[o] / p99[q]
				li = li sprintf(" %.2f", ri[n]); lp = lp sprintf(" %.2f", rp[n])
			}
			if (n) printf "%-5s %-14s qd %-3s IOPS_x%s (median %.2f)   p99_x%s (median %.2f)\n", f[1], f[2], f[3], li, median(ri, n), lp, median(rp, n)
		}
	}' "$RES" | sort
echo
awk '$3 == 1 && $2 ~ /^ours/ { n[$1" "$2]++; a[$1" "$2] += $6 }
	END { for (k in n) printf "QD1 average latency through our target (%s): %.2f us\n", k, a[k] / n[k] }' "$RES" | sort
echo "uptime after: $(uptime)"
