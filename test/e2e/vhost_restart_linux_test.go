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

// TestVhostTargetRestart kills the daemon with SIGKILL while the verify
// workload runs through its io_uring file controller, and starts it again
// on the same config and sockets. The front end is the bdevperf engine in
// this process with a virtio bdev attached with ReconnectDelay (the attach
// RPC has no parameter for it). Expected, and checked: the virtio bdev
// fails the IO that was in flight at the kill and the IO submitted while
// it is disconnected (bdev/virtio keeps no inflight area of its own),
// reconnects once, and IO resumes; verify finds no miscompare, so no
// write acknowledged before the kill was lost or torn and nothing was
// read from a half-set-up queue.
func TestVhostTargetRestart(t *testing.T) {
	needBinaries(t)
	tg := newVhostTarget(t)

	clientCore := 0
	if avail, err := reactor.AvailableCores(); err == nil && len(avail) > 0 {
		clientCore = avail[0]
	}
	g, err := reactor.NewGroup(reactor.GroupOptions{Cores: []int{clientCore}})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	reg := bdev.NewRegistry(bdev.Options{Reactors: g.Reactors()})
	t.Cleanup(func() {
		for _, n := range reg.Names() {
			if err := reg.Unregister(n, nil); err != nil {
				t.Errorf("unregister %s: %v", n, err)
			}
		}
		if err := g.Stop(); err != nil {
			t.Error(err)
		}
		g.Close()
	})
	var logs vhostOutput
	const reconnectDelay = 50 * time.Millisecond
	if err := virtio.Attach(reg, virtio.Options{Name: "Virtio0", SocketPath: tg.sock(ctrlUring), QueueCount: 1,
		ReconnectDelay: reconnectDelay, Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	b, err := reg.Get("Virtio0")
	if err != nil {
		t.Fatal(err)
	}
	d := b.Device().(*virtio.Disk)

	const runFor = 8 * time.Second
	var progress bytes.Buffer // written by Run's goroutine, read after it returned
	type runOut struct {
		res *perf.Result
		err error
	}
	done := make(chan runOut, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		res, err := perf.Run(ctx, perf.Config{Bdevs: []string{"Virtio0"}, QueueDepth: 32, IOSizeBytes: 4096,
			Workload: perf.Verify, Duration: runFor, ProgressInterval: 500 * time.Millisecond,
			DrainTimeout: 10 * time.Second}, reg, g, &progress)
		done <- runOut{res, err}
	}()
	var out runOut
	finished := false
	defer func() {
		if !finished {
			cancel()
			<-done
		}
	}()

	time.Sleep(2 * time.Second)
	beforeKill := d.Stats().Requests
	if beforeKill == 0 {
		t.Fatalf("no request completed in the 2 s before the kill; virtio log:\n%s", &logs)
	}
	tg.d.kill() // SIGKILL by PID
	killedAt := time.Now()
	if !vhostWaitFor(5*time.Second, func() bool { return d.State() != virtio.StateConnected }) {
		t.Fatalf("virtio bdev still %v 5 s after the target was killed", d.State())
	}
	noticed := time.Since(killedAt)
	tg.start() // same config, same socket directory
	restarted := time.Since(killedAt)
	if !vhostWaitFor(10*time.Second, func() bool { return d.State() == virtio.StateConnected }) {
		t.Fatalf("virtio bdev %v 10 s after the target restarted (last error %q); virtio log:\n%s",
			d.State(), d.LastError(), &logs)
	}
	reconnected := time.Since(killedAt)
	atReconnect := d.Stats().Requests

	select {
	case out = <-done:
		finished = true
	case <-time.After(runFor + 30*time.Second):
		t.Fatalf("perf.Run did not return; progress:\n%s", &progress)
	}
	if out.err != nil {
		t.Fatalf("perf.Run: %v; progress:\n%s", out.err, &progress)
	}
	res := out.res
	if len(res.Jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(res.Jobs))
	}
	after := d.Stats().Requests
	tot := res.Total
	// noticed is ~0 when the bdev had failed by the time kill reaped the
	// process: the socket closes as the process exits.
	t.Logf("killed after %d requests; after the reap of the killed target: failure seen %v, target serving again %v, "+
		"bdev reconnected %v (%d reconnects); %d requests after the reconnect", beforeKill,
		noticed.Round(time.Microsecond), restarted.Round(time.Millisecond),
		reconnected.Round(time.Millisecond), d.Reconnects(), after-atReconnect)
	t.Logf("verify: %d IOs ok, %d IO errors (%d inside the window), %d miscompares, %.0f IOPS, status %q",
		tot.IOs, tot.IOErrors, tot.Failed, tot.Miscompares, tot.IOPS, res.Jobs[0].Status)
	if err := res.Failure(); err != nil {
		t.Logf("run failure summary: %v", err)
	}
	t.Logf("progress:\n%s", &progress)

	if tot.Miscompares != 0 {
		t.Errorf("%d miscompares across the target restart: %+v", tot.Miscompares, res.Jobs[0].MiscompareDetails)
	}
	if d.Reconnects() != 1 {
		t.Errorf("%d reconnects, want 1", d.Reconnects())
	}
	// IO must have resumed: a verify pair (write, read back) per slot at
	// least, well beyond the queue depth.
	if after-atReconnect < 1000 {
		t.Errorf("only %d requests completed after the reconnect", after-atReconnect)
	}
	for _, e := range res.Jobs[0].ErrorDetails {
		if e.Status != bdev.StatusFailed {
			t.Errorf("IO error with status %v, want Failed (lost connection): %+v", e.Status, e)
		}
	}
}

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
