package vm

import (
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed scripts/diskcheck.sh
var diskCheckScript string

// FioJob is one fio run of the disk check, on its own region of the disk.
type FioJob struct {
	BlockSize  string // fio --bs, e.g. "4k"
	QueueDepth int    // fio --iodepth
}

// DefaultFioJobs are the block sizes and queue depths of the disk check.
var DefaultFioJobs = []FioJob{{"4k", 1}, {"4k", 16}, {"64k", 4}}

// DiskCheck is the standard guest-side check of a block device. In order:
// the device and its hardware queue count (/sys/block/X/mq); per FioJob,
// fio randwrite with crc32c verify (libaio, O_DIRECT) on its own region;
// blkdiscard; write-zeroes read back as zeroes; mkfs.ext4 on the whole
// device (no partition), 9 files of random data, sync, drop_caches,
// sha256 re-read, remount read-only, re-read again.
type DiskCheck struct {
	Device  string   // guest block device (default /dev/vda)
	Queues  int      // expected hardware queues; 0 skips the check
	Fio     []FioJob // nil means DefaultFioJobs
	FioMiB  int      // region per fio job (0 means 8)
	FsMiB   int      // size of the big file written through ext4 (0 means 8)
	Discard bool     // run blkdiscard (the device must offer discard)
	// NoData is for back ends that keep no data (null-co, a null bdev):
	// fio then does a 50/50 random read/write mix without verify, and the
	// zero-out and file system steps are left out.
	NoData bool
}

func (c DiskCheck) env() map[string]string {
	jobs := c.Fio
	if jobs == nil {
		jobs = DefaultFioJobs
	}
	var js []string
	for _, j := range jobs {
		js = append(js, fmt.Sprintf("%s:%d", j.BlockSize, max(j.QueueDepth, 1)))
	}
	env := map[string]string{
		"DEV":      c.Device,
		"FIO_JOBS": strings.Join(js, " "),
		"FIO_MIB":  strconv.Itoa(c.FioMiB),
		"FS_MIB":   strconv.Itoa(c.FsMiB),
	}
	if c.Device == "" {
		env["DEV"] = "/dev/vda"
	}
	if c.FioMiB <= 0 {
		env["FIO_MIB"] = "8"
	}
	if c.FsMiB <= 0 {
		env["FS_MIB"] = "8"
	}
	if c.Queues > 0 {
		env["QUEUES"] = strconv.Itoa(c.Queues)
	}
	if c.Discard {
		env["DISCARD"] = "1"
	}
	if c.NoData {
		env["NODATA"] = "1"
	}
	return env
}

// Step is one "STEP name ok|FAIL detail" line of a guest check.
type Step struct {
	Name   string
	OK     bool
	Detail string
}

// DiskResult is what the disk check reported.
type DiskResult struct {
	ExitCode  int
	Output    string // the script's console output
	Steps     []Step
	SizeBytes int64 // from the device step
	Queues    int   // hardware queues the guest created
	Elapsed   time.Duration
}

// Step returns the step of that name.
func (r *DiskResult) Step(name string) (Step, bool) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// parseSteps reads the STEP lines of a check's output.
func parseSteps(out string) []Step {
	var steps []Step
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, "STEP ")
		if i < 0 {
			continue
		}
		f := strings.SplitN(strings.TrimSpace(line[i+5:]), " ", 3)
		if len(f) < 2 || (f[1] != "ok" && f[1] != "FAIL") {
			continue
		}
		s := Step{Name: f[0], OK: f[1] == "ok"}
		if len(f) == 3 {
			s.Detail = f[2]
		}
		steps = append(steps, s)
	}
	return steps
}

// detailField returns key's value from "k1=v1 k2=v2" text.
func detailField(detail, key string) string {
	for _, f := range strings.Fields(detail) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// diskResult builds the result and an error naming the failed step.
func diskResult(code int, out string, elapsed time.Duration) (*DiskResult, error) {
	r := &DiskResult{ExitCode: code, Output: out, Steps: parseSteps(out), Elapsed: elapsed}
	if s, ok := r.Step("device"); ok {
		r.SizeBytes, _ = strconv.ParseInt(detailField(s.Detail, "size"), 10, 64)
		r.Queues, _ = strconv.Atoi(detailField(s.Detail, "queues"))
	}
	for _, s := range r.Steps {
		if !s.OK {
			return r, fmt.Errorf("vm: disk check step %s failed: %s", s.Name, s.Detail)
		}
	}
	if code != 0 {
		return r, fmt.Errorf("vm: disk check exited %d after %d steps; output tail:\n%s", code, len(r.Steps), tail(out, 1500))
	}
	if len(r.Steps) == 0 {
		return r, errors.New("vm: disk check printed no steps")
	}
	return r, nil
}

// VhostBlkCheck runs the disk check in a guest whose /dev/vda is a
// vhost-user-blk device served on Socket.
type VhostBlkCheck struct {
	Socket     string
	NumQueues  int        // virtqueues QEMU offers (0 means 1); the check expects min(NumQueues, CPUs) hardware queues
	MemBackend MemBackend // guest RAM: Memfd or Hugetlbfs
	MemoryMiB  int        // 0 means 512
	CPUs       int        // 0 means 2
	Reconnect  time.Duration
	Disk       DiskCheck // Device is forced to /dev/vda and Queues defaults as above
	Timeout    time.Duration
}

// CheckVhostBlk boots a guest on a vhost-user-blk socket, runs the standard
// disk check and returns its result; err names the first failed step (or
// the guest's failure). The guest is gone when it returns. A Hugetlbfs
// check skips the test when huge pages cannot be had.
func CheckVhostBlk(t testing.TB, img *Image, c VhostBlkCheck) (*DiskResult, error) {
	t.Helper()
	cpus := c.CPUs
	if cpus <= 0 {
		cpus = 2
	}
	d := c.Disk
	d.Device = "/dev/vda"
	if d.Queues == 0 {
		d.Queues = min(max(c.NumQueues, 1), cpus)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 4 * time.Minute
	}
	g := img.Boot(t, Config{
		Name:         t.Name() + "/vhost-blk",
		MemoryMiB:    c.MemoryMiB,
		CPUs:         cpus,
		MemBackend:   c.MemBackend,
		VhostUserBlk: []VhostUserBlk{{Socket: c.Socket, NumQueues: c.NumQueues, Reconnect: c.Reconnect}},
		Script:       diskCheckScript,
		Env:          d.env(),
		Timeout:      timeout,
	})
	code, out, err := g.Wait()
	g.Kill()
	if err != nil {
		return nil, err
	}
	return diskResult(code, out, g.Elapsed())
}

// NVMeTCPCheck runs the disk check in a guest whose kernel initiator
// connects over NVMe/TCP to a target listening on the host's loopback.
type NVMeTCPCheck struct {
	Port int    // the target's TCP port on 127.0.0.1 (the guest dials 10.0.2.2:Port)
	NQN  string // subsystem NQN
	// Namespace to check (0 means 1): the guest checks /dev/nvmeXnN of the new controller.
	Namespace int
	Disk      DiskCheck // Device is set by the check; Queues 0 skips the queue check
	// ConnectArgs are extra `nvme connect` arguments, e.g. "--hdr-digest",
	// "--data-digest", "--nr-io-queues=2".
	ConnectArgs []string
	MemoryMiB   int
	Timeout     time.Duration
}

// The guest's side of CheckNVMeTCP: connect, find the namespace of the new
// controller, run the disk check on it, disconnect.
const nvmeTCPCheckScript = `modprobe nvme-tcp || exit 1
nvme connect -t tcp -a 10.0.2.2 -s "$NVME_PORT" -n "$NVME_NQN" $NVME_ARGS || { echo "STEP connect FAIL nvme connect rc=$?"; exit 1; }
DEV=
i=0
while [ -z "$DEV" ] && [ $i -lt 100 ]; do
	for n in /sys/block/nvme*n*; do
		case ${n##*/} in nvme*c*) continue ;; esac # a path of a multipath namespace
		[ -b /dev/${n##*/} ] || continue
		[ "$(cat $n/nsid 2>/dev/null)" = "$NVME_NS" ] || continue
		[ "$(cat $n/device/subsysnqn 2>/dev/null)" = "$NVME_NQN" ] && DEV=/dev/${n##*/}
	done
	[ -n "$DEV" ] || { sleep 0.1; i=$((i + 1)); }
done
[ -n "$DEV" ] || { nvme list; echo "STEP connect FAIL no block device for namespace $NVME_NS of $NVME_NQN"; exit 1; }
echo "STEP connect ok dev=$DEV"
export DEV
sh /diskcheck.sh
rc=$?
nvme disconnect -n "$NVME_NQN" >/dev/null || { echo "STEP disconnect FAIL rc=$?"; exit 1; }
echo "STEP disconnect ok"
exit $rc
`

// CheckNVMeTCP boots a guest with a user-mode NIC, connects the kernel's
// NVMe/TCP initiator to 10.0.2.2:Port (the host's 127.0.0.1:Port), runs the
// disk check on the namespace and disconnects.
func CheckNVMeTCP(t testing.TB, img *Image, c NVMeTCPCheck) (*DiskResult, error) {
	t.Helper()
	if c.Namespace <= 0 {
		c.Namespace = 1
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 4 * time.Minute
	}
	env := c.Disk.env()
	env["NVME_PORT"] = strconv.Itoa(c.Port)
	env["NVME_NQN"] = c.NQN
	env["NVME_NS"] = strconv.Itoa(c.Namespace)
	env["NVME_ARGS"] = strings.Join(c.ConnectArgs, " ")
	delete(env, "DEV")
	g := img.Boot(t, Config{
		Name:      t.Name() + "/nvme-tcp",
		MemoryMiB: c.MemoryMiB,
		Net:       &Net{},
		Script:    nvmeTCPCheckScript,
		Env:       env,
		Timeout:   timeout,
		Data:      map[string][]byte{"/diskcheck.sh": []byte(diskCheckScript)},
	})
	code, out, err := g.Wait()
	g.Kill()
	if err != nil {
		return nil, err
	}
	return diskResult(code, out, g.Elapsed())
}
