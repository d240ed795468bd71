package initiator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// startReactors runs n adaptive reactors on goroutines of their own; they
// are stopped and closed at the end of the test.
func startReactors(t testing.TB, n int) []*reactor.Reactor {
	t.Helper()
	var rs []*reactor.Reactor
	for i := 0; i < n; i++ {
		r, err := reactor.New(i, reactor.Options{Core: -1, Name: fmt.Sprintf("test_%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { r.Run(); close(done) }()
		t.Cleanup(func() {
			r.Stop()
			<-done
			r.Close()
		})
		rs = append(rs, r)
	}
	return rs
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

// connect attaches to tg with the reactors (the first is also the admin
// reactor); mutate adjusts the options first. The controller is closed at
// the end of the test.
func connect(t testing.TB, tg *testtarget.Target, rs []*reactor.Reactor, mutate func(*Options)) *Ctrlr {
	t.Helper()
	h, p := tg.Addr()
	o := Options{Name: "Nvme0", TRAddr: h, TRSvcID: p, SubNQN: tg.SubNQN(), AdminReactor: rs[0], IOReactors: rs, Logger: quietLog}
	if mutate != nil {
		mutate(&o)
	}
	c, err := Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// on runs fn on r and waits.
func on(t testing.TB, r *reactor.Reactor, fn func()) {
	t.Helper()
	if err := runOn(r, fn); err != nil {
		t.Fatal(err)
	}
}

// result is one command's outcome in a job.
type result struct {
	status proto.Status
	err    error // a Submit error
}

// job runs cmds on q with at most qd outstanding, on q's reactor, and
// reports every command's result in order. Submits refused with
// ErrQueueFull are retried on the next completion.
type job struct {
	q       *QPair
	cmds    []Cmd
	qd      int
	next    int
	out     int
	results []result
	done    chan struct{}
	doneFn  DoneFunc
	ended   bool
}

func runJob(t testing.TB, q *QPair, cmds []Cmd, qd int, timeout time.Duration) []result {
	t.Helper()
	j := &job{q: q, cmds: cmds, qd: qd, results: make([]result, len(cmds)), done: make(chan struct{})}
	j.doneFn = j.complete
	for i := range j.cmds {
		j.cmds[i].Done = j.doneFn
		j.cmds[i].Ctx = &j.results[i]
	}
	if err := reactor.Send(q.Reactor(), func(any) { j.pump() }, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.done:
	case <-time.After(timeout):
		t.Fatalf("job of %d commands timed out", len(cmds))
	}
	return j.results
}

func (j *job) pump() {
	for j.next < len(j.cmds) && j.out < j.qd {
		c := &j.cmds[j.next]
		err := j.q.Submit(c)
		if err == ErrQueueFull {
			break
		}
		j.next++
		if err != nil {
			c.Ctx.(*result).err = err
			continue
		}
		j.out++
	}
	if j.next == len(j.cmds) && j.out == 0 && !j.ended {
		j.ended = true
		close(j.done)
	}
}

func (j *job) complete(ctx any, cpl *proto.CQE) {
	ctx.(*result).status = cpl.Status
	j.out--
	j.pump()
}

// pattern fills b with bytes derived from seed.
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
