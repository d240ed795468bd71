package perf

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// JobResult is one job's outcome (or, as Result.Total, all jobs').
// Latencies are in microseconds; throughput is over the measured window.
type JobResult struct {
	Bdev    string `json:"job"`
	Reactor int    `json:"reactor"`
	// Core is the CPU core of the job's reactor (-1 when unpinned).
	Core     int    `json:"core"`
	CoreMask string `json:"core_mask"`
	Workload string `json:"workload"`
	// Status is "finished", "terminated" (interrupted) or "failed" (IO
	// errors or miscompares).
	Status string `json:"status"`
	// ReadPercent is the share of reads of RW and RandRW; Percentage is
	// the same, set for those workloads only (JSON "percentage").
	ReadPercent int  `json:"-"`
	Percentage  *int `json:"percentage,omitempty"`
	QueueDepth  int  `json:"queue_depth"`
	IOSizeBytes int  `json:"io_size"`
	// OffsetBlocks and NumBlocks are the part of the bdev the job covers.
	OffsetBlocks uint64 `json:"offset_blocks"`
	NumBlocks    uint64 `json:"num_blocks"`

	Runtime     time.Duration `json:"-"`
	RuntimeSec  float64       `json:"runtime"`
	IOs         uint64        `json:"io_completed"`
	Bytes       uint64        `json:"bytes"`
	Failed      uint64        `json:"io_failed"`
	IOPS        float64       `json:"iops"`
	MiBps       float64       `json:"mibps"`
	FailPerSec  float64       `json:"fail_per_sec"`
	AvgUs       float64       `json:"avg_latency_us"`
	MinUs       float64       `json:"min_latency_us"`
	MaxUs       float64       `json:"max_latency_us"`
	P50Us       float64       `json:"p50_latency_us"`
	P99Us       float64       `json:"p99_latency_us"`
	P999Us      float64       `json:"p99_9_latency_us"`
	Miscompares uint64        `json:"miscompares"`
	// IOErrors counts every failed IO, including those that completed
	// after the measured window (Failed counts only those inside it).
	IOErrors          uint64       `json:"io_errors"`
	MiscompareDetails []Miscompare `json:"miscompare_details,omitempty"`
	ErrorDetails      []IOError    `json:"error_details,omitempty"`

	// Hist holds the job's latencies in nanoseconds.
	Hist *hdr.Histogram `json:"-"`
}

// Result is a whole run.
type Result struct {
	cfg Config
	// Seed is the seed the run used (Config.Seed or the one picked).
	Seed uint64 `json:"seed"`
	// Interrupted is set when the context was cancelled before Duration.
	Interrupted bool        `json:"interrupted"`
	Jobs        []JobResult `json:"results"`
	Total       JobResult   `json:"total"`
}

// Latency returns every job's latencies merged, in nanoseconds.
func (r *Result) Latency() *hdr.Histogram { return r.Total.Hist }

// Failure returns an error naming the miscompares and IO errors of the
// run, or nil when there were none.
func (r *Result) Failure() error {
	if r.Total.Miscompares == 0 && r.Total.IOErrors == 0 {
		return nil
	}
	return fmt.Errorf("bdevperf: %d verify miscompares, %d IO errors", r.Total.Miscompares, r.Total.IOErrors)
}

func us(ns float64) float64 { return ns / 1000 }

// collect turns the finished jobs into results. Control plane, after
// every job's done channel is closed.
func (r *Result) collect(jobs []*job) {
	cfg := &r.cfg
	r.Seed = cfg.Seed
	total := JobResult{Bdev: "Total", Core: -1, Reactor: -1, Workload: cfg.Workload.String(),
		QueueDepth: cfg.QueueDepth, IOSizeBytes: cfg.IOSizeBytes, Hist: newHist(), Status: "finished"}
	if cfg.Workload.Mixed() {
		total.ReadPercent = cfg.ReadPercent
		total.Percentage = &cfg.ReadPercent
	}
	var latSum uint64
	minNs := ^uint64(0)
	for _, j := range jobs {
		jr := JobResult{
			Bdev: j.bdevName, Reactor: j.r.ID(), Core: j.r.Core(), Workload: cfg.Workload.String(),
			QueueDepth: cfg.QueueDepth, IOSizeBytes: cfg.IOSizeBytes,
			OffsetBlocks: j.base, NumBlocks: j.numIOs * j.ioBlocks,
			IOs: j.c.ios, Bytes: j.c.bytes, Failed: j.c.failed,
			Miscompares: j.c.miscompares, IOErrors: j.c.ioErrors, Hist: j.hist,
		}
		if cfg.Workload.Mixed() {
			jr.ReadPercent = cfg.ReadPercent
			jr.Percentage = &cfg.ReadPercent
		}
		jr.CoreMask = "reactor " + fmt.Sprint(jr.Reactor)
		if jr.Core >= 0 {
			jr.CoreMask = fmt.Sprintf("0x%x", uint64(1)<<uint(jr.Core%64))
		}
		jr.Runtime = (j.stopTicks - j.startTicks).Duration()
		jr.RuntimeSec = jr.Runtime.Seconds()
		if secs := jr.RuntimeSec; secs > 0 {
			jr.IOPS = float64(jr.IOs) / secs
			jr.MiBps = float64(jr.Bytes) / secs / (1 << 20)
			jr.FailPerSec = float64(jr.Failed) / secs
		}
		if jr.IOs > 0 {
			jr.AvgUs = us(float64(j.c.latSumNs) / float64(jr.IOs))
			jr.MinUs = us(float64(j.c.latMinNs))
			jr.MaxUs = us(float64(j.c.latMaxNs))
			jr.P50Us = us(float64(j.hist.ValueAtQuantile(50)))
			jr.P99Us = us(float64(j.hist.ValueAtQuantile(99)))
			jr.P999Us = us(float64(j.hist.ValueAtQuantile(99.9)))
			minNs = min(minNs, j.c.latMinNs)
		}
		for _, m := range j.mis[:j.nmis] {
			jr.MiscompareDetails = append(jr.MiscompareDetails, Miscompare{
				OffsetBlocks: m.offsetBlocks, LBA: m.lba, ByteOffset: m.byteOffset,
				Expected: append([]byte(nil), m.expected[:m.n]...), Got: append([]byte(nil), m.got[:m.n]...),
			})
		}
		for _, e := range j.errs[:j.nerrs] {
			e.TypeName, e.StatusName = e.Type.String(), e.Status.String()
			jr.ErrorDetails = append(jr.ErrorDetails, e)
		}
		switch {
		case jr.Miscompares > 0 || jr.IOErrors > 0:
			jr.Status = "failed"
		case j.interrupted:
			jr.Status = "terminated"
		default:
			jr.Status = "finished"
		}
		if jr.Status != "finished" && total.Status != "failed" {
			total.Status = jr.Status
		}
		r.Jobs = append(r.Jobs, jr)

		total.Runtime = max(total.Runtime, jr.Runtime)
		total.IOs += jr.IOs
		total.Bytes += jr.Bytes
		total.Failed += jr.Failed
		total.IOPS += jr.IOPS
		total.MiBps += jr.MiBps
		total.FailPerSec += jr.FailPerSec
		total.MaxUs = max(total.MaxUs, jr.MaxUs)
		total.Miscompares += jr.Miscompares
		total.IOErrors += jr.IOErrors
		latSum += j.c.latSumNs
		total.Hist.Merge(j.hist)
	}
	total.RuntimeSec = total.Runtime.Seconds()
	if total.IOs > 0 {
		total.AvgUs = us(float64(latSum) / float64(total.IOs))
		total.MinUs = us(float64(minNs))
		total.P50Us = us(float64(total.Hist.ValueAtQuantile(50)))
		total.P99Us = us(float64(total.Hist.ValueAtQuantile(99)))
		total.P999Us = us(float64(total.Hist.ValueAtQuantile(99.9)))
	}
	r.Total = total
}

const tableRow = " %-27s: %10.2f %12.2f %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f %10.2f\n"

// WriteTable prints the per-job table in the layout of SPDK's bdevperf,
// with p50/p99/p99.9 columns added and no TO/s column (there are no IO
// timeouts). Latencies are in microseconds.
func (r *Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	if r.cfg.Workload == Verify {
		fmt.Fprintf(&b, "\nVerify pattern seed: %d\n", r.Seed)
	}
	fmt.Fprintf(&b, "\n%*s\n", 112, "Latency(us)")
	fmt.Fprintf(&b, " %-27s: %10s %12s %10s %10s %10s %10s %10s %10s %10s %10s\n", "Device Information",
		"runtime(s)", "IOPS", "MiB/s", "Fail/s", "Average", "min", "max", "p50", "p99", "p99.9")
	for i := range r.Jobs {
		jr := &r.Jobs[i]
		mix := ""
		if jr.Workload == RW.String() || jr.Workload == RandRW.String() {
			mix = fmt.Sprintf(", percentage: %d", jr.ReadPercent)
		}
		fmt.Fprintf(&b, "Job: %s (Core Mask %s, workload: %s%s, depth: %d, IO size: %d)\n",
			jr.Bdev, jr.CoreMask, jr.Workload, mix, jr.QueueDepth, jr.IOSizeBytes)
		if jr.Status == "terminated" {
			fmt.Fprintf(&b, "Job: %s ended early after %.2f seconds\n", jr.Bdev, jr.RuntimeSec)
		}
		if jr.Workload == Verify.String() || r.cfg.EveryCore {
			fmt.Fprintf(&b, "\t LBA range: start 0x%x length 0x%x\n", jr.OffsetBlocks, jr.NumBlocks)
		}
		writeRow(&b, "   "+jr.Bdev, jr)
		for _, m := range jr.MiscompareDetails {
			fmt.Fprintf(&b, "\t MISCOMPARE at LBA %d (IO at %d), byte %d: expected % x, got % x\n",
				m.LBA, m.OffsetBlocks, m.ByteOffset, m.Expected, m.Got)
		}
		if n := uint64(len(jr.MiscompareDetails)); jr.Miscompares > n {
			fmt.Fprintf(&b, "\t ... and %d more miscompares\n", jr.Miscompares-n)
		}
		for _, e := range jr.ErrorDetails {
			fmt.Fprintf(&b, "\t IO ERROR: %s of %d blocks at %d: status %s\n", e.TypeName, e.NumBlocks, e.OffsetBlocks, e.StatusName)
		}
		if n := uint64(len(jr.ErrorDetails)); jr.IOErrors > n {
			fmt.Fprintf(&b, "\t ... and %d more IO errors\n", jr.IOErrors-n)
		}
	}
	b.WriteString(strings.Repeat("=", 142) + "\n")
	writeRow(&b, "Total", &r.Total)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRow(b *strings.Builder, name string, jr *JobResult) {
	fmt.Fprintf(b, tableRow, name, jr.RuntimeSec, jr.IOPS, jr.MiBps, jr.FailPerSec,
		jr.AvgUs, jr.MinUs, jr.MaxUs, jr.P50Us, jr.P99Us, jr.P999Us)
}

// WriteJSON writes the results as one JSON object: {"seed", "interrupted",
// "results": [per job], "total"}, with the keys of JobResult's tags.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
