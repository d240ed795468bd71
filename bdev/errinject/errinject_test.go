package errinject

import (
	"bytes"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/internal/bdevtest"
	"hyperpath/bdev/malloc"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// env is a bdevtest.Env (one reactor stepped by the test with Poll) with
// the error module and a malloc base "M0".
type env struct {
	*bdevtest.Env
	mod  *Module
	base *malloc.Disk
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{Env: bdevtest.New(t)}
	e.mod = moduleFor(e.Reg)
	e.base = e.Malloc("M0", 512, 256)
	return e
}

// create makes EE_M0 and returns it.
func (e *env) create() *Disk {
	e.T.Helper()
	if err := e.mod.Create("M0", bdev.UUID{}); err != nil {
		e.T.Fatal(err)
	}
	d, err := e.mod.Lookup("EE_M0")
	if err != nil {
		e.T.Fatal(err)
	}
	return d
}

func TestForwarding(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	if d.Info().NumBlocks != 256 || d.Info().BlockSize != 512 || d.Info().ProductName != "Error Injection Disk" {
		t.Fatalf("info %+v", d.Info())
	}
	if b, _ := e.Reg.Get("M0"); b.Claimed() != ModuleName {
		t.Fatalf("base claimed by %q", b.Claimed())
	}
	_, ch := e.Open("EE_M0")
	w := make([]byte, 1024)
	for i := range w {
		w[i] = byte(i)
	}
	if st := e.Do(ch, bdev.IOWrite, 3, 2, w[:100], w[100:]); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	if !bytes.Equal(e.base.Memory()[3*512:5*512], w) {
		t.Fatal("write did not reach the base")
	}
	r := make([]byte, 1024)
	if st := e.Do(ch, bdev.IORead, 3, 2, r); st != bdev.StatusSuccess || !bytes.Equal(r, w) {
		t.Fatalf("read: %v", st)
	}
	for _, typ := range []bdev.IOType{bdev.IOFlush, bdev.IOUnmap, bdev.IOWriteZeroes, bdev.IOReset} {
		if st := e.Do(ch, typ, 3, 1); st != bdev.StatusSuccess {
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
	_, ch := e.Open("EE_M0")
	buf := make([]byte, 512)
	if err := d.Inject(bdev.IORead, Injection{Type: ErrorFailure, Num: 2}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bdev.Status{bdev.StatusFailed, bdev.StatusFailed, bdev.StatusSuccess} {
		if st := e.Do(ch, bdev.IORead, 0, 1, buf); st != want {
			t.Fatalf("read %d: %v, want %v", i, st, want)
		}
	}
	if st := e.Do(ch, bdev.IOWrite, 0, 1, buf); st != bdev.StatusSuccess {
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
		if st := e.Do(ch, typ, 0, 1, iovs...); st != bdev.StatusFailed {
			t.Errorf("all: %v got %v", typ, st)
		}
	}
	// write_zeroes is not injectable, as in SPDK.
	if st := e.Do(ch, bdev.IOWriteZeroes, 0, 1); st != bdev.StatusSuccess {
		t.Errorf("write_zeroes: %v", st)
	}
	d.InjectAll(Injection{Type: ErrorFailure, Num: 5})
	d.Clear()
	if st := e.Do(ch, bdev.IORead, 0, 1, buf); st != bdev.StatusSuccess || d.Remaining(bdev.IORead) != 0 {
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
	_, ch := e.Open("EE_M0")
	d.Inject(bdev.IOWrite, Injection{Type: ErrorNoMem, Num: 3})
	buf := make([]byte, 512)
	if st := e.Do(ch, bdev.IOWrite, 1, 1, buf); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	if d.Remaining(bdev.IOWrite) != 0 {
		t.Fatalf("%d nomem hits left: the IO was not retried through them", d.Remaining(bdev.IOWrite))
	}
}

func TestPendingResumeAndReset(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.Open("EE_M0")
	buf := make([]byte, 512)
	d.Inject(bdev.IORead, Injection{Type: ErrorPending, Num: 2})
	var a, b bdev.Status
	bdevtest.Submit(ch, &a, bdev.IORead, 0, 1, buf)
	bdevtest.Submit(ch, &b, bdev.IORead, 1, 1, buf)
	e.Poll(50)
	if a != bdev.StatusPending || b != bdev.StatusPending {
		t.Fatalf("held IOs completed: %v %v", a, b)
	}
	d.ResumePending() // a message to the reactor
	e.Poll(10)
	if a != bdev.StatusSuccess || b != bdev.StatusSuccess {
		t.Fatalf("after resume: %v %v", a, b)
	}

	d.Inject(bdev.IOWrite, Injection{Type: ErrorPending, Num: 1})
	bdevtest.Submit(ch, &a, bdev.IOWrite, 0, 1, buf)
	e.Poll(10)
	if st := e.Do(ch, bdev.IOReset, 0, 0); st != bdev.StatusSuccess {
		t.Fatalf("reset: %v", st)
	}
	if a != bdev.StatusAborted {
		t.Fatalf("held write after reset: %v", a)
	}
}

func TestCorruptData(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.Open("EE_M0")
	w := bytes.Repeat([]byte{0x11}, 1024)
	d.Inject(bdev.IOWrite, Injection{Type: ErrorCorruptData, Num: 1, CorruptOffset: 700, CorruptValue: 0xff})
	if st := e.Do(ch, bdev.IOWrite, 10, 2, w[:512], w[512:]); st != bdev.StatusSuccess {
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
	if st := e.Do(ch, bdev.IORead, 10, 2, r[:3], r[3:]); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	if r[5] != 0x23 || bytes.Count(r, []byte{0x22}) != 1023 || mem[5] != 0x22 {
		t.Fatalf("read corruption: got %#x, base %#x", r[5], mem[5])
	}
	// Hits are consumed: the next read is clean.
	if e.Do(ch, bdev.IORead, 10, 2, r); r[5] != 0x22 {
		t.Fatal("second read corrupted")
	}
}

func TestQueueDepthTrigger(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.Open("EE_M0")
	d.Inject(bdev.IORead, Injection{Type: ErrorFailure, Num: 1, QueueDepth: 2})
	buf := make([]byte, 512)
	if st := e.Do(ch, bdev.IORead, 0, 1, buf); st != bdev.StatusSuccess {
		t.Fatal("hit at queue depth 0")
	}
	// Three reads before any completes: in flight 0, 1, 2 when submitted.
	var st [3]bdev.Status
	for i := range st {
		bdevtest.Submit(ch, &st[i], bdev.IORead, uint64(i), 1, buf)
	}
	e.Poll(10)
	if st[0] != bdev.StatusSuccess || st[1] != bdev.StatusSuccess || st[2] != bdev.StatusFailed {
		t.Fatalf("statuses %v", st)
	}
}

func TestClaimAndDelete(t *testing.T) {
	e := newEnv(t)
	e.create()
	if err := e.Reg.Unregister("M0", nil); !errors.Is(err, bdev.ErrClaimed) {
		t.Fatalf("unregistering the claimed base: %v", err)
	}
	if err := e.mod.Create("M0", bdev.UUID{}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("second error bdev on M0: %v", err)
	}
	removed := false
	if err := e.Reg.Unregister("EE_M0", func(error) { removed = true }); err != nil || !removed {
		t.Fatalf("unregister EE_M0: %v removed=%v", err, removed)
	}
	if b, _ := e.Reg.Get("M0"); b.Claimed() != "" {
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
	if _, err := e.Reg.Get("EE_Later"); err == nil {
		t.Fatal("created without a base")
	}
	e.Malloc("Later", 512, 16)
	if _, err := e.mod.Lookup("EE_Later"); err != nil {
		t.Fatalf("not created on examine: %v", err)
	}
}

func TestBaseRemovalUnregisters(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	d.onBaseEvent(bdev.EventRemove, nil) // what the registry sends on hot removal
	if _, err := e.Reg.Get("EE_M0"); err == nil {
		t.Fatal("error bdev survived its base's removal")
	}
}

func TestZeroAllocsForwarding(t *testing.T) {
	e := newEnv(t)
	d := e.create()
	_, ch := e.Open("EE_M0")
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
				e.R.Poll(0)
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
