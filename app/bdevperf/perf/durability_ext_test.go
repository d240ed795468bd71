package perf_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hyperpath/app/bdevperf/perf"
	"hyperpath/bdev/local"
)

// TestWriteLogRun runs verify on a file bdev on started reactors while a
// goroutine flushes the write log, as bdevperf --write-log does. After a
// clean run nothing is in flight, so the log must name exactly the
// blocks that hold a pattern, each with its newest seq.
func TestWriteLogRun(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	path := filepath.Join(t.TempDir(), "disk")
	const size = 8 << 20
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	d, err := local.New(local.Options{Name: "File0", Filename: path}) // block size: the O_DIRECT alignment
	if err != nil {
		t.Fatal(err)
	}
	e.add(t, d)

	wl := perf.NewWriteLog(0)
	var log bytes.Buffer // written by the flusher goroutine, then by the test after it stops
	stop, flushed := make(chan struct{}), make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				flushed <- nil
				return
			case <-time.After(5 * time.Millisecond):
				if _, err := wl.Flush(&log); err != nil {
					flushed <- err
					return
				}
			}
		}
	}()
	res := e.run(t, perf.Config{Bdevs: []string{"File0"}, QueueDepth: 16, IOSizeBytes: 4096,
		Workload: perf.Verify, Duration: 300 * time.Millisecond, Seed: 42, WriteLog: wl})
	close(stop)
	wg.Wait()
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if _, err := wl.Flush(&log); err != nil { // what completed since the last tick
		t.Fatal(err)
	}
	if err := res.Failure(); err != nil {
		t.Fatal(err)
	}

	data, err := perf.ReadWriteLog(&log)
	if err != nil {
		t.Fatal(err)
	}
	if len(data.Jobs) != 1 || data.Jobs[0].Bdev != "File0" || data.Jobs[0].BlockSize != d.Info().BlockSize || data.Jobs[0].Seed != 42 ||
		data.Dropped != 0 || data.Truncated {
		t.Fatalf("log %+v %+v", data.Jobs, data)
	}
	// Verify does one write per read: about half the IOs counted in the
	// window, plus those completed while draining.
	if n := uint64(len(data.Records)); n < res.Total.IOs/2 || n > res.Total.IOs/2+16 {
		t.Errorf("%d writes logged for %d verify IOs", n, res.Total.IOs)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := perf.CheckDurability(f, size, data.Jobs[0], data.Records)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Failure(); err != nil {
		t.Fatal(err)
	}
	newest := map[uint64]uint64{} // block -> newest logged seq + 1
	for _, r := range data.Records {
		for b := r.OffsetBlocks; b < r.OffsetBlocks+r.NumBlocks; b++ {
			newest[b] = max(newest[b], r.Seq+1)
		}
	}
	if rep.PatternBlocks != uint64(len(newest)) {
		t.Errorf("%d blocks hold a pattern, the log names %d", rep.PatternBlocks, len(newest))
	}
	// The report checked seq >= logged; here, with nothing in flight, the
	// newest logged seq is exactly what the file holds.
	bs := int64(d.Info().BlockSize)
	blk := make([]byte, bs)
	for b, s := range newest {
		if _, err := f.ReadAt(blk, int64(b)*bs); err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint64(blk[16:]); got != s-1 { // the pattern's seq word
			t.Fatalf("block %d holds seq %d, newest logged %d", b, got, s-1)
		}
	}
	t.Logf("%d writes logged, %d pattern blocks, %d zero", len(data.Records), rep.PatternBlocks, rep.ZeroBlocks)
}
