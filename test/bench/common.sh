# Sourced by the scripts of test/bench: repo root, the bdevperf binary,
# and a line about the machine.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# BDEVPERF: the binary to run; default build/bdevperf, built from this tree.
if [[ -z "${BDEVPERF:-}" ]]; then
	BDEVPERF="$ROOT/build/bdevperf"
	(cd "$ROOT" && go build -o build/bdevperf ./app/bdevperf)
fi

need() {
	for c in "$@"; do
		command -v "$c" >/dev/null || { echo "$0: needs $c (test/install-deps.sh)" >&2; exit 1; }
	done
}

machine() {
	local model
	model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
	echo "machine: $(nproc) vCPU ${model:-unknown CPU}, $(uname -r)"
	echo "uptime: $(uptime)"
}
