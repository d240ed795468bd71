package errinject

import (
	"bytes"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// env is one reactor stepped by the test with Poll, a registry with the
// error module, and a malloc base "M0".
type env struct {
	t    testing.TB
	r    *reactor.Reactor
	reg  *bdev.Registry
	mod  *Module
	base *malloc.Disk
}

func newEnv(t testing.TB) *env {
	t.Helper()
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	e := &env{t: t, r: r, reg: reg, mod: moduleFor(reg)}
	e.base = e.malloc("M0", 256)
	return e
}

func (e *env) malloc(name string, blocks uint64) *malloc.Disk {
	e.t.Helper()
	d, err := malloc.New(malloc.Options{Name: name, BlockSize: 512, NumBlocks: blocks, Memory: hugemem.SmallPages})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reg.Register(d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// create makes EE_M0 and returns it.
func (e *env) create() *Disk {
	e.t.Helper()
	if err := e.mod.Create("M0", bdev.UUID{}); err != nil {
		e.t.Fatal(err)
	}
	d, err := e.mod.Lookup("EE_M0")
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) channel(name string) (*bdev.Desc, *bdev.IOChannel) {
	e.t.Helper()
	desc, err := e.reg.Open(name, true, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ch, err := desc.GetChannel(e.r)
	if err != nil {
		e.t.Fatal(err)
	}
	return desc, ch
}

// submit starts an IO whose status lands in *st.
func (e *env) submit(ch *bdev.IOChannel, st *bdev.Status, typ bdev.IOType, off, n uint64, iovs ...[]byte) {
	io := ch.Alloc()
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, off, n, iovs
	*st = bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { *st = io.Status })
}

func (e *env) poll(n int) {
	for i := 0; i < n; i++ {
		e.r.Poll(reactor.Now())
	}
}

func (e *env) do(ch *bdev.IOChannel, typ bdev.IOType, off, n uint64, iovs ...[]byte) bdev.Status {
	var st bdev.Status
	e.submit(ch, &st, typ, off, n, iovs...)
	for i := 0; i < 100 && st == bdev.StatusPending; i++ {
		e.r.Poll(reactor.Now())
	}
	return st
}

func TestForwarding(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	if d.Info().NumBlocks != 256 || d.Info().BlockSize != 512 || d.Info().ProductName != "Error Injection Disk" {
		t.Fatalf("info %+v", d.Info())
	}
	if b, _ := e.reg.Get("M0"); b.Claimed() != ModuleName {
		t.Fatalf("base claimed by %q", b.Claimed())
	}
	_, ch := e.channel("EE_M0")
	w := make([]byte, 1024)
	for i := range w {
		w[i] = byte(i)
	}
	if st := e.do(ch, bdev.IOWrite, 3, 2, w[:100], w[100:]); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	if !bytes.Equal(e.base.Memory()[3*512:5*512], w) {
		t.Fatal("write did not reach the base")
	}
	r := make([]byte, 1024)
	if st := e.do(ch, bdev.IORead, 3, 2, r); st != bdev.StatusSuccess || !bytes.Equal(r, w) {
		t.Fatalf("read: %v", st)
	}
	for _, typ := range []bdev.IOType{bdev.IOFlush, bdev.IOUnmap, bdev.IOWriteZeroes, bdev.IOReset} {
		if st := e.do(ch, typ, 3, 1); st != bdev.StatusSuccess {
			t.Errorf("%v: %v", typ, st)
		}
	}
	if !bytes.Equal(e.base.Memory()[3*512:4*512], make([]byte, 512)) {
		t.Fatal("unmap/write_zeroes did not reach the base")
	}
}

func TestFailureInjection(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.channel("EE_M0")
	buf := make([]byte, 512)
	if err := d.Inject(bdev.IORead, Injection{Type: ErrorFailure, Num: 2}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bdev.Status{bdev.StatusFailed, bdev.StatusFailed, bdev.StatusSuccess} {
		if st := e.do(ch, bdev.IORead, 0, 1, buf); st != want {
			t.Fatalf("read %d: %v, want %v", i, st, want)
		}
	}
	if st := e.do(ch, bdev.IOWrite, 0, 1, buf); st != bdev.StatusSuccess {
		t.Fatal("write hit by a read injection")
	}

	if err := d.InjectAll(Injection{Type: ErrorNVMeFailure, Num: 1, NVMeSC: 2}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []bdev.IOType{bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOUnmap} {
		var iovs [][]byte
		if typ == bdev.IORead || typ == bdev.IOWrite {
			iovs = [][]byte{buf}
		}
		if st := e.do(ch, typ, 0, 1, iovs...); st != bdev.StatusFailed {
			t.Errorf("all: %v got %v", typ, st)
		}
	}
	// write_zeroes is not injectable, as in SPDK.
	if st := e.do(ch, bdev.IOWriteZeroes, 0, 1); st != bdev.StatusSuccess {
		t.Errorf("write_zeroes: %v", st)
	}
	d.InjectAll(Injection{Type: ErrorFailure, Num: 5})
	d.Clear()
	if st := e.do(ch, bdev.IORead, 0, 1, buf); st != bdev.StatusSuccess || d.Remaining(bdev.IORead) != 0 {
		t.Fatalf("after clear: %v remaining %d", st, d.Remaining(bdev.IORead))
	}
	if err := d.Inject(bdev.IOWriteZeroes, Injection{Type: ErrorFailure, Num: 1}); !errors.Is(err, ErrBadInjection) {
		t.Fatalf("write_zeroes injection: %v", err)
	}
	if err := d.Inject(bdev.IORead, Injection{Type: ErrorCorruptData, Num: 1}); !errors.Is(err, ErrBadInjection) {
		t.Fatalf("corrupt_data with value 0: %v", err)
	}
}

// nomem costs retries, not failures: the generic layer resubmits.
func TestNoMemInjection(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.channel("EE_M0")
	d.Inject(bdev.IOWrite, Injection{Type: ErrorNoMem, Num: 3})
	buf := make([]byte, 512)
	if st := e.do(ch, bdev.IOWrite, 1, 1, buf); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	if d.Remaining(bdev.IOWrite) != 0 {
		t.Fatalf("%d nomem hits left: the IO was not retried through them", d.Remaining(bdev.IOWrite))
	}
}

func TestPendingResumeAndReset(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.channel("EE_M0")
	buf := make([]byte, 512)
	d.Inject(bdev.IORead, Injection{Type: ErrorPending, Num: 2})
	var a, b bdev.Status
	e.submit(ch, &a, bdev.IORead, 0, 1, buf)
	e.submit(ch, &b, bdev.IORead, 1, 1, buf)
	e.poll(50)
	if a != bdev.StatusPending || b != bdev.StatusPending {
		t.Fatalf("held IOs completed: %v %v", a, b)
	}
	d.ResumePending() // a message to the reactor
	e.poll(10)
	if a != bdev.StatusSuccess || b != bdev.StatusSuccess {
		t.Fatalf("after resume: %v %v", a, b)
	}

	d.Inject(bdev.IOWrite, Injection{Type: ErrorPending, Num: 1})
	e.submit(ch, &a, bdev.IOWrite, 0, 1, buf)
	e.poll(10)
	if st := e.do(ch, bdev.IOReset, 0, 0); st != bdev.StatusSuccess {
		t.Fatalf("reset: %v", st)
	}
	if a != bdev.StatusAborted {
		t.Fatalf("held write after reset: %v", a)
	}
}

func TestCorruptData(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.channel("EE_M0")
	w := bytes.Repeat([]byte{0x11}, 1024)
	d.Inject(bdev.IOWrite, Injection{Type: ErrorCorruptData, Num: 1, CorruptOffset: 700, CorruptValue: 0xff})
	if st := e.do(ch, bdev.IOWrite, 10, 2, w[:512], w[512:]); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	mem := e.base.Memory()[10*512 : 12*512]
	if mem[700] != 0xee || bytes.Count(mem, []byte{0x11}) != 1023 {
		t.Fatalf("base got %#x at 700, %d intact bytes", mem[700], bytes.Count(mem, []byte{0x11}))
	}
	if w[700] != 0xee {
		t.Fatal("the write's payload is corrupted in place (as SPDK does), but the buffer is intact")
	}

	// A read: the base stays intact, the data returned is corrupted.
	copy(mem, bytes.Repeat([]byte{0x22}, 1024))
	d.Inject(bdev.IORead, Injection{Type: ErrorCorruptData, Num: 1, CorruptOffset: 5, CorruptValue: 0x01})
	r := make([]byte, 1024)
	if st := e.do(ch, bdev.IORead, 10, 2, r[:3], r[3:]); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	if r[5] != 0x23 || bytes.Count(r, []byte{0x22}) != 1023 || mem[5] != 0x22 {
		t.Fatalf("read corruption: got %#x, base %#x", r[5], mem[5])
	}
	// Hits are consumed: the next read is clean.
	if e.do(ch, bdev.IORead, 10, 2, r); r[5] != 0x22 {
		t.Fatal("second read corrupted")
	}
}

func TestQueueDepthTrigger(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.channel("EE_M0")
	d.Inject(bdev.IORead, Injection{Type: ErrorFailure, Num: 1, QueueDepth: 2})
	buf := make([]byte, 512)
	if st := e.do(ch, bdev.IORead, 0, 1, buf); st != bdev.StatusSuccess {
		t.Fatal("hit at queue depth 0")
	}
	// Three reads before any completes: in flight 0, 1, 2 when submitted.
	var st [3]bdev.Status
	for i := range st {
		e.submit(ch, &st[i], bdev.IORead, uint64(i), 1, buf)
	}
	e.poll(10)
	if st[0] != bdev.StatusSuccess || st[1] != bdev.StatusSuccess || st[2] != bdev.StatusFailed {
		t.Fatalf("statuses %v", st)
	}
}

func TestClaimAndDelete(t *testing.T) {
	e := newEnv(t)
	e.create()
	if err := e.reg.Unregister("M0", nil); !errors.Is(err, bdev.ErrClaimed) {
		t.Fatalf("unregistering the claimed base: %v", err)
	}
	if err := e.mod.Create("M0", bdev.UUID{}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("second error bdev on M0: %v", err)
	}
	removed := false
	if err := e.reg.Unregister("EE_M0", func(error) { removed = true }); err != nil || !removed {
		t.Fatalf("unregister EE_M0: %v removed=%v", err, removed)
	}
	if b, _ := e.reg.Get("M0"); b.Claimed() != "" {
		t.Fatal("claim not released")
	}
	// The configuration went with it: the base may get a new error bdev.
	e.create()
}

// bdev_error_create before the base exists: the error bdev appears when
// the base is registered.
func TestExamineCreatesLater(t *testing.T) {
	e := newEnv(t)
	if err := e.mod.Create("Later", bdev.UUID{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Get("EE_Later"); err == nil {
		t.Fatal("created without a base")
	}
	e.malloc("Later", 16)
	if _, err := e.mod.Lookup("EE_Later"); err != nil {
		t.Fatalf("not created on examine: %v", err)
	}
}

func TestBaseRemovalUnregisters(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	d.onBaseEvent(bdev.EventRemove, nil) // what the registry sends on hot removal
	if _, err := e.reg.Get("EE_M0"); err == nil {
		t.Fatal("error bdev survived its base's removal")
	}
}

func TestZeroAllocsForwarding(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.channel("EE_M0")
	d.Inject(bdev.IORead, Injection{Type: ErrorCorruptData, Num: 1 << 30, CorruptOffset: 3, CorruptValue: 1})
	iovs := [][]byte{make([]byte, 4096)}
	for _, typ := range []bdev.IOType{bdev.IORead, bdev.IOWrite} {
		done := 0
		cb := func(*bdev.IO) { done++ }
		allocs := testing.AllocsPerRun(1000, func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, 8, 8, iovs
			ch.Submit(io, cb)
			for ch.Outstanding() > 0 {
				e.r.Poll(0)
			}
		})
		if allocs != 0 || done < 1000 {
			t.Errorf("%v: %.2f allocations per IO, %d done", typ, allocs, done)
		}
	}
}

// Two running reactors take hits from one injection: exactly Num IOs fail
// in total.
func TestInjectionAcrossReactors(t *testing.T) {
	var rs []*reactor.Reactor
	for i := 0; i < 2; i++ {
		r, err := reactor.New(i, reactor.Options{Core: -1, Mode: reactor.ModePoll})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	reg := bdev.NewRegistry(bdev.Options{Reactors: rs})
	m := moduleFor(reg)
	md, _ := malloc.New(malloc.Options{Name: "M0", BlockSize: 512, NumBlocks: 64, Memory: hugemem.SmallPages})
	reg.Register(md)
	if err := m.Create("M0", bdev.UUID{}); err != nil {
		t.Fatal(err)
	}
	d, _ := m.Lookup("EE_M0")
	d.Inject(bdev.IORead, Injection{Type: ErrorFailure, Num: 300})
	desc, _ := reg.Open("EE_M0", true, nil)
	for _, r := range rs {
		r := r
		done := make(chan struct{})
		go func() { r.Run(); close(done) }()
		t.Cleanup(func() { r.Stop(); <-done; r.Close() })
	}
	var failed, finished atomic.Int64
	const perReactor = 1000
	for _, r := range rs {
		r := r
		reactor.Send(r, func(any) {
			ch, err := desc.GetChannel(r)
			if err != nil {
				t.Error(err)
				return
			}
			buf := [][]byte{make([]byte, 512)}
			var cb bdev.CompletionFunc
			n := 0
			next := func() {
				io := ch.Alloc()
				io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, uint64(n%64), 1, buf
				n++
				ch.Submit(io, cb)
			}
			done := 0
			cb = func(io *bdev.IO) {
				if io.Status == bdev.StatusFailed {
					failed.Add(1)
				}
				finished.Add(1)
				done++
				if n < perReactor {
					next()
				} else if done == perReactor {
					ch.PutChannel()
				}
			}
			for i := 0; i < 4; i++ {
				next()
			}
		}, nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for finished.Load() < 2*perReactor && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if finished.Load() != 2*perReactor || failed.Load() != 300 {
		t.Fatalf("finished %d, failed %d; want %d and 300", finished.Load(), failed.Load(), 2*perReactor)
	}
}
