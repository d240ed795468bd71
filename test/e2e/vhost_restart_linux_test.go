package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"hyperpath/app/bdevperf/perf"
	"hyperpath/bdev"
	"hyperpath/bdev/virtio"
	"hyperpath/reactor"
)

// vhostRestartRun is one verify run of the bdevperf engine in this
// process against the daemon's io_uring file controller, through a virtio
// bdev attached with reconnect options, while the test kills and restarts
// the daemon.
type vhostRestartRun struct {
	t        *testing.T
	tg       *vhostTarget
	reg      *bdev.Registry
	d        *virtio.Disk
	logs     vhostOutput
	progress bytes.Buffer // written by Run's goroutine, read after it returned
	done     chan vhostRunOut
	cancel   context.CancelFunc
	runFor   time.Duration
}

type vhostRunOut struct {
	res *perf.Result
	err error
}

// startVhostRestartRun starts the target, attaches Virtio0 with o's
// reconnect options and starts a verify run at QD32 of 4 KiB, which the
// test ends (finish) once IO has resumed after the restart: on 2 cores
// shared with other builds a fixed duration may end before the reconnect.
func startVhostRestartRun(t *testing.T, o virtio.Options) *vhostRestartRun {
	needBinaries(t)
	rr := &vhostRestartRun{t: t, tg: newVhostTarget(t), done: make(chan vhostRunOut, 1), runFor: 60 * time.Second}
	clientCore := 0
	if avail, err := reactor.AvailableCores(); err == nil && len(avail) > 0 {
		clientCore = avail[0]
	}
	g, err := reactor.NewGroup(reactor.GroupOptions{Cores: []int{clientCore}})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	rr.reg = bdev.NewRegistry(bdev.Options{Reactors: g.Reactors()})
	t.Cleanup(func() {
		for _, n := range rr.reg.Names() {
			if err := rr.reg.Unregister(n, nil); err != nil {
				t.Errorf("unregister %s: %v", n, err)
			}
		}
		if err := g.Stop(); err != nil {
			t.Error(err)
		}
		g.Close()
	})
	o.Name, o.SocketPath, o.QueueCount = "Virtio0", rr.tg.sock(ctrlUring), 1
	o.Logger = slog.New(slog.NewTextHandler(&rr.logs, nil))
	if err := virtio.Attach(rr.reg, o); err != nil {
		t.Fatal(err)
	}
	b, err := rr.reg.Get("Virtio0")
	if err != nil {
		t.Fatal(err)
	}
	rr.d = b.Device().(*virtio.Disk)
	ctx, cancel := context.WithCancel(context.Background())
	rr.cancel = cancel
	go func() {
		res, err := perf.Run(ctx, perf.Config{Bdevs: []string{"Virtio0"}, QueueDepth: 32, IOSizeBytes: 4096,
			Workload: perf.Verify, Duration: rr.runFor, ProgressInterval: 500 * time.Millisecond,
			DrainTimeout: 10 * time.Second}, rr.reg, g, &rr.progress)
		rr.done <- vhostRunOut{res, err}
	}()
	return rr
}

// finish lets the run go on for 2 s and until want requests completed
// after atReconnect (30 s at most: IO that does not resume fails the
// test), then ends it and returns its result; a run that does not drain fails
// the test (a hang), and so does a failed Run.
func (rr *vhostRestartRun) finish(atReconnect, want uint64) *perf.Result {
	t := rr.t
	t.Helper()
	from := time.Now()
	if !vhostWaitFor(30*time.Second, func() bool {
		return time.Since(from) >= 2*time.Second && rr.d.Stats().Requests-atReconnect >= want
	}) {
		t.Errorf("IO did not resume: %d requests in 30 s after the reconnect, want %d (bdev %v, last error %q)",
			rr.d.Stats().Requests-atReconnect, want, rr.d.State(), rr.d.LastError())
	}
	rr.cancel()
	var out vhostRunOut
	select {
	case out = <-rr.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("perf.Run did not return (bdev %v, last error %q); progress:\n%s", rr.d.State(), rr.d.LastError(), &rr.progress)
	}
	if out.err != nil {
		t.Fatalf("perf.Run: %v; progress:\n%s", out.err, &rr.progress)
	}
	if len(out.res.Jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(out.res.Jobs))
	}
	return out.res
}

// kill SIGKILLs the target after 2 s of IO and waits until the bdev has
// noticed; it returns the kill time.
func (rr *vhostRestartRun) kill() time.Time {
	t := rr.t
	t.Helper()
	time.Sleep(2 * time.Second)
	if rr.d.Stats().Requests == 0 {
		rr.cancel()
		<-rr.done
		t.Fatalf("no request completed in the 2 s before the kill; virtio log:\n%s", &rr.logs)
	}
	rr.tg.d.kill() // SIGKILL by PID
	killedAt := time.Now()
	if !vhostWaitFor(5*time.Second, func() bool { return rr.d.State() != virtio.StateConnected }) {
		rr.cancel()
		<-rr.done
		t.Fatalf("virtio bdev still %v 5 s after the target was killed", rr.d.State())
	}
	return killedAt
}

// restart starts the target again on the same config and sockets and
// waits for the bdev to reconnect.
func (rr *vhostRestartRun) restart(killedAt time.Time) {
	t := rr.t
	t.Helper()
	rr.tg.start()
	t.Logf("target serving again %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	if !vhostWaitFor(10*time.Second, func() bool { return rr.d.State() == virtio.StateConnected }) {
		rr.cancel()
		<-rr.done
		t.Fatalf("virtio bdev %v 10 s after the target restarted (last error %q); virtio log:\n%s",
			rr.d.State(), rr.d.LastError(), &rr.logs)
	}
	t.Logf("bdev reconnected %v after the kill", time.Since(killedAt).Round(time.Millisecond))
}

func (rr *vhostRestartRun) report(res *perf.Result) {
	t := rr.t
	tot := res.Total
	st := rr.d.Stats()
	t.Logf("verify: %d IOs ok, %d IO errors (%d inside the window), %d miscompares, %.0f IOPS, status %q; "+
		"bdev %v, %d reconnects, %d requests, %d IOs held", tot.IOs, tot.IOErrors, tot.Failed, tot.Miscompares, tot.IOPS,
		res.Jobs[0].Status, rr.d.State(), rr.d.Reconnects(), st.Requests, st.HeldIOs)
	t.Logf("progress:\n%s", &rr.progress)
	t.Logf("virtio log:\n%s", &rr.logs)
}

// TestVhostTargetRestart kills the daemon with SIGKILL while the verify
// workload runs through its io_uring file controller, and starts it again
// on the same config and sockets. The front end is the bdevperf engine in
// this process with a virtio bdev that reconnects forever every 50 ms
// (SPDK's ctrlr_loss_timeout_sec -1, reconnect_delay_sec). Expected, and
// checked: the IO in the ring at the kill and the IO submitted during the
// outage are held and resubmitted after the one reconnect, so the run
// ends with no IO error and no miscompare (no write acknowledged before
// the kill was lost or torn, nothing was read from a half-set-up queue),
// and IO resumes.
func TestVhostTargetRestart(t *testing.T) {
	rr := startVhostRestartRun(t, virtio.Options{CtrlrLossTimeout: virtio.Forever, ReconnectDelay: 50 * time.Millisecond})
	killedAt := rr.kill()
	rr.restart(killedAt)
	atReconnect := rr.d.Stats().Requests
	res := rr.finish(atReconnect, minAfterReconnect)
	rr.report(res)
	tot := res.Total
	if tot.IOErrors != 0 || tot.Failed != 0 {
		t.Errorf("%d IO errors across the target restart, want 0: %+v", tot.IOErrors, res.Jobs[0].ErrorDetails)
	}
	if tot.Miscompares != 0 {
		t.Errorf("%d miscompares across the target restart: %+v", tot.Miscompares, res.Jobs[0].MiscompareDetails)
	}
	if n := rr.d.Reconnects(); n != 1 {
		t.Errorf("%d reconnects, want 1", n)
	}
	if rr.d.Stats().HeldIOs == 0 {
		t.Error("no IO was held across the restart: the kill did not catch IO in flight")
	}
	if rr.d.State() != virtio.StateConnected {
		t.Errorf("bdev %v at the end", rr.d.State())
	}
}

// TestVhostTargetRestartFastIOFail keeps the killed daemon down for 1.5 s,
// longer than the bdev's fast_io_fail_timeout of 500 ms: the held IO and
// the IO submitted after the timeout fail with StatusFailed (the run does
// not hang, and the bdev reports reconnecting_failing_io meanwhile), none
// before the timeout; after the restart the bdev reconnects and IO
// succeeds again, still with no miscompare.
func TestVhostTargetRestartFastIOFail(t *testing.T) {
	const fast = 500 * time.Millisecond
	rr := startVhostRestartRun(t, virtio.Options{CtrlrLossTimeout: virtio.Forever, ReconnectDelay: 50 * time.Millisecond,
		FastIOFailTimeout: fast})
	killedAt := rr.kill()
	if !vhostWaitFor(5*time.Second, func() bool { return rr.d.State() == virtio.StateFailingIO }) {
		rr.cancel()
		<-rr.done
		t.Fatalf("bdev %v 5 s after the kill, want %v", rr.d.State(), virtio.StateFailingIO)
	}
	failingAfter := time.Since(killedAt)
	t.Logf("bdev reported %q %v after the kill (last error %q)", rr.d.State(), failingAfter.Round(time.Millisecond), rr.d.LastError())
	// killedAt is taken after the reap, a little after the bdev saw the
	// socket close, and the machine is loaded; the unit test
	// TestFastIOFail times this exactly.
	if failingAfter < fast/2 {
		t.Errorf("IO started failing %v after the kill, before fast_io_fail_timeout %v", failingAfter, fast)
	}
	time.Sleep(1500*time.Millisecond - failingAfter) // a no-op when it is already later
	if rr.d.State() != virtio.StateFailingIO {
		t.Errorf("bdev %v while the target is down past fast_io_fail_timeout", rr.d.State())
	}
	rr.restart(killedAt)
	atReconnect := rr.d.Stats().Requests
	res := rr.finish(atReconnect, minAfterReconnect)
	rr.report(res)
	tot := res.Total
	if tot.IOErrors == 0 {
		t.Error("no IO failed although the target stayed down past fast_io_fail_timeout")
	}
	for _, e := range res.Jobs[0].ErrorDetails {
		if e.Status != bdev.StatusFailed {
			t.Errorf("IO error with status %v, want Failed (lost connection): %+v", e.Status, e)
		}
	}
	if tot.Miscompares != 0 {
		t.Errorf("%d miscompares across the target restart: %+v", tot.Miscompares, res.Jobs[0].MiscompareDetails)
	}
	if n := rr.d.Reconnects(); n != 1 {
		t.Errorf("%d reconnects, want 1", n)
	}
}

// minAfterReconnect is the number of requests a run must complete after
// the reconnect before the test ends it: 32 verify pairs (write, read
// back) for each of the 32 slots.
const minAfterReconnect = 32 * 2 * 32

// vhostWaitFor polls cond every millisecond until it holds or timeout
// passes, and reports whether it held.
func vhostWaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
