package bdev_test

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/bdev/null"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// env is a registry on one reactor that tests step by hand (Poll).
type env struct {
	r   *reactor.Reactor
	reg *bdev.Registry
}

func newEnv(t testing.TB) *env {
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &env{r: r, reg: bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})}
}

func (e *env) malloc(t testing.TB, name string, blocks uint64) *malloc.Disk {
	d, err := malloc.New(malloc.Options{Name: name, BlockSize: 512, NumBlocks: blocks, Memory: hugemem.SmallPages})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Register(d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) channel(t testing.TB, name string) (*bdev.Desc, *bdev.IOChannel) {
	desc, err := e.reg.Open(name, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := desc.GetChannel(e.r)
	if err != nil {
		t.Fatal(err)
	}
	return desc, ch
}

// do submits one IO and polls until it completes.
func (e *env) do(t testing.TB, ch *bdev.IOChannel, typ bdev.IOType, off, n uint64, iovs ...[]byte) bdev.Status {
	io := ch.Alloc()
	if io == nil {
		t.Fatal("pool empty")
	}
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, off, n, iovs
	st := bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { st = io.Status })
	for i := 0; i < 10 && st == bdev.StatusPending; i++ {
		e.r.Poll(reactor.Now())
	}
	return st
}

func TestMallocReadWriteCompareUnmap(t *testing.T) {
	e := newEnv(t)
	e.malloc(t, "M0", 128)
	_, ch := e.channel(t, "M0")
	w := make([]byte, 2048)
	for i := range w {
		w[i] = byte(i * 7)
	}
	if st := e.do(t, ch, bdev.IOWrite, 10, 4, w[:1000], w[1000:]); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	r := make([]byte, 2048)
	if st := e.do(t, ch, bdev.IORead, 10, 4, r[:512], r[512:]); st != bdev.StatusSuccess || string(r) != string(w) {
		t.Fatalf("read back: %v equal=%v", st, string(r) == string(w))
	}
	if st := e.do(t, ch, bdev.IOCompare, 10, 4, w); st != bdev.StatusSuccess {
		t.Fatalf("compare same: %v", st)
	}
	w[5]++
	if st := e.do(t, ch, bdev.IOCompare, 10, 4, w); st != bdev.StatusMiscompare {
		t.Fatalf("compare different: %v", st)
	}
	if st := e.do(t, ch, bdev.IOUnmap, 11, 1); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	e.do(t, ch, bdev.IORead, 10, 4, r)
	for i := 512; i < 1024; i++ {
		if r[i] != 0 {
			t.Fatal("unmapped block not zero")
		}
	}
	if st := e.do(t, ch, bdev.IOFlush, 0, 128); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
}

func TestInvalidIOs(t *testing.T) {
	e := newEnv(t)
	e.malloc(t, "M0", 16)
	_, ch := e.channel(t, "M0")
	buf := make([]byte, 4096)
	for name, tc := range map[string]struct {
		typ    bdev.IOType
		off, n uint64
		iovs   [][]byte
		want   error
	}{
		"past end":        {bdev.IORead, 15, 2, [][]byte{buf[:1024]}, bdev.ErrOutOfRange},
		"offset overflow": {bdev.IORead, ^uint64(0), 2, [][]byte{buf[:1024]}, bdev.ErrOutOfRange},
		"zero length":     {bdev.IOWrite, 0, 0, nil, bdev.ErrZeroLength},
		"short iovecs":    {bdev.IOWrite, 0, 2, [][]byte{buf[:1000]}, bdev.ErrIovLength},
		"long iovecs":     {bdev.IORead, 0, 1, [][]byte{buf[:1024]}, bdev.ErrIovLength},
		"no iovecs":       {bdev.IORead, 0, 1, nil, bdev.ErrIovLength},
		"huge count":      {bdev.IORead, 0, 1 << 62, [][]byte{buf}, bdev.ErrOutOfRange},
		"bad type":        {bdev.IOType(200), 0, 1, nil, bdev.ErrBadIOType},
	} {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = tc.typ, tc.off, tc.n, tc.iovs
		if err := ch.Validate(io); !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate = %v, want %v", name, err, tc.want)
		}
		ch.Release(io)
		if st := e.do(t, ch, tc.typ, tc.off, tc.n, tc.iovs...); st != bdev.StatusInvalid {
			t.Errorf("%s: status %v, want invalid", name, st)
		}
	}
}

func TestZeroAllocsPerIO(t *testing.T) {
	e := newEnv(t)
	e.malloc(t, "M0", 1024)
	nd, _ := null.New(null.Options{Name: "N0", BlockSize: 512, NumBlocks: 1024})
	e.reg.Register(nd)
	buf := [][]byte{make([]byte, 4096)}
	for _, name := range []string{"M0", "N0"} {
		_, ch := e.channel(t, name)
		var done int
		cb := func(*bdev.IO) { done++ }
		off := uint64(0)
		allocs := testing.AllocsPerRun(2000, func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, off%1000, 8, buf
			off += 8
			ch.Submit(io, cb)
			e.r.Poll(0)
		})
		if allocs != 0 {
			t.Errorf("%s: %.2f allocations per IO", name, allocs)
		}
		if done < 2000 {
			t.Errorf("%s: only %d IOs completed", name, done)
		}
	}
}

func TestClaimsAndHotRemove(t *testing.T) {
	e := newEnv(t)
	e.malloc(t, "Base", 16)
	stacked, err := e.reg.Open("Base", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := stacked.Claim("errinject"); err != nil {
		t.Fatal(err)
	}
	if err := stacked.Claim("other"); !errors.Is(err, bdev.ErrClaimed) {
		t.Fatalf("second claim: %v", err)
	}
	if err := e.reg.Unregister("Base", nil); !errors.Is(err, bdev.ErrClaimed) {
		t.Fatalf("unregistering a claimed bdev: %v", err)
	}
	stacked.Close()

	var events atomic.Int32
	var user *bdev.Desc
	user, err = e.reg.Open("Base", false, func(ev bdev.EventType, b *bdev.Bdev) {
		if ev == bdev.EventRemove {
			events.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var removed atomic.Bool
	if err := e.reg.Unregister("Base", func(error) { removed.Store(true) }); err != nil {
		t.Fatal(err)
	}
	if events.Load() != 1 {
		t.Fatal("open descriptor got no remove event")
	}
	if removed.Load() {
		t.Fatal("device destroyed while a descriptor is open")
	}
	if _, err := e.reg.Open("Base", false, nil); !errors.Is(err, bdev.ErrNotFound) {
		t.Fatalf("open during removal: %v", err)
	}
	user.Close()
	if !removed.Load() {
		t.Fatal("device not destroyed after the last close")
	}
	if err := e.reg.Unregister("Base", nil); !errors.Is(err, bdev.ErrNotFound) {
		t.Fatalf("second unregister: %v", err)
	}
}

func TestDuplicateName(t *testing.T) {
	e := newEnv(t)
	e.malloc(t, "M0", 16)
	d, _ := malloc.New(malloc.Options{Name: "M0", BlockSize: 512, NumBlocks: 16, Memory: hugemem.SmallPages})
	if _, err := e.reg.Register(d); !errors.Is(err, bdev.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	d.Destroy()
}

// runningEnv runs the reactor for real, for APIs that visit reactors with
// messages (stats, histograms, QoS).
func runningEnv(t *testing.T) *env {
	e := newEnv(t)
	done := make(chan struct{})
	go func() { e.r.Run(); close(done) }()
	t.Cleanup(func() { e.r.Stop(); <-done })
	return e
}

// ioLoad submits n IOs of typ from the reactor, qd at a time, and waits.
func ioLoad(t *testing.T, e *env, name string, typ bdev.IOType, n, qd int) time.Duration {
	var ch *bdev.IOChannel
	reactor.Call(e.r, func() { _, ch = e.channel(t, name) })
	buf := make([]byte, 4096)
	done := make(chan struct{})
	start := time.Now()
	reactor.Call(e.r, func() {
		submitted, completed := 0, 0
		var cb bdev.CompletionFunc
		submit := func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks = typ, uint64(submitted%100)*8, 8
			if typ == bdev.IORead || typ == bdev.IOWrite {
				io.Iovs = append(io.Iovs[:0], buf)
			}
			submitted++
			ch.Submit(io, cb)
		}
		cb = func(io *bdev.IO) {
			completed++
			if completed == n {
				close(done)
			} else if submitted < n {
				submit()
			}
		}
		for i := 0; i < qd && submitted < n; i++ {
			submit()
		}
	})
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("IO load did not finish")
	}
	return time.Since(start)
}

func TestIOStatAndResetModes(t *testing.T) {
	e := runningEnv(t)
	e.malloc(t, "M0", 1024)
	ioLoad(t, e, "M0", bdev.IORead, 30, 4)
	ioLoad(t, e, "M0", bdev.IOWrite, 20, 4)
	b, _ := e.reg.Get("M0")
	st, per := b.Stats(bdev.ResetMaxMin)
	if st.NumReadOps != 30 || st.BytesRead != 30*4096 || st.NumWriteOps != 20 || st.BytesWritten != 20*4096 {
		t.Fatalf("stats %+v", st)
	}
	if st.MaxReadLatency == 0 || st.MinReadLat > st.MaxReadLatency {
		t.Fatalf("latencies max %d min %d", st.MaxReadLatency, st.MinReadLat)
	}
	if len(per) != 1 || per[0].Stat.NumReadOps != 30 {
		t.Fatalf("per-channel %+v", per)
	}
	st, _ = b.Stats(bdev.ResetAll)
	if st.NumReadOps != 30 || st.MaxReadLatency != 0 {
		t.Fatalf("after maxmin reset: ops %d max %d", st.NumReadOps, st.MaxReadLatency)
	}
	st, _ = b.Stats(bdev.ResetNone)
	if st.NumReadOps != 0 || st.NumWriteOps != 0 {
		t.Fatalf("after full reset: %+v", st)
	}
	kv := st.JSONFields()
	if kv[0].Key != "bytes_read" || kv[10].Key != "min_read_latency_ticks" {
		t.Fatalf("key order %v %v", kv[0].Key, kv[10].Key)
	}
}

func TestHistogramEncodings(t *testing.T) {
	e := runningEnv(t)
	e.malloc(t, "M0", 1024)
	b, _ := e.reg.Get("M0")
	s, ok := bdev.NewHistogramSettings(-1, bdev.DefaultHistGranularity, bdev.DefaultHistMinNs, bdev.DefaultHistMaxNs)
	if !ok {
		t.Fatal("default settings rejected")
	}
	b.EnableHistogram(s)
	ioLoad(t, e, "M0", bdev.IORead, 300, 8)
	ioLoad(t, e, "M0", bdev.IOWrite, 200, 8)
	h := b.Histogram()
	if h == nil {
		t.Fatal("no histogram")
	}
	if n := h.ByType[bdev.IORead].TotalCount(); n != 300 {
		t.Fatalf("read hdr count %d", n)
	}
	if n := h.Merged().TotalCount(); n != 500 {
		t.Fatalf("merged count %d", n)
	}
	enc := h.SPDKEncoding()
	raw, err := base64.StdEncoding.DecodeString(enc[0].Value.(string))
	if err != nil {
		t.Fatal(err)
	}
	minR, maxR := enc[2].Value.(uint32), enc[3].Value.(uint32)
	if len(raw) != 8*(1<<7)*int(maxR-minR+1) {
		t.Fatalf("raw %d bytes for ranges %d..%d", len(raw), minR, maxR)
	}
	var total uint64
	for i := 0; i < len(raw); i += 8 {
		total += binary.LittleEndian.Uint64(raw[i:])
	}
	if total != 500 {
		t.Fatalf("SPDK histogram holds %d values, want 500", total)
	}
	b.EnableHistogram(nil)
	if b.Histogram() != nil {
		t.Fatal("histogram still on")
	}
}

// TestHistogramOutlivesChannel: IO of a channel that was closed still
// counts in the bdev's histogram, until the settings change.
func TestHistogramOutlivesChannel(t *testing.T) {
	e := runningEnv(t)
	e.malloc(t, "M0", 1024)
	b, _ := e.reg.Get("M0")
	s, _ := bdev.NewHistogramSettings(-1, bdev.DefaultHistGranularity, bdev.DefaultHistMinNs, bdev.DefaultHistMaxNs)
	b.EnableHistogram(s)
	buf := make([]byte, 4096)
	var desc *bdev.Desc
	var ch *bdev.IOChannel
	done := make(chan struct{})
	reactor.Call(e.r, func() {
		desc, ch = e.channel(t, "M0")
		n := 0
		for i := 0; i < 10; i++ {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, uint64(i)*8, 8, [][]byte{buf}
			ch.Submit(io, func(io *bdev.IO) {
				if n++; n == 10 {
					close(done)
				}
			})
		}
	})
	<-done
	reactor.Call(e.r, func() {
		ch.PutChannel()
		desc.Close()
	})
	h := b.Histogram()
	if h == nil || h.ByType[bdev.IORead] == nil || h.ByType[bdev.IORead].TotalCount() != 10 {
		t.Fatalf("histogram after the channel closed: %+v", h)
	}
	ioLoad(t, e, "M0", bdev.IORead, 5, 1) // a new channel adds to it
	if n := b.Histogram().Merged().TotalCount(); n != 15 {
		t.Fatalf("%d values after 10 on a closed channel and 5 on a new one, want 15", n)
	}
	s2, _ := bdev.NewHistogramSettings(-1, bdev.DefaultHistGranularity, bdev.DefaultHistMinNs, bdev.DefaultHistMaxNs)
	b.EnableHistogram(s2)
	if n := b.Histogram().Merged().TotalCount(); n != 0 {
		t.Fatalf("%d values right after re-enabling, want 0", n)
	}
}

func TestQoSLimitsIOPS(t *testing.T) {
	e := runningEnv(t)
	nd, _ := null.New(null.Options{Name: "N0", BlockSize: 512, NumBlocks: 1 << 20})
	e.reg.Register(nd)
	b, _ := e.reg.Get("N0")
	if err := b.SetQoS(bdev.QoSLimits{RWIOPerSec: 1500}); err == nil {
		t.Fatal("IOPS limit not a multiple of 1000 accepted")
	}
	unlimited := ioLoad(t, e, "N0", bdev.IORead, 2000, 16)
	if err := b.SetQoS(bdev.QoSLimits{RWIOPerSec: 20000}); err != nil {
		t.Fatal(err)
	}
	limited := ioLoad(t, e, "N0", bdev.IORead, 2000, 16)
	// 2000 IOs at 20k IOPS need about 100 ms; allow the first slice's burst.
	if limited < 80*time.Millisecond {
		t.Fatalf("2000 IOs took %v under a 20000 IOPS limit (unlimited: %v)", limited, unlimited)
	}
	if err := b.SetQoS(bdev.QoSLimits{}); err != nil {
		t.Fatal(err)
	}
	if again := ioLoad(t, e, "N0", bdev.IORead, 2000, 16); again > limited/2 {
		t.Fatalf("after removing the limit 2000 IOs still took %v", again)
	}
	if err := b.SetQoS(bdev.QoSLimits{RMBytesPerSec: 10}); err != nil {
		t.Fatal(err)
	}
	// 100 x 4 KiB reads = 400 KiB at 10 MiB/s: about 39 ms.
	if d := ioLoad(t, e, "N0", bdev.IORead, 100, 4); d < 30*time.Millisecond {
		t.Fatalf("byte limit not enforced: %v", d)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(uint8(0), uint64(0), uint64(1), uint16(512), uint16(0))
	f.Add(uint8(1), uint64(15), uint64(2), uint16(1000), uint16(24))
	f.Add(uint8(3), ^uint64(0), uint64(2), uint16(0), uint16(0))
	e := newEnv(f)
	e.malloc(f, "M0", 16)
	_, ch := e.channel(f, "M0")
	mem := make([]byte, 65536)
	f.Fuzz(func(t *testing.T, typ uint8, off, n uint64, l1, l2 uint16) {
		io := ch.Alloc()
		kind := bdev.IOType(typ % 8)
		io.Type, io.OffsetBlocks, io.NumBlocks = kind, off, n
		io.Iovs = [][]byte{mem[:l1%32768], mem[32768 : 32768+int(l2%32768)]}
		err := ch.Validate(io)
		if err == nil && kind != bdev.IOReset {
			if off+n > 16 || off+n < off {
				t.Fatalf("accepted out-of-range IO off %d n %d", off, n)
			}
		}
		ch.Release(io)
		st := e.do(t, ch, kind, off, n, mem[:l1%32768], mem[32768:32768+int(l2%32768)])
		if (err == nil) != (st != bdev.StatusInvalid) {
			t.Fatalf("Validate %v but status %v", err, st)
		}
	})
}
