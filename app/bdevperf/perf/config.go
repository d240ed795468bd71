package perf

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"hyperpath/bdev"
	"hyperpath/internal/hugemem"
)

// Workload is the IO pattern a job generates (bdevperf's -w).
type Workload uint8

const (
	// Read issues sequential reads over the job's range, wrapping around.
	Read Workload = iota
	// Write issues sequential writes.
	Write
	// RandRead issues reads at uniformly random IO-aligned offsets.
	RandRead
	// RandWrite issues writes at random offsets.
	RandWrite
	// RW mixes sequential reads and writes, Config.ReadPercent of them reads.
	RW
	// RandRW mixes random reads and writes.
	RandRW
	// Verify writes a self-describing pattern, reads it back and compares.
	Verify
	// Flush issues sequential flushes of IOSizeBytes ranges.
	Flush
	// Unmap issues sequential unmaps.
	Unmap
	// WriteZeroes issues sequential write-zeroes.
	WriteZeroes
	numWorkloads
)

var workloadNames = [...]string{"read", "write", "randread", "randwrite", "rw", "randrw", "verify", "flush", "unmap", "write_zeroes"}

func (w Workload) String() string {
	if int(w) < len(workloadNames) {
		return workloadNames[w]
	}
	return "unknown"
}

// ParseWorkload maps bdevperf's -w names to a Workload.
func ParseWorkload(s string) (Workload, error) {
	for i, n := range workloadNames {
		if n == s {
			return Workload(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q: want one of %s", ErrBadWorkload, s, strings.Join(workloadNames[:], ", "))
}

// Mixed reports whether the workload mixes reads and writes (-M applies).
func (w Workload) Mixed() bool { return w == RW || w == RandRW }

// Random reports whether offsets are drawn at random.
func (w Workload) Random() bool { return w == RandRead || w == RandWrite || w == RandRW }

// ioTypes returns the IO types the workload issues.
func (w Workload) ioTypes() []bdev.IOType {
	switch w {
	case Read, RandRead:
		return []bdev.IOType{bdev.IORead}
	case Write, RandWrite:
		return []bdev.IOType{bdev.IOWrite}
	case RW, RandRW, Verify:
		return []bdev.IOType{bdev.IORead, bdev.IOWrite}
	case Flush:
		return []bdev.IOType{bdev.IOFlush}
	case Unmap:
		return []bdev.IOType{bdev.IOUnmap}
	case WriteZeroes:
		return []bdev.IOType{bdev.IOWriteZeroes}
	}
	return nil
}

// needsBuffers reports whether the workload moves data.
func (w Workload) needsBuffers() bool { return w <= Verify }

// writes reports whether the workload changes the device.
func (w Workload) writes() bool { return w != Read && w != RandRead && w != Flush }

// Errors returned by Run's validation.
var (
	ErrBadWorkload  = errors.New("bad workload")
	ErrBadConfig    = errors.New("bad bdevperf config")
	ErrNoBdevs      = errors.New("no bdevs to run on")
	ErrIOSize       = errors.New("bad IO size")
	ErrUnsupported  = errors.New("bdev does not support the workload's IO type")
	ErrVerifyRegion = errors.New("device range too small for one verify region per queue slot")
)

// Config is one bdevperf run. The zero value is not valid: QueueDepth,
// IOSizeBytes and Duration must be set.
type Config struct {
	// Bdevs to run on. Empty means every unclaimed bdev of the registry.
	Bdevs []string
	// QueueDepth is the IOs each job keeps outstanding (-q).
	QueueDepth int
	// IOSizeBytes is the size of each IO (-o); a multiple of every target
	// bdev's block size.
	IOSizeBytes int
	// Workload is the IO pattern (-w).
	Workload Workload
	// ReadPercent is the share of reads, 0..100, for RW and RandRW (-M).
	ReadPercent int
	// Duration is how long IO is measured (-t).
	Duration time.Duration
	// EveryCore runs a job on every reactor for every bdev, each over its
	// own slice of the bdev (-C). Otherwise each bdev gets one job, and the
	// bdevs are dealt to the reactors round robin (SPDK's default).
	EveryCore bool
	// ProgressInterval is how often Run writes a progress line to the
	// progress writer (0: never).
	ProgressInterval time.Duration
	// Seed seeds the jobs' offset generators and the verify pattern. Zero
	// picks one from the clock; Result.Seed reports the one used.
	Seed uint64
	// Buffers selects the page size of the jobs' data buffers.
	Buffers hugemem.Policy
	// DrainTimeout bounds the wait for outstanding IO after the run
	// (default 10 s); jobs still busy then are reported as stuck.
	DrainTimeout time.Duration
	// WriteLog, when set, records the writes that complete, for crash
	// tests (see WriteLog). Verify only; one WriteLog per Run.
	WriteLog *WriteLog
}

// Validate checks the settings that do not depend on the bdevs (Run
// checks the rest against each bdev).
func (c *Config) Validate() error {
	if c.Workload >= numWorkloads {
		return fmt.Errorf("%w: workload %d", ErrBadWorkload, c.Workload)
	}
	if c.QueueDepth <= 0 {
		return fmt.Errorf("%w: queue depth (-q) %d must be positive", ErrBadConfig, c.QueueDepth)
	}
	if c.QueueDepth > MaxQueueDepth {
		return fmt.Errorf("%w: queue depth (-q) %d above the limit %d", ErrBadConfig, c.QueueDepth, MaxQueueDepth)
	}
	if c.IOSizeBytes <= 0 {
		return fmt.Errorf("%w: IO size (-o) %d must be positive", ErrIOSize, c.IOSizeBytes)
	}
	if c.IOSizeBytes > MaxIOSize {
		return fmt.Errorf("%w: IO size (-o) %d above the limit %d", ErrIOSize, c.IOSizeBytes, MaxIOSize)
	}
	if c.Workload.Mixed() && (c.ReadPercent < 0 || c.ReadPercent > 100) {
		return fmt.Errorf("%w: read percentage (-M) %d outside 0..100", ErrBadConfig, c.ReadPercent)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("%w: run time (-t) %v must be positive", ErrBadConfig, c.Duration)
	}
	if c.WriteLog != nil && c.Workload != Verify {
		return fmt.Errorf("%w: a write log needs the verify workload, not %s", ErrBadConfig, c.Workload)
	}
	if c.ProgressInterval < 0 {
		return fmt.Errorf("%w: progress interval %v is negative", ErrBadConfig, c.ProgressInterval)
	}
	return nil
}

// Limits on a run, so a typo cannot exhaust memory.
const (
	MaxQueueDepth = 65536
	MaxIOSize     = 128 << 20
)
