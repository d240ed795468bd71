package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"syscall"

	"hyperpath/app/bdevperf/perf"
	"hyperpath/rpc"
)

// performTestsParams are perform_tests' params (SPDK bdevperf; relaxed
// decode, every key optional). Values given replace the command line's
// for this and later tests, as in SPDK.
type performTestsParams struct {
	TimeInSec    int    `json:"time_in_sec"`
	WorkloadType string `json:"workload_type"`
	QueueDepth   uint32 `json:"queue_depth"`
	IOSize       string `json:"io_size"`
	RWPercentage int    `json:"rw_percentage"`
}

// tester runs perform_tests requests one at a time.
type tester struct {
	ctx    context.Context
	env    *env
	stdout io.Writer

	mu   sync.Mutex
	busy bool
	o    options // flags as amended by earlier requests
}

// waitForTests serves perform_tests (-z) until a signal or
// spdk_kill_instance.
func waitForTests(ctx context.Context, e *env, o *options, stdout, stderr io.Writer) int {
	stdout = &lockedWriter{w: stdout} // tests print from RPC goroutines
	t := &tester{ctx: ctx, env: e, stdout: stdout, o: *o}
	e.RPC().Register("perform_tests", rpc.Runtime, t.performTests, rpc.Detached())
	fmt.Fprintf(stdout, "bdevperf: waiting for perform_tests on %s\n", o.rpcSocket)
	if err := e.Wait(); err != nil {
		fmt.Fprintf(stderr, "bdevperf: %v\n", err)
		return 1
	}
	return 0
}

// performTests implements the perform_tests RPC: it runs one test with the
// current options and returns the results object (as --json-output
// writes it). Errors follow SPDK: bad params are -32700, a test already
// running is EINPROGRESS, a failed run is -32603.
func (t *tester) performTests(_ context.Context, raw json.RawMessage) (any, error) {
	t.mu.Lock()
	if t.busy {
		t.mu.Unlock()
		return nil, rpc.Internal(rpc.Strerror(syscall.EINPROGRESS))
	}
	o, err := decodeParams(t.o, raw)
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	t.o = o
	t.busy = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.busy = false
		t.mu.Unlock()
	}()

	res, err := runOnce(t.ctx, t.env, &o, t.stdout)
	if err != nil {
		return nil, rpc.Internal("bdevperf failed with error " + err.Error())
	}
	if err := res.Failure(); err != nil {
		return nil, rpc.Internal("bdevperf failed with error " + err.Error())
	}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		return nil, err
	}
	return json.RawMessage(buf.Bytes()), nil
}

// decodeParams applies perform_tests' raw params to a copy of o. The
// params come from the socket: any bytes give either valid options or an
// *rpc.Error, never a panic (FuzzPerformTestsParams).
func decodeParams(o options, raw json.RawMessage) (options, error) {
	var p performTestsParams
	if len(raw) > 0 {
		if err := rpc.DecodeRelaxed(raw, &p); err != nil {
			return o, rpc.ParseError("spdk_json_decode_object failed")
		}
	}
	if err := applyParams(&o, &p); err != nil {
		return o, rpc.ParseError("Invalid parameters provided: " + err.Error())
	}
	return o, nil
}

// applyParams amends the options with a request's params and validates
// the result.
func applyParams(o *options, p *performTestsParams) error {
	if p.QueueDepth != 0 {
		if p.QueueDepth > perf.MaxQueueDepth {
			return fmt.Errorf("queue_depth %d above %d", p.QueueDepth, perf.MaxQueueDepth)
		}
		o.cfg.QueueDepth = int(p.QueueDepth)
	}
	if p.IOSize != "" {
		n, err := parseSize(p.IOSize)
		if err != nil {
			return fmt.Errorf("io_size: %v", err)
		}
		o.cfg.IOSizeBytes = n
	}
	if p.TimeInSec != 0 {
		if p.TimeInSec < 0 {
			return fmt.Errorf("time_in_sec %d is negative", p.TimeInSec)
		}
		o.seconds = float64(p.TimeInSec)
		o.cfg.Duration = secondsDuration(o.seconds)
	}
	if p.RWPercentage != 0 {
		o.mix = p.RWPercentage
	}
	if p.WorkloadType != "" {
		o.workload = p.WorkloadType
	}
	if o.workload == "" {
		return fmt.Errorf("no workload: give -w or workload_type")
	}
	if err := o.setWorkload(o.workload); err != nil {
		return err
	}
	return o.cfg.Validate()
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
