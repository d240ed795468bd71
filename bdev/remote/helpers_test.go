package remote

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator"
	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/reactor"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a host: running reactors, a bdev registry and the module.
type env struct {
	t   testing.TB
	rs  []*reactor.Reactor
	reg *bdev.Registry
	mod *Module
}

func startReactors(t testing.TB, n int, mode reactor.Mode) []*reactor.Reactor {
	return startReactorsOpts(t, n, reactor.Options{Mode: mode})
}

// startReactorsSpin starts adaptive reactors with the given spin time.
func startReactorsSpin(t testing.TB, n int, spin time.Duration) []*reactor.Reactor {
	return startReactorsOpts(t, n, reactor.Options{SpinTime: spin})
}

func startReactorsOpts(t testing.TB, n int, o reactor.Options) []*reactor.Reactor {
	t.Helper()
	var rs []*reactor.Reactor
	base := o.Core
	for i := 0; i < n; i++ {
		o.Core, o.Name = -1, fmt.Sprintf("reactor_%d", i)
		if base > 0 {
			o.Core = base + i
		}
		r, err := reactor.New(i, o)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { r.Run(); close(done) }()
		t.Cleanup(func() { r.Stop(); <-done; r.Close() })
		rs = append(rs, r)
	}
	return rs
}

func newEnv(t testing.TB, reactors int) *env {
	t.Helper()
	rs := startReactors(t, reactors, reactor.ModeAdaptive)
	reg := bdev.NewRegistry(bdev.Options{Reactors: rs})
	m := New(reg, rs, quietLog)
	reg.RegisterModule(m)
	t.Cleanup(m.Close)
	return &env{t: t, rs: rs, reg: reg, mod: m}
}

func startTarget(t testing.TB, o testtarget.Options) *testtarget.Target {
	t.Helper()
	tg, err := testtarget.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	return tg
}

func cfgFor(name, host, port, nqn string) AttachConfig {
	return AttachConfig{Name: name, TRAddr: host, TRSvcID: port, SubNQN: nqn, KeepAliveTimeoutMs: initiator.DefaultKATOMs}
}

func (e *env) attachTT(tg *testtarget.Target, mutate func(*AttachConfig)) *Controller {
	e.t.Helper()
	h, p := tg.Addr()
	cfg := cfgFor("Nvme0", h, p, tg.SubNQN())
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := e.mod.Attach(context.Background(), cfg, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// on runs fn on r and waits.
func on(t testing.TB, r *reactor.Reactor, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := reactor.Send(r, func(any) { fn(); close(done) }, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("reactor did not run the message")
	}
}

// open opens name for writing and gets its channel on r; both are
// released at the end of the test.
func (e *env) open(name string, r *reactor.Reactor) (*bdev.Desc, *bdev.IOChannel) {
	e.t.Helper()
	desc, err := e.reg.Open(name, true, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var ch *bdev.IOChannel
	on(e.t, r, func() { ch, err = desc.GetChannel(r) })
	if err != nil {
		desc.Close()
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		on(e.t, r, func() { ch.PutChannel() })
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n := 0
			on(e.t, r, func() { n = ch.Outstanding() })
			if n == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		desc.Close()
	})
	return desc, ch
}

// ioSpec is one bdev IO of a job.
type ioSpec struct {
	typ  bdev.IOType
	off  uint64
	n    uint64
	iovs [][]byte
}

// bjob runs IOs on a channel with at most qd outstanding, on the
// channel's reactor.
type bjob struct {
	ch      *bdev.IOChannel
	ios     []ioSpec
	qd      int
	next    int
	out     int
	st      []bdev.Status
	done    chan struct{}
	cb      bdev.CompletionFunc
	stopped bool
}

func runIOs(t testing.TB, ch *bdev.IOChannel, ios []ioSpec, qd int) []bdev.Status {
	t.Helper()
	j := &bjob{ch: ch, ios: ios, qd: qd, st: make([]bdev.Status, len(ios)), done: make(chan struct{})}
	j.cb = j.complete
	if err := reactor.Send(ch.Reactor(), func(any) { j.pump() }, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%d IOs timed out", len(ios))
	}
	return j.st
}

func (j *bjob) pump() {
	for j.next < len(j.ios) && j.out < j.qd {
		io := j.ch.Alloc()
		if io == nil {
			break
		}
		s := &j.ios[j.next]
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = s.typ, s.off, s.n, s.iovs
		io.Ctx = &j.st[j.next]
		j.next++
		j.out++
		j.ch.Submit(io, j.cb)
	}
	if j.next == len(j.ios) && j.out == 0 && !j.stopped {
		j.stopped = true
		close(j.done)
	}
}

func (j *bjob) complete(io *bdev.IO) {
	*io.Ctx.(*bdev.Status) = io.Status
	j.out--
	j.pump()
}

func one(t testing.TB, ch *bdev.IOChannel, typ bdev.IOType, off, n uint64, iovs ...[]byte) bdev.Status {
	t.Helper()
	return runIOs(t, ch, []ioSpec{{typ: typ, off: off, n: n, iovs: iovs}}, 1)[0]
}

func pattern(b []byte, seed uint64) {
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
