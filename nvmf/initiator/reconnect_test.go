package initiator

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/nvmf/proto"
)

// writeReadVerify writes n commands of blocks blocks at distinct LBAs with
// qd outstanding while disrupt runs, then reads everything back.
func writeReadVerify(t *testing.T, c *Ctrlr, q *QPair, tg *testtarget.Target, n int, blocks uint32, qd int, disrupt func()) {
	t.Helper()
	size := int(blocks) * 512
	data := make([]byte, n*size)
	pattern(data, 99)
	var w, r []Cmd
	back := make([]byte, len(data))
	for i := 0; i < n; i++ {
		b := data[i*size : (i+1)*size]
		w = append(w, Cmd{Op: OpWrite, NSID: 1, SLBA: uint64(i) * uint64(blocks), NLB: blocks, Iovs: [][]byte{b}, LenBytes: uint32(size)})
		r = append(r, Cmd{Op: OpRead, NSID: 1, SLBA: uint64(i) * uint64(blocks), NLB: blocks, Iovs: [][]byte{back[i*size : (i+1)*size]}, LenBytes: uint32(size)})
	}
	go disrupt()
	for i, res := range runJob(t, q, w, qd, 60*time.Second) {
		if res.err != nil || !res.status.Success() {
			t.Fatalf("write %d: %v %v", i, res.err, res.status)
		}
	}
	for i, res := range runJob(t, q, r, qd, 30*time.Second) {
		if res.err != nil || !res.status.Success() {
			t.Fatalf("read %d: %v %v", i, res.err, res.status)
		}
	}
	if !bytes.Equal(back, data) {
		t.Fatal("data read back differs")
	}
	if !bytes.Equal(tg.Data(1)[:len(data)], data) {
		t.Fatal("target data differs")
	}
}

// TestTargetRestartMidRun: the target goes away for 1.5 s in the middle of
// a write run; I/O is held, the controller reconnects, held I/O is
// resubmitted, and everything verifies.
func TestTargetRestartMidRun(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hdgst, ddgs bool
	}{{"plain", false, false}, {"digests", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rs := startReactors(t, 2)
			tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 65536}}})
			c := connect(t, tg, rs, func(o *Options) {
				o.CtrlrLossTimeoutSec, o.ReconnectDelaySec = -1, 1
				o.HeaderDigest, o.DataDigest = tc.hdgst, tc.ddgs
				o.ConnectTimeout = time.Second
			})
			writeReadVerify(t, c, c.IOQPair(rs[1]), tg, 600, 16, 16, func() {
				for tg.Stats.Writes.Load() < 150 {
					time.Sleep(time.Millisecond)
				}
				tg.Stop()
				time.Sleep(1500 * time.Millisecond)
				if err := tg.Restart(); err != nil {
					t.Error(err)
				}
			})
			if c.Resets() == 0 || c.State() != StateEnabled {
				t.Errorf("resets %d state %v", c.Resets(), c.State())
			}
			var st QPairStats
			on(t, rs[1], func() { st = c.IOQPair(rs[1]).Stats() })
			if st.Resubmitted == 0 {
				t.Error("no command was held and resubmitted")
			}
		})
	}
}

// TestDropResubmits: connections dropped under load with the default
// policy (no reconnect delay): the immediate reconnect succeeds and the
// outstanding commands are resubmitted.
func TestDropResubmits(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 65536}}})
	c := connect(t, tg, rs, nil)
	writeReadVerify(t, c, c.IOQPair(rs[0]), tg, 400, 8, 32, func() { tg.DropAfter(100) })
	if c.Resets() == 0 {
		t.Error("no reset happened")
	}
}

// submitOne submits one 4 KiB read on q from its reactor and returns the
// Submit error and a channel that gets the completion status.
func submitOne(t *testing.T, q *QPair, buf []byte) (error, chan proto.Status) {
	t.Helper()
	ch := make(chan proto.Status, 1)
	var err error
	on(t, q.Reactor(), func() {
		err = q.Submit(&Cmd{Op: OpRead, NSID: 1, NLB: 8, Iovs: [][]byte{buf}, LenBytes: 4096,
			Done: func(_ any, cpl *proto.CQE) { ch <- cpl.Status }})
	})
	return err, ch
}

func TestFastIOFail(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	c := connect(t, tg, rs, func(o *Options) {
		o.CtrlrLossTimeoutSec, o.ReconnectDelaySec, o.FastIOFailTimeoutSec = 10, 1, 2
	})
	q := c.IOQPair(rs[0])
	buf := make([]byte, 4096)
	tg.Stop()
	start := time.Now()
	// The loss is noticed on the first command or keep alive.
	err, ch := submitOne(t, q, buf)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-ch:
		if st.Code() != proto.StatusHostPathingError {
			t.Fatalf("held read completed with %v", st)
		}
		if el := time.Since(start); el < 1500*time.Millisecond || el > 4*time.Second {
			t.Errorf("held read failed after %v, want about fast_io_fail_timeout_sec (2 s)", el)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("held read never failed")
	}
	if err, _ := submitOne(t, q, buf); !errors.Is(err, ErrPathFailed) {
		t.Errorf("submit after fast I/O fail: %v", err)
	}
	if s := c.State(); s != StateReconnectDelayed && s != StateResetting {
		t.Errorf("state %v", s)
	}
	if err := tg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnect", 5*time.Second, func() bool { return c.State() == StateEnabled })
	err, ch = submitOne(t, q, buf)
	if err != nil {
		t.Fatal(err)
	}
	if st := <-ch; !st.Success() {
		t.Fatalf("read after reconnect: %v", st)
	}
}

func TestCtrlrLossTimeout(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	lost := make(chan *Ctrlr, 1)
	c := connect(t, tg, rs, func(o *Options) {
		o.CtrlrLossTimeoutSec, o.ReconnectDelaySec = 2, 1
		o.OnLost = func(c *Ctrlr) { lost <- c }
	})
	q := c.IOQPair(rs[0])
	buf := make([]byte, 4096)
	tg.Stop()
	start := time.Now()
	err, ch := submitOne(t, q, buf)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-lost:
		if got != c {
			t.Fatal("OnLost got another controller")
		}
		if el := time.Since(start); el < 1500*time.Millisecond || el > 4*time.Second {
			t.Errorf("lost after %v, want about ctrlr_loss_timeout_sec (2 s)", el)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("controller never given up")
	}
	if st := <-ch; st.Code() != proto.StatusAbortedByHost {
		t.Errorf("held read: %v", st)
	}
	if c.State() != StateDeleting {
		t.Errorf("state %v", c.State())
	}
	if err, _ := submitOne(t, q, buf); !errors.Is(err, ErrClosed) {
		t.Errorf("submit after loss: %v", err)
	}
}

// TestNoReconnectPolicy: with SPDK's defaults (all 0) one reconnect is
// tried; when it fails the controller is failed and I/O fails, until a
// Reset succeeds.
func TestNoReconnectPolicy(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	c := connect(t, tg, rs, func(o *Options) { o.ConnectTimeout = time.Second })
	q := c.IOQPair(rs[0])
	buf := make([]byte, 4096)
	tg.Stop()
	err, ch := submitOne(t, q, buf)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-ch:
		if st.Code() != proto.StatusHostPathingError {
			t.Errorf("read: %v", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read never failed")
	}
	waitFor(t, "failed state", 3*time.Second, func() bool { return c.State() == StateFailed })
	if err, _ := submitOne(t, q, buf); !errors.Is(err, ErrPathFailed) {
		t.Errorf("submit while failed: %v", err)
	}
	if err := c.Reset(context.Background()); err == nil {
		t.Error("reset succeeded with the target down")
	}
	if err := tg.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset(context.Background()); err != nil {
		t.Fatalf("reset: %v", err)
	}
	err, ch = submitOne(t, q, buf)
	if err != nil {
		t.Fatal(err)
	}
	if st := <-ch; !st.Success() {
		t.Fatalf("read after reset: %v", st)
	}
}

// TestKeepAliveTimeout: a controller that stops answering is detected by
// the keep-alive timer, and the association comes back when it answers
// again.
func TestKeepAliveTimeout(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	c := connect(t, tg, rs, func(o *Options) {
		o.KATOMs = 300
		o.CtrlrLossTimeoutSec, o.ReconnectDelaySec = -1, 1
		o.ConnectTimeout = 500 * time.Millisecond
	})
	waitFor(t, "a keep alive", 2*time.Second, func() bool { return tg.Stats.KeepAlives.Load() > 0 })
	tg.Freeze()
	start := time.Now()
	waitFor(t, "keep-alive loss", 3*time.Second, func() bool { return c.State() != StateEnabled })
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("loss declared after %v, before KATO", el)
	}
	if err := c.LastError(); err != nil && !errors.Is(err, ErrKeepAlive) && !errors.Is(err, ErrTimeout) {
		t.Logf("last error: %v", err)
	}
	tg.Thaw()
	waitFor(t, "reconnect", 6*time.Second, func() bool { return c.State() == StateEnabled })
	buf := make([]byte, 4096)
	err, ch := submitOne(t, c.IOQPair(rs[0]), buf)
	if err != nil {
		t.Fatal(err)
	}
	if st := <-ch; !st.Success() {
		t.Fatalf("read after reconnect: %v", st)
	}
}

// TestCloseFailsHeld: Close fails held commands with Aborted By Host.
func TestCloseFailsHeld(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	c := connect(t, tg, rs, func(o *Options) { o.CtrlrLossTimeoutSec, o.ReconnectDelaySec = -1, 1 })
	q := c.IOQPair(rs[0])
	tg.Stop()
	err, ch := submitOne(t, q, make([]byte, 4096))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "loss", 3*time.Second, func() bool { return c.State() != StateEnabled })
	c.Close()
	select {
	case st := <-ch:
		if st.Code() != proto.StatusAbortedByHost {
			t.Errorf("held read: %v", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("held read not failed by Close")
	}
}
