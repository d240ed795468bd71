package uring

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchFileSize is the size of the file BenchmarkRandRead4K reads. Set
// URING_BENCH_FILE to reuse an existing file (for example to run fio on the
// same one).
const benchFileSize = 256 << 20

// BenchmarkRandRead4K reads random 4 KiB blocks of a file with O_DIRECT
// (falling back to buffered reads, with a log line, where the file system
// refuses O_DIRECT) at queue depth 1 and 32, one reactor-style loop on a
// locked OS thread: keep QD requests in flight, Submit and reap without
// sleeping ("poll"), or sleep in io_uring_enter until one completes
// ("wait", what fio's io_uring engine does).
//
// Reference results, 2026-11-25: 2 vCPU VM (AMD EPYC) shared with other
// jobs (load average about 3), ext4 on virtio-blk, Linux 6.18, Go 1.26.8,
// 256 MiB file of random bytes. Medians of 5 rounds, each round running
// fio 3.33 (--ioengine=io_uring --direct=1 --rw=randread --bs=4k
// --iodepth=QD --runtime=2 --time_based) and then this benchmark
// (-benchtime 1s) on the same file. The device is the bottleneck and the
// spread between rounds is +-15%:
//
//	                       IOPS     p99      vs fio
//	fio          QD1       9536     0.12-0.43 ms
//	poll-defer   QD1      11922     0.12-0.49 ms   1.25
//	wait-defer   QD1       7956     0.26-0.33 ms   0.83
//	fio          QD32     55531     1.2-2.1 ms
//	poll-defer   QD32     51103     1.4-2.3 ms     0.92
//	wait-defer   QD32     43105     1.2-3.0 ms     0.78
//
// 0 allocs/op everywhere. The wait modes pay Go's blocking-syscall path
// (the runtime hands the P off during the sleep); a reactor polls, or
// sleeps on an eventfd, and never waits in io_uring_enter.
func BenchmarkRandRead4K(b *testing.B) {
	path := os.Getenv("URING_BENCH_FILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "randread")
		writeDataFile(b, path, benchFileSize)
	}
	modes := []struct {
		name  string
		flags uint32
		wait  bool
	}{
		{"poll", 0, false},
		{"poll-coop", SetupSingleIssuer | SetupCoopTaskrun, false},
		{"poll-defer", ReactorFlags, false},
		{"wait", 0, true},
		{"wait-defer", ReactorFlags, true},
	}
	for _, qd := range []int{1, 32} {
		for _, m := range modes {
			b.Run(fmt.Sprintf("QD%d/%s", qd, m.name), func(b *testing.B) {
				benchRandRead(b, path, qd, m.flags, m.wait)
			})
		}
	}
}

func benchRandRead(b *testing.B, path string, qd int, flags uint32, wait bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	fdi, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		b.Logf("%s refuses O_DIRECT: buffered reads, numbers measure the page cache", path)
		fdi, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fdi)
	fd := int32(fdi)
	var st unix.Stat_t
	if err := unix.Fstat(fdi, &st); err != nil {
		b.Fatal(err)
	}
	nblocks := int(st.Size / 4096)
	if nblocks == 0 {
		b.Fatalf("%s is smaller than one block", path)
	}

	r, err := New(Options{Entries: uint32(qd), Flags: flags})
	if err != nil {
		b.Skipf("flags %#x: %v", flags, err)
	}
	defer r.Close()
	mem := alignedBuf(b, qd*4096)
	starts := make([]time.Duration, qd)
	lat := make([]time.Duration, 1<<20) // last 1M latencies
	nlat := 0
	cq := make([]CQE, qd)
	rng := xorshift(0x2545f4914f6cdd1d)
	base := time.Now()

	issue := func(slot int) {
		s := r.GetSQE()
		s.PrepRead(fd, mem[slot*4096:(slot+1)*4096], uint64(rng.intn(nblocks))*4096)
		s.UserData = uint64(slot)
		starts[slot] = time.Since(base)
	}
	for i := 0; i < qd; i++ {
		issue(i)
	}
	head, tail := 0, 0
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		for head == tail {
			var err error
			if wait {
				_, err = r.SubmitAndWait(1)
			} else {
				_, err = r.Submit()
			}
			if err != nil {
				b.Fatal(err)
			}
			head, tail = 0, r.ReapCQEs(cq)
		}
		c := cq[head]
		head++
		if c.Res != 4096 {
			b.Fatalf("read res %d", c.Res)
		}
		slot := int(c.UserData)
		lat[nlat&(len(lat)-1)] = time.Since(base) - starts[slot]
		nlat++
		issue(slot)
	}
	elapsed := b.Elapsed()
	b.StopTimer()
	// Drain: qd requests are queued or in flight minus those reaped and
	// not yet consumed.
	for left := qd - (tail - head); left > 0; {
		if _, err := r.SubmitAndWaitTimeout(1, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		left -= r.ReapCQEs(cq)
	}
	samples := lat[:min(nlat, len(lat))]
	slices.Sort(samples)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "IOPS")
	b.ReportMetric(float64(samples[len(samples)*99/100]), "p99-ns")
	b.ReportMetric(float64(samples[len(samples)/2]), "p50-ns")
}

// BenchmarkNop measures the layer's own cost plus the kernel's minimum per
// request: batches of NOPs through GetSQE, PrepNop, Submit, ReapCQEs. One
// op is one request. Same machine as above: batch=1 563 ns/op (one
// io_uring_enter per request), batch=32 118 ns/op, 0 allocs/op.
func BenchmarkNop(b *testing.B) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := newRing(b, Options{Entries: 32, OptionalFlags: ReactorFlags})
			cq := make([]CQE, 32)
			b.ReportAllocs()
			queued := 0
			for b.Loop() {
				s := r.GetSQE()
				s.PrepNop()
				s.UserData = uint64(queued)
				queued++
				if queued < batch {
					continue
				}
				if _, err := r.Submit(); err != nil {
					b.Fatal(err)
				}
				for queued > 0 {
					n := r.ReapCQEs(cq)
					if n == 0 {
						if _, err := r.Submit(); err != nil {
							b.Fatal(err)
						}
					}
					queued -= n
				}
			}
		})
	}
}
