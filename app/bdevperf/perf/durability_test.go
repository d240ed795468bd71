package perf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"hyperpath/reactor"
)

// TestWriteLogHotPathAllocs: a verify job that logs its writes still
// allocates nothing per reactor iteration, with room in its buffer and
// with the buffer full (dropping).
func TestWriteLogHotPathAllocs(t *testing.T) {
	for _, perJob := range []int{0, 16} {
		t.Run(fmt.Sprintf("perJob=%d", perJob), func(t *testing.T) {
			e := newStepEnv(t)
			wl := NewWriteLog(perJob)
			j := e.startJob(t, "Malloc0", Config{QueueDepth: 32, IOSizeBytes: 4096, Workload: Verify, WriteLog: wl})
			if j.wlog == nil {
				t.Fatal("job has no write log buffer")
			}
			for i := 0; i < 100; i++ {
				e.r.Poll(reactor.Now())
			}
			if a := testing.AllocsPerRun(500, func() { e.r.Poll(reactor.Now()) }); a != 0 {
				t.Errorf("%v allocations per reactor iteration with a write log, want 0", a)
			}
			// The test goroutine is the reactor here: swap directly.
			recs, dropped := j.wlog.swap()
			if perJob == 16 {
				if len(recs) != 16 || dropped == 0 {
					t.Errorf("full buffer: %d records, %d dropped; want 16 and some dropped", len(recs), dropped)
				}
				return
			}
			if len(recs) == 0 || dropped != 0 {
				t.Fatalf("%d records, %d dropped", len(recs), dropped)
			}
			// Each slot writes its region in order, one write per seq:
			// a record's offset gives its slot and the seq its cursor.
			per := j.slots[0].regionIOs
			for _, r := range recs {
				io := (r.off - j.base) / j.ioBlocks
				slot, cursor := io/per, io%per
				if r.n != j.ioBlocks || slot >= uint64(len(j.slots)) || r.seq%per != cursor {
					t.Fatalf("record %+v does not match the slots' walk (region %d IOs)", r, per)
				}
				if r.seq >= j.slots[slot].seq+1 {
					t.Fatalf("record %+v: seq beyond slot %d's %d", r, slot, j.slots[slot].seq)
				}
			}
			if j.c.miscompares != 0 || j.c.ioErrors != 0 {
				t.Errorf("%d miscompares, %d IO errors", j.c.miscompares, j.c.ioErrors)
			}
		})
	}
}

func TestWriteLogNeedsVerify(t *testing.T) {
	c := Config{QueueDepth: 1, IOSizeBytes: 512, Workload: Write, Duration: 1, WriteLog: NewWriteLog(0)}
	if err := c.Validate(); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "verify") {
		t.Errorf("write log on -w write: %v", err)
	}
	c.Workload = Verify
	if err := c.Validate(); err != nil {
		t.Errorf("write log on -w verify: %v", err)
	}
}

// finishedBufs is a WriteLog whose jobs are done (closed channels), so
// Flush swaps without a reactor.
func finishedBufs(perJob int, jobs ...WriteLogJob) (*WriteLog, []*writeBuf) {
	l := NewWriteLog(perJob)
	done := make(chan struct{})
	close(done)
	var bufs []*writeBuf
	for _, j := range jobs {
		bufs = append(bufs, l.add(nil, done, j))
	}
	return l, bufs
}

func TestWriteLogRoundTrip(t *testing.T) {
	j0 := WriteLogJob{Job: 0, Bdev: "Aio0", BlockSize: 512, Seed: 1<<64 - 1}
	j1 := WriteLogJob{Job: 1, Bdev: `odd "name" with spaces`, BlockSize: 4096, Seed: 7}
	l, bufs := finishedBufs(3, j0, j1)
	var out bytes.Buffer
	if n, err := l.Flush(&out); err != nil || n != 0 {
		t.Fatalf("empty flush: %d %v", n, err)
	}
	bufs[0].push(0, 8, 0)
	bufs[0].push(8, 8, 1)
	bufs[1].push(100, 1, 1<<40)
	if n, err := l.Flush(&out); err != nil || n != 3 {
		t.Fatalf("flush: %d %v", n, err)
	}
	for i := 0; i < 5; i++ { // two fit, three are dropped
		bufs[0].push(uint64(16+8*i), 8, uint64(2+i))
	}
	if n, err := l.Flush(&out); err != nil || n != 3 {
		t.Fatalf("flush: %d %v", n, err)
	}
	want := "hyperpath-bdevperf-write-log 1\n" +
		"job 0 \"Aio0\" 512 18446744073709551615\n" +
		"job 1 \"odd \\\"name\\\" with spaces\" 4096 7\n" +
		"0 0 8 0\n0 8 8 1\n1 100 1 1099511627776\n" +
		"0 16 8 2\n0 24 8 3\n0 32 8 4\ndrop 0 2\n"
	if out.String() != want {
		t.Fatalf("log:\n%s\nwant:\n%s", out.String(), want)
	}
	d, err := ReadWriteLog(strings.NewReader(out.String() + "0 40 8")) // cut off mid-line
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Jobs) != 2 || d.Jobs[0] != j0 || d.Jobs[1] != j1 || len(d.Records) != 6 || d.Dropped != 2 || !d.Truncated {
		t.Fatalf("parsed %+v", d)
	}
	if r := d.Records[5]; r != (WriteRecord{Job: 0, OffsetBlocks: 32, NumBlocks: 8, Seq: 4}) {
		t.Errorf("last record %+v", r)
	}
	if d, err := ReadWriteLog(strings.NewReader("")); err != nil || len(d.Records) != 0 || d.Truncated {
		t.Errorf("empty log: %+v %v", d, err)
	}
}

func TestReadWriteLogErrors(t *testing.T) {
	const head = "hyperpath-bdevperf-write-log 1\njob 0 \"A\" 512 1\n"
	for _, tc := range []struct{ log, msg string }{
		{"hyperpath-bdevperf-write-log 2\n", "line 1"},
		{head + "1 0 8 0\n", "undeclared job 1"},
		{head + "job 0 \"A\" 512 1\n", "declared twice"},
		{head + "0 0 0 3\n", "record range"},
		{head + "0 18446744073709551615 2 3\n", "record range"},
		{head + "0 0 8\n", "wants <job>"},
		{head + "0 x 8 1\n", "field 2"},
		{head + "job 1 \"B\" 1000 1\n", "power of two"},
		{head + "job 1 B 512 1\n", "bdev name"},
		{head + "job 1 \"B\" 512\n", "wants <job>"},
		{head + "drop 0 5\ndrop 0 4\n", "bad drop"},
		{head + "drop 3 1\n", "bad drop"},
		{head + strings.Repeat("x", maxWriteLogLine+1) + "\n", "longer than"},
	} {
		d, err := ReadWriteLog(strings.NewReader(tc.log))
		if err == nil || d != nil || !errors.Is(err, ErrWriteLog) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%.80q: got %v, %v; want an error with %q", tc.log, d, err, tc.msg)
		}
	}
}

// device is an in-memory device of n blocks of bs bytes.
type device struct {
	bs  int
	mem []byte
}

func newDevice(bs, n int) *device { return &device{bs: bs, mem: make([]byte, bs*n)} }

func (d *device) block(lba uint64) []byte { return d.mem[int(lba)*d.bs : int(lba+1)*d.bs] }
func (d *device) write(lba, n, seed, seq uint64) {
	fillPattern(d.mem[int(lba)*d.bs:int(lba+n)*d.bs], d.bs, lba, seed, seq)
}

func TestCheckDurability(t *testing.T) {
	const bs, blocks, seed = 512, 64, 99
	job := WriteLogJob{Job: 0, Bdev: "Aio0", BlockSize: bs, Seed: seed}
	// A good device: writes of 4 blocks at 0 (seq 0, then 2), 4 (seq 1)
	// and 8 (seq 3, not logged: it was in flight); the rest never written.
	good := func() *device {
		d := newDevice(bs, blocks)
		d.write(0, 4, seed, 2)
		d.write(4, 4, seed, 1)
		d.write(8, 4, seed, 3)
		return d
	}
	recs := []WriteRecord{{0, 0, 4, 0}, {0, 4, 4, 1}, {0, 0, 4, 2}, {1, 40, 4, 9}} // job 1's is not ours
	check := func(d *device, recs []WriteRecord) *DurabilityReport {
		t.Helper()
		rep, err := CheckDurability(bytes.NewReader(d.mem), int64(len(d.mem)), job, recs)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := check(good(), recs)
	if err := rep.Failure(); err != nil {
		t.Fatal(err)
	}
	if rep.Blocks != blocks || rep.ZeroBlocks != blocks-12 || rep.PatternBlocks != 12 || rep.Records != 3 || rep.LoggedBlocks != 12 {
		t.Fatalf("report %+v", rep)
	}

	for _, tc := range []struct {
		name         string
		mutate       func(d *device)
		recs         []WriteRecord
		bad, missing uint64
		msg          string
	}{
		{"torn: half of a newer write", func(d *device) {
			var nb [bs]byte
			fillPattern(nb[:], bs, 5, seed, 5)
			copy(d.block(5)[256:], nb[256:])
		}, recs, 1, 1, "torn or mixed"},
		{"partly zero", func(d *device) { clear(d.block(2)[bs-8:]) }, recs, 1, 2, "torn or mixed"}, // logged twice
		{"one flipped bit", func(d *device) { d.block(9)[100] ^= 1 }, recs, 1, 0, "byte 96 differs"},
		{"misplaced block", func(d *device) { copy(d.block(20), d.block(1)) }, recs, 1, 0, "header says LBA 1"},
		{"foreign seed", func(d *device) { d.write(30, 1, seed+1, 0) }, recs, 1, 0, "foreign"},
		{"logged write lost", func(d *device) { clear(d.block(6)) }, recs, 0, 1, "block 6: logged write seq 1 completed, block is zero"},
		{"stale block", func(d *device) { d.write(0, 4, seed, 0) }, recs, 0, 4, "holds older seq 0"},
		{"record beyond the device", func(*device) {}, append(recs[:3:3], WriteRecord{0, blocks - 1, 2, 0}), 0, 2, "beyond"},
	} {
		d := good()
		tc.mutate(d)
		rep := check(d, tc.recs)
		err := rep.Failure()
		if err == nil || rep.BadBlocks != tc.bad || rep.Missing != tc.missing || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: bad %d missing %d, %v; want bad %d missing %d mentioning %q",
				tc.name, rep.BadBlocks, rep.Missing, err, tc.bad, tc.missing, tc.msg)
		}
	}
}

// FuzzReadWriteLog: any bytes give either an error and no data, or a log
// whose every record belongs to a declared job and covers blocks.
func FuzzReadWriteLog(f *testing.F) {
	f.Add([]byte("hyperpath-bdevperf-write-log 1\njob 0 \"Aio0\" 512 5\n0 0 8 0\n0 8 8 1\ndrop 0 3\n0 16 8"))
	f.Add([]byte(""))
	f.Add([]byte("hyperpath-bdevperf-write-log 1\n"))
	f.Add([]byte("hyperpath-bdevperf-write-log 1\njob 3 \"a\\x00b\" 4096 0\n3 1 1 18446744073709551615\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := ReadWriteLog(bytes.NewReader(raw))
		if err != nil {
			if d != nil {
				t.Fatalf("error %v with data %+v", err, d)
			}
			return
		}
		jobs := map[int]bool{}
		for _, j := range d.Jobs {
			if j.BlockSize < 24 || j.BlockSize&(j.BlockSize-1) != 0 {
				t.Fatalf("job %+v accepted", j)
			}
			jobs[j.Job] = true
		}
		for _, r := range d.Records {
			if !jobs[r.Job] || r.NumBlocks == 0 || r.OffsetBlocks+r.NumBlocks < r.OffsetBlocks {
				t.Fatalf("record %+v accepted", r)
			}
		}
	})
}

// TestCheckBlockMatchesCheckPattern holds the crash check's block test to
// the verify workload's: the same verdict and offset for pattern blocks
// with every word damaged in turn, and for foreign blocks.
func TestCheckBlockMatchesCheckPattern(t *testing.T) {
	x := newXorshift(3)
	for _, bs := range []int{512, 4096} {
		blk := make([]byte, bs)
		for i := 0; i < 200; i++ {
			lba, seed, seq := x.next()%1e9, x.next(), x.next()%1e6
			fillPattern(blk, bs, lba, seed, seq)
			if got := checkBlock(blk, lba, seed); got != -1 {
				t.Fatalf("bs %d: good block reported at %d", bs, got)
			}
			w := int(x.below(uint64(bs / 8)))
			blk[w*8+int(x.below(8))] ^= byte(1 + x.below(255))
			want := checkPattern(blk, bs, lba, seed, binary.LittleEndian.Uint64(blk[16:]))
			if got := checkBlock(blk, lba, seed); got != want || (w != 2 && got != w*8) {
				t.Fatalf("bs %d: word %d damaged: checkBlock %d, checkPattern %d", bs, w, got, want)
			}
		}
	}
}
