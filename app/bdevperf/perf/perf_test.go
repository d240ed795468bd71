package perf_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"hyperpath/app/bdevperf/perf"
	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/bdev/null"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// env is a started reactor group on a core mask and a registry on it.
type env struct {
	g   *reactor.Group
	reg *bdev.Registry
}

func newEnv(t *testing.T, mask string, poolSize int) *env {
	t.Helper()
	cores, err := reactor.ParseCoreMask(mask)
	if err != nil {
		t.Fatal(err)
	}
	g, err := reactor.NewGroup(reactor.GroupOptions{Cores: cores})
	if errors.Is(err, reactor.ErrCoreUnavailable) {
		t.Skipf("core mask %s not usable here: %v", mask, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	e := &env{g: g, reg: bdev.NewRegistry(bdev.Options{Reactors: g.Reactors(), IOPoolSize: poolSize})}
	t.Cleanup(func() {
		for _, n := range e.reg.Names() {
			if err := e.reg.Unregister(n, nil); err != nil {
				t.Errorf("unregister %s: %v", n, err)
			}
		}
		if err := g.Stop(); err != nil {
			t.Error(err)
		}
		g.Close()
	})
	return e
}

func (e *env) add(t *testing.T, d bdev.Device) {
	t.Helper()
	if _, err := e.reg.Register(d); err != nil {
		t.Fatal(err)
	}
}

func (e *env) malloc(t *testing.T, name string, bs uint32, blocks uint64) {
	d, err := malloc.New(malloc.Options{Name: name, BlockSize: bs, NumBlocks: blocks, Memory: hugemem.SmallPages})
	if err != nil {
		t.Fatal(err)
	}
	e.add(t, d)
}

func (e *env) null(t *testing.T, name string, bs uint32, blocks uint64) {
	d, err := null.New(null.Options{Name: name, BlockSize: bs, NumBlocks: blocks})
	if err != nil {
		t.Fatal(err)
	}
	e.add(t, d)
}

func (e *env) run(t *testing.T, cfg perf.Config) *perf.Result {
	t.Helper()
	cfg.Buffers = hugemem.SmallPages
	res, err := perf.Run(context.Background(), cfg, e.reg, e.g, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestWorkloads runs every workload on malloc and null bdevs, on one and
// two cores, in the default and the every-core job layouts.
func TestWorkloads(t *testing.T) {
	for _, mask := range []string{"0x1", "0x3"} {
		for _, every := range []bool{false, true} {
			if mask == "0x1" && every {
				continue // same as the default layout
			}
			name := mask
			if every {
				name += "-C"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, mask, 0)
				e.malloc(t, "Malloc0", 512, 8192)
				e.null(t, "Null0", 4096, 1<<18)
				for w := perf.Read; w <= perf.WriteZeroes; w++ {
					bdevs := []string{"Malloc0", "Null0"}
					if w == perf.Verify {
						bdevs = bdevs[:1] // a null device keeps no data
					}
					res := e.run(t, perf.Config{Bdevs: bdevs, QueueDepth: 8, IOSizeBytes: 4096, Workload: w,
						ReadPercent: 50, Duration: 100 * time.Millisecond, EveryCore: every})
					wantJobs := len(bdevs)
					if every {
						wantJobs *= e.g.Len()
					}
					if len(res.Jobs) != wantJobs {
						t.Fatalf("%v: %d jobs, want %d", w, len(res.Jobs), wantJobs)
					}
					if err := res.Failure(); err != nil {
						t.Fatalf("%v: %v", w, err)
					}
					reactors := map[int]bool{}
					for _, j := range res.Jobs {
						reactors[j.Reactor] = true
						if j.IOs == 0 || j.IOPS <= 0 {
							t.Errorf("%v on %s: no IO completed", w, j.Bdev)
						}
						if j.Runtime < 90*time.Millisecond || j.Runtime > 150*time.Millisecond {
							t.Errorf("%v on %s: runtime %v for a 100ms run", w, j.Bdev, j.Runtime)
						}
						if j.MinUs > j.AvgUs || j.AvgUs > j.MaxUs || j.P50Us > j.P99Us || j.P99Us > j.P999Us {
							t.Errorf("%v on %s: latencies out of order: %+v", w, j.Bdev, j)
						}
						if j.Status != "finished" {
							t.Errorf("%v on %s: status %q", w, j.Bdev, j.Status)
						}
					}
					if len(reactors) != min(e.g.Len(), wantJobs) {
						t.Errorf("%v: jobs on %d reactors, want %d", w, len(reactors), min(e.g.Len(), wantJobs))
					}
					if res.Total.IOs != sumIOs(res) {
						t.Errorf("%v: total %d IOs, jobs sum to %d", w, res.Total.IOs, sumIOs(res))
					}
				}
			})
		}
	}
}

func sumIOs(r *perf.Result) uint64 {
	var n uint64
	for _, j := range r.Jobs {
		n += j.IOs
	}
	return n
}

func TestMixedReadPercent(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	e.malloc(t, "Malloc0", 512, 8192)
	for _, pct := range []int{0, 100} {
		b, _ := e.reg.Get("Malloc0")
		before, _ := b.Stats(bdev.ResetNone)
		res := e.run(t, perf.Config{Bdevs: []string{"Malloc0"}, QueueDepth: 4, IOSizeBytes: 512,
			Workload: perf.RandRW, ReadPercent: pct, Duration: 50 * time.Millisecond})
		after, _ := b.Stats(bdev.ResetNone)
		reads, writes := after.NumReadOps-before.NumReadOps, after.NumWriteOps-before.NumWriteOps
		if res.Total.IOs == 0 || (pct == 0 && reads != 0) || (pct == 100 && writes != 0) {
			t.Errorf("-M %d: %d reads, %d writes", pct, reads, writes)
		}
	}
}

func TestVerifyMalloc(t *testing.T) {
	for _, mask := range []string{"0x1", "0x3"} {
		t.Run(mask, func(t *testing.T) {
			e := newEnv(t, mask, 0)
			e.malloc(t, "Malloc0", 512, 4096)
			e.malloc(t, "Malloc1", 4096, 1024)
			res := e.run(t, perf.Config{QueueDepth: 16, IOSizeBytes: 8192, Workload: perf.Verify,
				Duration: 300 * time.Millisecond, EveryCore: true})
			if err := res.Failure(); err != nil {
				var buf bytes.Buffer
				res.WriteTable(&buf)
				t.Fatalf("%v\n%s", err, buf.String())
			}
			for _, j := range res.Jobs {
				// Regions were written and read back: as many IOs as one
				// write and one read per slot at least. (Kept low: on a
				// loaded machine a reactor may get little CPU.)
				if j.IOs < 2*16 {
					t.Errorf("%s on reactor %d: only %d IOs", j.Bdev, j.Reactor, j.IOs)
				}
			}
		})
	}
}

// faultyDisk is a RAM disk that misbehaves on purpose: it corrupts every
// corruptEvery-th read, silently drops every dropEvery-th write after the
// first dropAfter writes, and fails every failEvery-th IO (0 disables
// each).
type faultyDisk struct {
	dropAfter                          int
	info                               bdev.Info
	data                               []byte
	corruptEvery, dropEvery, failEvery int
	noUnmap                            bool
}

func newFaulty(name string, blocks uint64) *faultyDisk {
	return &faultyDisk{info: bdev.Info{Name: name, BlockSize: 512, NumBlocks: blocks, Module: "faulty"},
		data: make([]byte, blocks*512)}
}

func (d *faultyDisk) Info() *bdev.Info { return &d.info }
func (d *faultyDisk) Supports(t bdev.IOType) bool {
	return t != bdev.IOCompare && !(d.noUnmap && t == bdev.IOUnmap)
}
func (d *faultyDisk) NewChannel(*reactor.Reactor) (bdev.Channel, error) {
	return &faultyChan{d: d}, nil
}
func (d *faultyDisk) Destroy() error { return nil }

type faultyChan struct {
	d                 *faultyDisk
	reads, writes, ns int
}

func (c *faultyChan) Submit(io *bdev.IO) {
	d := c.d
	c.ns++
	if d.failEvery > 0 && c.ns%d.failEvery == 0 {
		io.Complete(bdev.StatusFailed)
		return
	}
	off := io.OffsetBlocks * 512
	n := io.NumBlocks * 512
	switch io.Type {
	case bdev.IORead:
		bdev.CopyToIovs(io.Iovs, 0, d.data[off:off+n])
		if c.reads++; d.corruptEvery > 0 && c.reads%d.corruptEvery == 0 {
			io.Iovs[0][n/2] ^= 0x01
		}
	case bdev.IOWrite:
		if c.writes++; d.dropEvery == 0 || c.writes <= d.dropAfter || c.writes%d.dropEvery != 0 {
			bdev.CopyFromIovs(d.data[off:off+n], io.Iovs, 0)
		}
	case bdev.IOUnmap, bdev.IOWriteZeroes:
		clear(d.data[off : off+n])
	}
	io.Complete(bdev.StatusSuccess)
}
func (c *faultyChan) Close() {}

func TestVerifyDetectsCorruptReads(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	d := newFaulty("Bad0", 1024)
	d.corruptEvery = 5
	e.add(t, d)
	res := e.run(t, perf.Config{QueueDepth: 4, IOSizeBytes: 2048, Workload: perf.Verify, Duration: 100 * time.Millisecond})
	j := res.Jobs[0]
	if res.Failure() == nil || j.Miscompares == 0 || j.Status != "failed" {
		t.Fatalf("corrupting device passed verify: %+v", j)
	}
	m := j.MiscompareDetails[0]
	// The flipped byte is the first of the IO's middle block (2048/2 =
	// byte 1024 = block 2, byte 0: the LBA word's low byte).
	if m.LBA != m.OffsetBlocks+2 || m.ByteOffset != 0 || m.Expected[0]^m.Got[0] != 0x01 {
		t.Errorf("miscompare at LBA %d (IO at %d) byte %d, expected % x got % x", m.LBA, m.OffsetBlocks, m.ByteOffset, m.Expected, m.Got)
	}
	var buf bytes.Buffer
	res.WriteTable(&buf)
	if !strings.Contains(buf.String(), "MISCOMPARE at LBA") {
		t.Errorf("table does not show the miscompare:\n%s", buf.String())
	}
}

// TestVerifyDetectsStaleData: a device that drops writes once every block
// has been written returns the data of the region's previous pass, which
// differs only in the sequence number.
func TestVerifyDetectsStaleData(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	d := newFaulty("Stale0", 64)
	d.dropEvery, d.dropAfter = 7, 64
	e.add(t, d)
	res := e.run(t, perf.Config{QueueDepth: 2, IOSizeBytes: 512, Workload: perf.Verify, Duration: 100 * time.Millisecond})
	j := res.Jobs[0]
	if j.Miscompares == 0 {
		t.Fatalf("dropped writes went unnoticed: %+v", j)
	}
	for _, m := range j.MiscompareDetails {
		if m.ByteOffset != 16 { // LBA and seed match: an older write of this block
			t.Errorf("miscompare %+v not in the sequence number", m)
		}
	}
	if len(j.MiscompareDetails) == 0 {
		t.Errorf("no miscompare in the sequence number among %+v", j.MiscompareDetails)
	}
}

func TestIOErrorsCounted(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	d := newFaulty("Fail0", 4096)
	d.failEvery = 10
	e.add(t, d)
	res := e.run(t, perf.Config{QueueDepth: 8, IOSizeBytes: 4096, Workload: perf.RandRead, Duration: 100 * time.Millisecond})
	j := res.Jobs[0]
	if j.Failed == 0 || j.FailPerSec <= 0 || j.IOErrors < j.Failed || res.Failure() == nil {
		t.Fatalf("failures not counted: %+v", j)
	}
	if len(j.ErrorDetails) == 0 || j.ErrorDetails[0].StatusName != "failed" || j.ErrorDetails[0].TypeName != "read" {
		t.Errorf("error details: %+v", j.ErrorDetails)
	}
	// About one IO in ten fails.
	if ratio := float64(j.Failed) / float64(j.Failed+j.IOs); ratio < 0.08 || ratio > 0.12 {
		t.Errorf("failure ratio %.3f, want about 0.1", ratio)
	}
}

func TestConfigErrors(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	e.malloc(t, "Malloc0", 512, 64)
	d := newFaulty("NoUnmap0", 64)
	d.noUnmap = true
	e.add(t, d)
	base := perf.Config{Bdevs: []string{"Malloc0"}, QueueDepth: 4, IOSizeBytes: 4096, Workload: perf.RandRead, Duration: time.Second}
	for name, tc := range map[string]struct {
		mod  func(*perf.Config)
		want error
		text string
	}{
		"io size not a block multiple": {func(c *perf.Config) { c.IOSizeBytes = 1000 }, perf.ErrIOSize, "not a multiple of bdev Malloc0's block size 512"},
		"io size beyond device":        {func(c *perf.Config) { c.IOSizeBytes = 1 << 20 }, perf.ErrIOSize, "larger than"},
		"queue depth":                  {func(c *perf.Config) { c.QueueDepth = 0 }, perf.ErrBadConfig, "-q"},
		"duration":                     {func(c *perf.Config) { c.Duration = 0 }, perf.ErrBadConfig, "-t"},
		"read percent":                 {func(c *perf.Config) { c.Workload, c.ReadPercent = perf.RW, 101 }, perf.ErrBadConfig, "-M"},
		"unknown bdev":                 {func(c *perf.Config) { c.Bdevs = []string{"Nope"} }, bdev.ErrNotFound, "Nope"},
		"unsupported io type":          {func(c *perf.Config) { c.Bdevs, c.Workload = []string{"NoUnmap0"}, perf.Unmap }, perf.ErrUnsupported, "cannot unmap"},
		"verify regions":               {func(c *perf.Config) { c.Workload, c.QueueDepth = perf.Verify, 16 }, perf.ErrVerifyRegion, "lower -q or -o"},
	} {
		cfg := base
		tc.mod(&cfg)
		_, err := perf.Run(context.Background(), cfg, e.reg, e.g, nil)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: got %v, want %v mentioning %q", name, err, tc.want, tc.text)
		}
	}
	if _, err := perf.ParseWorkload("randomread"); !errors.Is(err, perf.ErrBadWorkload) {
		t.Errorf("ParseWorkload(randomread) = %v", err)
	}
	for w := perf.Read; w <= perf.WriteZeroes; w++ {
		if got, err := perf.ParseWorkload(w.String()); err != nil || got != w {
			t.Errorf("ParseWorkload(%q) = %v, %v", w.String(), got, err)
		}
	}
	// The bdevs were released: they can be removed.
	for _, n := range []string{"Malloc0", "NoUnmap0"} {
		b, _ := e.reg.Get(n)
		if b.Claimed() != "" {
			t.Errorf("%s still claimed", n)
		}
	}
}

// TestQueueDepthAboveIOPool: with a channel IO pool smaller than the
// queue depth, slots wait for free IOs and the run still completes.
func TestQueueDepthAboveIOPool(t *testing.T) {
	e := newEnv(t, "0x1", 16)
	e.null(t, "Null0", 512, 1<<16)
	res := e.run(t, perf.Config{QueueDepth: 64, IOSizeBytes: 512, Workload: perf.RandRead, Duration: 100 * time.Millisecond})
	if res.Total.IOs == 0 || res.Failure() != nil {
		t.Fatalf("%+v", res.Total)
	}
}

func TestInterrupt(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	e.null(t, "Null0", 512, 1<<16)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := perf.Run(ctx, perf.Config{QueueDepth: 8, IOSizeBytes: 512, Workload: perf.RandRead,
		Duration: time.Minute, Buffers: hugemem.SmallPages}, e.reg, e.g, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("interrupted run took %v", took)
	}
	// Under load the reactor may see the start and stop messages in one
	// batch, so the window can be empty; it must not outlast the cancel.
	if !res.Interrupted || res.Jobs[0].Status != "terminated" || res.Jobs[0].Runtime > 2*time.Second {
		t.Errorf("interrupted: %v, job %+v", res.Interrupted, res.Jobs[0])
	}
}

func TestProgressLines(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	e.null(t, "Null0", 512, 1<<16)
	var buf bytes.Buffer // Run writes from its own goroutine only, and returns before we read
	_, err := perf.Run(context.Background(), perf.Config{QueueDepth: 8, IOSizeBytes: 512, Workload: perf.RandRead,
		Duration: 350 * time.Millisecond, ProgressInterval: 100 * time.Millisecond, Buffers: hugemem.SmallPages}, e.reg, e.g, &buf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 || len(lines) > 4 {
		t.Fatalf("%d progress lines for 350ms at 100ms:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 6 || f[1] != "s:" || f[3] != "IOPS" || f[5] != "MiB/s" {
			t.Errorf("progress line %q", l)
			continue
		}
		if v, err := strconv.ParseFloat(f[2], 64); err != nil || v <= 0 {
			t.Errorf("progress line %q: IOPS %q", l, f[2])
		}
	}
}

func TestJSONOutput(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	e.null(t, "Null0", 512, 1<<16)
	res := e.run(t, perf.Config{QueueDepth: 8, IOSizeBytes: 4096, Workload: perf.RandRW, ReadPercent: 70,
		Duration: 50 * time.Millisecond, Seed: 99})
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Seed    uint64 `json:"seed"`
		Results []map[string]any
		Total   map[string]any
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got.Seed != 99 || len(got.Results) != 1 {
		t.Fatalf("%s", buf.String())
	}
	r := got.Results[0]
	for _, k := range []string{"job", "core_mask", "workload", "status", "queue_depth", "io_size", "runtime", "iops",
		"mibps", "io_failed", "avg_latency_us", "min_latency_us", "max_latency_us", "p50_latency_us", "p99_latency_us",
		"p99_9_latency_us", "miscompares", "percentage"} {
		if _, ok := r[k]; !ok {
			t.Errorf("result lacks %q", k)
		}
	}
	if r["job"] != "Null0" || r["workload"] != "randrw" || r["percentage"] != 70.0 || r["iops"].(float64) <= 0 {
		t.Errorf("result %v", r)
	}
	if got.Total["iops"] != r["iops"] {
		t.Errorf("total iops %v, job %v", got.Total["iops"], r["iops"])
	}
}

// TestHgrm writes the merged histogram and parses it back the way
// plotters do.
func TestHgrm(t *testing.T) {
	e := newEnv(t, "0x3", 0)
	e.null(t, "Null0", 512, 1<<16)
	e.malloc(t, "Malloc0", 512, 8192)
	res := e.run(t, perf.Config{QueueDepth: 16, IOSizeBytes: 4096, Workload: perf.RandRead, Duration: 100 * time.Millisecond})
	var buf bytes.Buffer
	if err := res.WriteHgrm(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if !strings.HasPrefix(text, "# bdevperf randread") || !strings.Contains(text, "microseconds") {
		t.Errorf("header does not state the unit:\n%.200s", text)
	}
	var (
		rows                int
		lastV, lastP        float64
		lastCount           int64
		sawHeader, sawFinal bool
		footerCount         int64
	)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "#[Max"):
			i := strings.Index(line, "Total count")
			n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(line[i+len("Total count"):]), "= ]"), 10, 64)
			if err != nil {
				t.Fatalf("footer %q: %v", line, err)
			}
			footerCount = n
			continue
		case strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "Value"):
			sawHeader = true
			continue
		}
		f := strings.Fields(line)
		if sawFinal || (len(f) != 4 && len(f) != 3) {
			t.Fatalf("unexpected line %q", line)
		}
		v, err1 := strconv.ParseFloat(f[0], 64)
		p, err2 := strconv.ParseFloat(f[1], 64)
		c, err3 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("line %q does not parse", line)
		}
		if v < lastV || p < lastP || c < lastCount || p > 1 {
			t.Fatalf("line %q goes backwards (after %v %v %v)", line, lastV, lastP, lastCount)
		}
		if len(f) == 4 {
			inv, err := strconv.ParseFloat(f[3], 64)
			if err != nil || (p < 1 && (inv < 1/(1-p)*0.99 || inv > 1/(1-p)*1.01)) {
				t.Fatalf("line %q: bad 1/(1-Percentile)", line)
			}
		} else {
			sawFinal = true
			if p != 1 {
				t.Fatalf("last line %q is not the 100th percentile", line)
			}
		}
		lastV, lastP, lastCount = v, p, c
		rows++
	}
	want := int64(res.Total.IOs)
	if !sawHeader || !sawFinal || rows < 10 || lastCount != want || footerCount != want {
		t.Errorf("header %v final %v rows %d, last count %d, footer %d, want %d IOs", sawHeader, sawFinal, rows, lastCount, footerCount, want)
	}
	if us := res.Total.MaxUs; lastV < us*0.99 || lastV > us*1.01+0.001 {
		t.Errorf("100th percentile %v us, max latency %v us", lastV, us)
	}
}

// TestCountsMatchIostat checks bdevperf's counts against the generic
// layer's own: every IO counted was a read the bdev completed, and the
// bdev completed at most one queue of reads more (those drained after
// the window). The measured window also matches the wall clock.
func TestCountsMatchIostat(t *testing.T) {
	e := newEnv(t, "0x1", 0)
	e.null(t, "Null0", 512, 1<<20)
	b, _ := e.reg.Get("Null0")
	before, _ := b.Stats(bdev.ResetNone)
	start := time.Now()
	res := e.run(t, perf.Config{QueueDepth: 32, IOSizeBytes: 4096, Workload: perf.RandRead, Duration: 300 * time.Millisecond})
	wall := time.Since(start)
	after, _ := b.Stats(bdev.ResetNone)
	ops := after.NumReadOps - before.NumReadOps
	if ios := res.Total.IOs; ios == 0 || ios > ops || ops > ios+32 {
		t.Errorf("bdevperf counted %d IOs, the bdev completed %d reads", ios, ops)
	}
	if bytes := after.BytesRead - before.BytesRead; bytes != ops*4096 {
		t.Errorf("%d bytes read for %d reads of 4096", bytes, ops)
	}
	if rt := res.Jobs[0].Runtime; rt != 300*time.Millisecond && (rt < 290*time.Millisecond || rt > 310*time.Millisecond) {
		t.Errorf("runtime %v for -t 0.3", rt)
	}
	if wall < 300*time.Millisecond {
		t.Errorf("a 300ms run returned after %v of wall time: the tick rate is off", wall)
	}
}
