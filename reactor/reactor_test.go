package reactor

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTestReactor(t *testing.T, o Options) *Reactor {
	t.Helper()
	o.Core = -1
	r, err := New(0, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestPollOrderMessagesActiveTimed(t *testing.T) {
	r := newTestReactor(t, Options{})
	var trace []string
	r.RegisterPoller("active", func(Ticks) Status { trace = append(trace, "active"); return Idle }, 0)
	period := TicksFromDuration(100 * time.Microsecond)
	r.RegisterPoller("timed", func(Ticks) Status { trace = append(trace, "timed"); return Busy }, 100)
	if err := Send(r, func(a any) { trace = append(trace, a.(string)) }, "msg"); err != nil {
		t.Fatal(err)
	}
	if s := r.Poll(0); s != Busy {
		t.Fatalf("iteration with a message reported %v", s)
	}
	if got := strings.Join(trace, ","); got != "msg,active" {
		t.Fatalf("first iteration ran %q", got)
	}
	trace = nil
	if s := r.Poll(period - 1); s != Idle {
		t.Fatal("idle iteration reported busy")
	}
	if got := strings.Join(trace, ","); got != "active" {
		t.Fatalf("timed poller ran early: %q", got)
	}
	trace = nil
	r.Poll(period)
	if got := strings.Join(trace, ","); got != "active,timed" {
		t.Fatalf("due iteration ran %q", got)
	}
	trace = nil
	r.Poll(period + period/2)
	r.Poll(2*period - 1)
	if strings.Contains(strings.Join(trace, ","), "timed") {
		t.Fatal("timed poller ran twice within a period")
	}
}

func TestMessageBatchBound(t *testing.T) {
	r := newTestReactor(t, Options{MsgBatch: 3})
	n := 0
	for i := 0; i < 7; i++ {
		Send(r, func(any) { n++ }, nil)
	}
	for i, want := range []int{3, 6, 7, 7} {
		r.Poll(0)
		if n != want {
			t.Fatalf("after iteration %d: %d messages ran, want %d", i+1, n, want)
		}
	}
}

func TestTimedPollersEarliestFirst(t *testing.T) {
	r := newTestReactor(t, Options{})
	var order []string
	r.RegisterPoller("slow", func(Ticks) Status { order = append(order, "slow"); return Idle }, 300)
	r.RegisterPoller("fast", func(Ticks) Status { order = append(order, "fast"); return Idle }, 100)
	r.Poll(TicksFromDuration(time.Second))
	if got := strings.Join(order, ","); got != "fast,slow" {
		t.Fatalf("order %q", got)
	}
}

func TestUnregisterPauseFromInsidePollers(t *testing.T) {
	r := newTestReactor(t, Options{})
	var aRuns, bRuns, cRuns int
	var a, b, c *Poller
	a = r.RegisterPoller("a", func(Ticks) Status {
		aRuns++
		if aRuns == 1 {
			b.Unregister() // b is later in the list: must not run this iteration
			a.Pause()      // pausing itself while running
			c = r.RegisterPoller("c", func(Ticks) Status { cRuns++; c.Unregister(); return Busy }, 0)
		}
		return Busy
	}, 0)
	b = r.RegisterPoller("b", func(Ticks) Status { bRuns++; return Busy }, 0)
	r.Poll(0)
	if aRuns != 1 || bRuns != 0 || cRuns != 0 {
		t.Fatalf("after 1st: a=%d b=%d c=%d", aRuns, bRuns, cRuns)
	}
	if a.State() != PollerPaused || b.State() != PollerUnregistered {
		t.Fatalf("states a=%v b=%v", a.State(), b.State())
	}
	r.Poll(1)
	r.Poll(2)
	if aRuns != 1 || cRuns != 1 {
		t.Fatalf("after 3: a=%d c=%d (paused poller ran, or self-unregistered poller ran twice)", aRuns, cRuns)
	}
	a.Resume()
	r.Poll(3)
	if aRuns != 2 {
		t.Fatalf("resumed poller did not run")
	}
	n := 0
	r.Pollers(func(*Poller, bool) { n++ })
	if n != 1 {
		t.Fatalf("%d pollers left, want 1", n)
	}
	_, infos := r.Snapshot()
	if len(infos) != 1 || infos[0].Name != "a" || infos[0].RunCount != 2 || infos[0].BusyCount != 2 {
		t.Fatalf("snapshot %+v", infos)
	}
}

func TestPollReentryPanics(t *testing.T) {
	r := newTestReactor(t, Options{})
	r.RegisterPoller("bad", func(now Ticks) Status { r.Poll(now); return Idle }, 0)
	defer func() {
		if recover() == nil {
			t.Fatal("re-entering Poll did not panic")
		}
	}()
	r.Poll(0)
}

func TestSendAllocatesNothing(t *testing.T) {
	r := newTestReactor(t, Options{})
	var x int
	fn := func(a any) { *(a.(*int))++ }
	allocs := testing.AllocsPerRun(1000, func() {
		Send(r, fn, &x)
		r.Poll(0)
	})
	if allocs != 0 {
		t.Fatalf("Send+Poll allocated %.1f times per message", allocs)
	}
	if x == 0 {
		t.Fatal("messages did not run")
	}
}

func TestSendRingFull(t *testing.T) {
	r := newTestReactor(t, Options{RingSize: 2})
	fn := func(any) {}
	Send(r, fn, nil)
	Send(r, fn, nil)
	if err := Send(r, fn, nil); !errors.Is(err, ErrRingFull) {
		t.Fatalf("third send into ring of 2: %v", err)
	}
}

func TestIdlePollAllocatesNothing(t *testing.T) {
	r := newTestReactor(t, Options{})
	for i := 0; i < 8; i++ {
		r.RegisterPoller("idle", func(Ticks) Status { return Idle }, 0)
	}
	r.RegisterPoller("timed", func(Ticks) Status { return Idle }, 10)
	now := Ticks(0)
	if a := testing.AllocsPerRun(1000, func() { now += 1000; r.Poll(now) }); a != 0 {
		t.Fatalf("idle iteration allocated %.1f", a)
	}
}

// TestAdaptiveSleepAndWake runs a real reactor in adaptive mode: it must
// fall asleep when idle, wake for messages, for watched fds and for timed
// pollers, and stop promptly.
func TestAdaptiveSleepAndWake(t *testing.T) {
	r := newTestReactor(t, Options{SpinTime: 200 * time.Microsecond})
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	var fdSeen, ticks atomic.Int64
	r.RegisterPoller("fd", func(Ticks) Status {
		var b [8]byte
		if n, _ := unix.Read(efd, b[:]); n == 8 {
			fdSeen.Add(1)
			return Busy
		}
		return Idle
	}, 0)
	r.RegisterPoller("tick", func(Ticks) Status { ticks.Add(1); return Idle }, 20000)
	if err := r.WatchFd(efd); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	defer func() {
		r.Stop()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after Stop")
		}
	}()

	waitFor(t, "reactor to fall asleep", r.Sleeping)
	got := make(chan struct{})
	if err := Send(r, func(any) { close(got) }, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("message did not wake the sleeping reactor")
	}
	waitFor(t, "reactor to fall asleep again", r.Sleeping)
	unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	waitFor(t, "watched fd to wake the reactor", func() bool { return fdSeen.Load() == 1 })
	before := ticks.Load()
	waitFor(t, "timed poller to run while idle", func() bool { return ticks.Load() >= before+3 })
}

func TestArmVetoesSleep(t *testing.T) {
	r := newTestReactor(t, Options{SpinTime: 50 * time.Microsecond})
	var arms atomic.Int64
	r.RegisterPollerOpts("armed", func(Ticks) Status { return Idle }, PollerOptions{
		Arm: func() bool { return arms.Add(1) < 5 }, // pretend work arrived 4 times
	})
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	waitFor(t, "sleep after the arm hook stops vetoing", r.Sleeping)
	if arms.Load() < 5 {
		t.Fatalf("slept after %d arm calls; the first 4 vetoed", arms.Load())
	}
	r.Stop()
	<-done
}

func TestPinnedReactorsOnEachMask(t *testing.T) {
	avail, err := AvailableCores()
	if err != nil {
		t.Fatal(err)
	}
	masks := [][]int{{avail[0]}}
	if len(avail) > 1 {
		masks = append(masks, []int{avail[1]}, []int{avail[0], avail[1]})
	}
	for _, cores := range masks {
		g, err := NewGroup(GroupOptions{Cores: cores})
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]atomic.Int32, len(cores))
		for i, r := range g.Reactors() {
			i := i
			r.RegisterPoller("where", func(Ticks) Status {
				var set unix.CPUSet
				unix.SchedGetaffinity(0, &set)
				if set.Count() == 1 && set.IsSet(cores[i]) {
					seen[i].Store(1)
				}
				return Idle
			}, 0)
		}
		g.Start()
		for i := range cores {
			waitFor(t, "reactor to run pinned", func() bool { return seen[i].Load() == 1 })
		}
		if err := g.Stop(); err != nil {
			t.Fatal(err)
		}
		g.Close()
	}
}

func TestUnavailableCoreIsNamed(t *testing.T) {
	_, err := NewGroup(GroupOptions{Cores: []int{MaxCores - 1}})
	if !errors.Is(err, ErrCoreUnavailable) || !strings.Contains(err.Error(), "core 1023") {
		t.Fatalf("err = %v", err)
	}
}

func TestCallAllAndLocal(t *testing.T) {
	g, err := NewGroup(GroupOptions{Cores: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.Start()
	defer g.Stop()
	l := NewLocal[int](g.Len())
	if err := g.CallAll(func(r *Reactor) { *l.Get(r) = 40 + r.ID() }); err != nil {
		t.Fatal(err)
	}
	if *l.At(0) != 40 {
		t.Fatalf("local = %d", *l.At(0))
	}
}

func TestClock(t *testing.T) {
	if TickRate() == 0 {
		t.Fatal("zero tick rate")
	}
	a := Now()
	time.Sleep(20 * time.Millisecond)
	d := (Now() - a).Duration()
	if d < 15*time.Millisecond || d > 2*time.Second {
		t.Fatalf("20ms sleep measured as %v (tsc=%v rate=%d)", d, ClockIsTSC(), TickRate())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestReactorClock: stepped by hand, Clock is the now given to Poll; on a
// running reactor it moves forward after every poller that did work, so
// that a poller running after a slow busy one sees the time that passed,
// and it never goes backwards.
func TestReactorClock(t *testing.T) {
	r := newTestReactor(t, Options{Mode: ModePoll})
	var seen []Ticks
	r.RegisterPoller("first", func(now Ticks) Status {
		seen = append(seen, r.Clock())
		return Idle
	}, 0)
	r.Poll(1234)
	if r.Clock() != 1234 || len(seen) != 1 || seen[0] != 1234 {
		t.Fatalf("stepped: Clock %d, seen %v; want 1234", r.Clock(), seen)
	}

	r2 := newTestReactor(t, Options{Mode: ModePoll})
	const spin = 2 * time.Millisecond
	var iterStart, afterBusy, last, inRun0, inRun1, inRun2 Ticks
	var backwards atomic.Bool
	var rounds atomic.Int32
	r2.RegisterPoller("slow", func(now Ticks) Status {
		if c := r2.Clock(); c < last {
			backwards.Store(true)
		} else {
			last = c
		}
		if rounds.Load() == 3 {
			iterStart = now
			for t0 := time.Now(); time.Since(t0) < spin; {
			}
		}
		if rounds.Load() == 6 {
			// Inside one poller run Clock holds still until ClockStale.
			inRun0 = r2.Clock()
			for t0 := time.Now(); time.Since(t0) < spin; {
			}
			inRun1 = r2.Clock()
			r2.ClockStale()
			inRun2 = r2.Clock()
		}
		return Busy
	}, 0)
	r2.RegisterPoller("after", func(now Ticks) Status {
		if c := r2.Clock(); c < last {
			backwards.Store(true)
		} else {
			last = c
		}
		if rounds.Add(1) == 4 {
			afterBusy = r2.Clock()
		}
		return Idle
	}, 0)
	done := make(chan error, 1)
	go func() { done <- r2.Run() }()
	waitFor(t, "ten iterations", func() bool { return rounds.Load() >= 10 })
	r2.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if backwards.Load() {
		t.Error("Clock went backwards")
	}
	if got := (afterBusy - iterStart).Duration(); got < spin || got > time.Second {
		t.Errorf("Clock after a %v busy poller moved %v past the iteration start, want at least %v", spin, got, spin)
	}
	if inRun1 != inRun0 {
		t.Errorf("Clock moved inside a poller run without ClockStale (%d -> %d)", inRun0, inRun1)
	}
	if got := (inRun2 - inRun0).Duration(); got < spin || got > time.Second {
		t.Errorf("Clock after ClockStale and a %v spin moved %v, want at least %v", spin, got, spin)
	}
}
