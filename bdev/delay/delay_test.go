package delay

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
// a clock of the test's own, the delay module and a malloc base "M0".
type env struct {
	*bdevtest.Env
	mod  *Module
	base *malloc.Disk
	now  reactor.Ticks
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{Env: bdevtest.New(t), now: reactor.Now()}
	e.mod = moduleFor(e.Reg)
	e.base = e.Malloc("M0", 512, 1024)
	return e
}

func (e *env) create(o Options) *Disk {
	e.T.Helper()
	if o.Name == "" {
		o.Name = "D0"
	}
	o.BaseName = "M0"
	if err := e.mod.Create(o); err != nil {
		e.T.Fatal(err)
	}
	d, err := e.mod.Lookup(o.Name)
	if err != nil {
		e.T.Fatal(err)
	}
	return d
}

// pollAt runs a few iterations at time e.now+d (the test's clock only
// moves forward).
func (e *env) pollAt(d time.Duration) {
	at := e.now + reactor.TicksFromDuration(d)
	for i := 0; i < 3; i++ {
		e.R.Poll(at)
	}
}

const us = time.Microsecond

func TestHoldsUntilDeadline(t *testing.T) {
	e := newEnv(t)
	e.create(Options{AvgReadUs: 100, P99ReadUs: 100, AvgWriteUs: 300, P99WriteUs: 300})
	_, ch := e.Open("D0")
	w := bytes.Repeat([]byte{0x5c}, 1024)
	var ws, rs, fs bdev.Status
	bdevtest.Submit(ch, &ws, bdev.IOWrite, 4, 2, w)
	e.pollAt(0) // the base completes; the write is held from now on
	if ws != bdev.StatusPending {
		t.Fatal("write completed without delay")
	}
	if !bytes.Equal(e.base.Memory()[4*512:6*512], w) {
		t.Fatal("the write reached the base only after the delay; it should go at once")
	}
	e.pollAt(299 * us)
	if ws != bdev.StatusPending {
		t.Fatal("write released before 300 µs")
	}
	e.pollAt(301 * us)
	if ws != bdev.StatusSuccess {
		t.Fatalf("write after 301 µs: %v", ws)
	}

	e.now += reactor.TicksFromDuration(time.Millisecond)
	r := make([]byte, 1024)
	bdevtest.Submit(ch, &rs, bdev.IORead, 4, 2, r)
	bdevtest.Submit(ch, &fs, bdev.IOFlush, 0, 1)
	e.pollAt(0)
	if fs != bdev.StatusSuccess {
		t.Fatalf("flush is not delayed: %v", fs)
	}
	e.pollAt(99 * us)
	if rs != bdev.StatusPending {
		t.Fatal("read released early")
	}
	e.pollAt(101 * us)
	if rs != bdev.StatusSuccess || !bytes.Equal(r, w) {
		t.Fatalf("read: %v", rs)
	}
}

// One read in a hundred takes the p99 latency.
func TestP99Share(t *testing.T) {
	e := newEnv(t)
	e.create(Options{AvgReadUs: 10, P99ReadUs: 10_000_000, AvgWriteUs: 10, P99WriteUs: 10})
	_, ch := e.Open("D0")
	buf := make([]byte, 512)
	const rounds, perRound = 10, 500
	st := make([]bdev.Status, perRound)
	slow := 0
	for round := 0; round < rounds; round++ {
		for i := range st {
			bdevtest.Submit(ch, &st[i], bdev.IORead, uint64(i), 1, buf)
		}
		e.pollAt(0)
		e.pollAt(20 * us)
		for i := range st {
			if st[i] == bdev.StatusPending {
				slow++
			}
		}
		e.pollAt(11 * time.Second) // release the slow ones
		for i := range st {
			if st[i] != bdev.StatusSuccess {
				t.Fatalf("read %d: %v", i, st[i])
			}
		}
		e.now += reactor.TicksFromDuration(12 * time.Second)
	}
	t.Logf("%d of %d reads took the p99 latency", slow, rounds*perRound)
	// 5000 draws at p=1%: mean 50, standard deviation about 7.
	if slow < 20 || slow > 90 {
		t.Fatalf("%d of %d reads took the p99 latency", slow, rounds*perRound)
	}
}

func TestUpdateLatency(t *testing.T) {
	e := newEnv(t)
	d := e.create(Options{AvgReadUs: 1000, P99ReadUs: 1000, AvgWriteUs: 0, P99WriteUs: 0})
	_, ch := e.Open("D0")
	buf := make([]byte, 512)
	var a, b bdev.Status
	bdevtest.Submit(ch, &a, bdev.IORead, 0, 1, buf)
	e.pollAt(0)
	if err := d.SetLatency(AvgRead, 10); err != nil {
		t.Fatal(err)
	}
	d.SetLatency(P99Read, 10)
	bdevtest.Submit(ch, &b, bdev.IORead, 1, 1, buf)
	e.pollAt(50 * us)
	// b's deadline has passed but it waits behind a (SPDK's dam).
	if a != bdev.StatusPending || b != bdev.StatusPending {
		t.Fatalf("after 50 µs: %v %v", a, b)
	}
	e.pollAt(1001 * us)
	if a != bdev.StatusSuccess || b != bdev.StatusSuccess {
		t.Fatalf("after 1 ms: %v %v", a, b)
	}
	if d.LatencyUs(AvgRead) != 10 {
		t.Fatal("latency not stored")
	}
	if err := d.SetLatency(AvgRead, maxLatencyUs+1); err == nil {
		t.Fatal("absurd latency accepted")
	}
}

func TestResetAbortsHeld(t *testing.T) {
	e := newEnv(t)
	e.create(Options{AvgReadUs: 1000, P99ReadUs: 1000, AvgWriteUs: 1000, P99WriteUs: 1000})
	_, ch := e.Open("D0")
	buf := make([]byte, 512)
	var a, b, r bdev.Status
	bdevtest.Submit(ch, &a, bdev.IORead, 0, 1, buf)
	bdevtest.Submit(ch, &b, bdev.IOWrite, 1, 1, buf)
	e.pollAt(0)
	bdevtest.Submit(ch, &r, bdev.IOReset, 0, 0)
	e.pollAt(1 * us)
	if a != bdev.StatusAborted || b != bdev.StatusAborted || r != bdev.StatusSuccess {
		t.Fatalf("read %v write %v reset %v", a, b, r)
	}
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t)
	for what, tc := range map[string]struct {
		o    Options
		want error
	}{
		"p99 below avg read":  {Options{Name: "x", BaseName: "M0", AvgReadUs: 10, P99ReadUs: 5}, syscall.EINVAL},
		"p99 below avg write": {Options{Name: "x", BaseName: "M0", AvgWriteUs: 10, P99WriteUs: 5}, syscall.EINVAL},
		"no name":             {Options{BaseName: "M0"}, syscall.EINVAL},
		"name taken":          {Options{Name: "M0", BaseName: "M0"}, syscall.EEXIST},
	} {
		if err := e.mod.Create(tc.o); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", what, err, tc.want)
		}
	}
	e.create(Options{})
	if err := e.mod.Create(Options{Name: "D1", BaseName: "M0"}); !errors.Is(err, bdev.ErrClaimed) {
		t.Errorf("second delay on a claimed base: %v", err)
	}
	// A missing base defers creation to examine.
	if err := e.mod.Create(Options{Name: "D2", BaseName: "Later"}); err != nil {
		t.Fatal(err)
	}
	if err := e.mod.Create(Options{Name: "D2", BaseName: "Later"}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate deferred: %v", err)
	}
	md, _ := malloc.New(malloc.Options{Name: "Later", BlockSize: 4096, NumBlocks: 8, Memory: hugemem.SmallPages})
	e.Reg.Register(md)
	d, err := e.mod.Lookup("D2")
	if err != nil || d.Info().BlockSize != 4096 {
		t.Fatalf("deferred delay bdev: %v", err)
	}
	// Deleting forgets the association and releases the claim.
	if err := e.Reg.Unregister("D2", nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := e.Reg.Get("Later"); b.Claimed() != "" {
		t.Fatal("claim kept")
	}
	if err := e.mod.Create(Options{Name: "D2", BaseName: "Later"}); err != nil {
		t.Fatalf("re-create after delete: %v", err)
	}
}

func TestZeroAllocsForwarding(t *testing.T) {
	e := newEnv(t)
	e.create(Options{})
	_, ch := e.Open("D0")
	iovs := [][]byte{make([]byte, 4096)}
	for _, typ := range []bdev.IOType{bdev.IORead, bdev.IOWrite, bdev.IOFlush} {
		done := 0
		cb := func(*bdev.IO) { done++ }
		tick := e.now
		allocs := testing.AllocsPerRun(1000, func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, 8, 8, iovs
			ch.Submit(io, cb)
			for ch.Outstanding() > 0 {
				tick += 1000
				e.R.Poll(tick)
			}
		})
		e.now = tick
		if allocs != 0 || done < 1000 {
			t.Errorf("%v: %.2f allocations per IO, %d done", typ, allocs, done)
		}
	}
}

// On a running adaptive reactor a 20 ms delay is met within a few
// milliseconds, and the reactor sleeps while it waits.
func TestAdaptiveReactorSleepsAndWakes(t *testing.T) {
	r, err := reactor.New(0, reactor.Options{Core: -1, SpinTime: 100 * us})
	if err != nil {
		t.Fatal(err)
	}
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	m := moduleFor(reg)
	md, _ := malloc.New(malloc.Options{Name: "M0", BlockSize: 512, NumBlocks: 64, Memory: hugemem.SmallPages})
	reg.Register(md)
	if err := m.Create(Options{Name: "D0", BaseName: "M0", AvgReadUs: 20_000, P99ReadUs: 20_000}); err != nil {
		t.Fatal(err)
	}
	desc, _ := reg.Open("D0", true, nil)
	done := make(chan struct{})
	go func() { r.Run(); close(done) }()
	t.Cleanup(func() { r.Stop(); <-done; r.Close() })
	var ch *bdev.IOChannel
	reactor.Call(r, func() { ch, err = desc.GetChannel(r) })
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	var sleeps0 uint64
	reactor.Call(r, func() { st, _ := r.Snapshot(); sleeps0 = st.Sleeps })

	var finished atomic.Int64
	start := time.Now()
	reactor.Send(r, func(any) {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks = bdev.IORead, 0, 1
		io.Iovs = append(io.Iovs[:0], make([]byte, 512))
		ch.Submit(io, func(io *bdev.IO) {
			if io.Status == bdev.StatusSuccess {
				finished.Store(int64(time.Since(start)))
			}
		})
	}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for finished.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	took := time.Duration(finished.Load())
	// The reactor clock's rate is calibrated against the wall clock over
	// 20 ms at start-up; allow it a few per mille of error.
	if took < 19*time.Millisecond || took > 200*time.Millisecond {
		t.Fatalf("a 20 ms read took %v", took)
	}
	var sleeps1 uint64
	reactor.Call(r, func() { st, _ := r.Snapshot(); sleeps1 = st.Sleeps })
	t.Logf("read took %v; the reactor slept %d times meanwhile", took, sleeps1-sleeps0)
	if sleeps1-sleeps0 < 3 {
		t.Fatalf("the reactor slept %d times while the read was held: it spun", sleeps1-sleeps0)
	}
	reactor.Call(r, ch.PutChannel)
	desc.Close()
}
