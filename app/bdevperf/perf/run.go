package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"hyperpath/bdev"
	"hyperpath/reactor"
)

// ErrStuck is returned when jobs still had IO outstanding DrainTimeout
// after the run ended. Their buffers are leaked on purpose: the device
// may still write into them.
var ErrStuck = errors.New("IO still outstanding after the drain timeout")

// target is one bdev under test: its descriptor and its jobs.
type target struct {
	name string
	desc *bdev.Desc
	mu   sync.Mutex
	jobs []*job
}

// Run runs cfg on reg's bdevs and returns the results.
//
// Preconditions: g's reactors are running (Group.Start) and reg was
// created on g.Reactors(). Run is control plane: it builds the jobs and
// their buffers here, creates each job's channel on its reactor (Call),
// starts them all with one message each, writes a progress line to
// progress (if not nil) every Config.ProgressInterval, and waits for the
// jobs to drain. Cancelling ctx ends the measured window early; the
// results then cover the time run so far and say Interrupted.
//
// Run returns an error for bad configurations and setup failures. IO
// errors and verify miscompares are results, not errors: see
// Result.Failure.
func Run(ctx context.Context, cfg Config, reg *bdev.Registry, g *reactor.Group, progress io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = splitmix(uint64(time.Now().UnixNano()))
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	targets, jobs, err := plan(&cfg, reg, g)
	defer func() {
		// Release what the jobs held, except where a job is still running
		// (ErrStuck): its device may yet write into its buffers.
		for _, j := range jobs {
			if !j.launched || isClosed(j.done) {
				j.freeBuffers()
			}
		}
		for _, t := range targets {
			if t.desc != nil && !t.stuck() {
				t.desc.Close()
			}
		}
	}()
	if err != nil {
		return nil, err
	}

	// Channels and pollers, on each job's reactor.
	for i, j := range jobs {
		var serr error
		if err := reactor.Call(j.r, func() { serr = j.setup() }); err != nil {
			serr = err
		}
		if serr != nil {
			for _, k := range jobs[:i+1] {
				reactor.Call(k.r, k.teardown)
			}
			return nil, fmt.Errorf("bdevperf job %d (%s on reactor %d): %w", j.id, j.bdevName, j.r.ID(), serr)
		}
	}
	start := time.Now()
	for _, j := range jobs {
		j.launched = true
		for reactor.Send(j.r, msgStart, j) != nil {
			time.Sleep(10 * time.Microsecond) // ring full: the reactor is busy, retry
		}
	}

	res := &Result{cfg: cfg}
	allDone := make(chan struct{})
	go func() {
		for _, j := range jobs {
			<-j.done
		}
		close(allDone)
	}()
	var tick <-chan time.Time
	if progress != nil && cfg.ProgressInterval > 0 {
		t := time.NewTicker(cfg.ProgressInterval)
		defer t.Stop()
		tick = t.C
	}
	prev, prevAt := make([]snapshot, len(jobs)), start
	hardStop := time.NewTimer(cfg.Duration + cfg.DrainTimeout)
	defer hardStop.Stop()
	ctxDone := ctx.Done()
wait:
	for {
		select {
		case <-allDone:
			break wait
		case now := <-tick:
			writeProgress(progress, jobs, prev, now.Sub(prevAt), now.Sub(start))
			prevAt = now
		case <-ctxDone:
			ctxDone = nil
			res.Interrupted = true
			stopAll(jobs)
			hardStop.Reset(cfg.DrainTimeout)
		case <-hardStop.C:
			stopAll(jobs)
			var stuck []string
			for _, j := range jobs {
				if !isClosed(j.done) {
					stuck = append(stuck, fmt.Sprintf("%s on reactor %d", j.bdevName, j.r.ID()))
				}
			}
			if len(stuck) == 0 {
				break wait
			}
			return nil, fmt.Errorf("bdevperf: %w: %v", ErrStuck, stuck)
		}
	}
	res.collect(jobs)
	return res, nil
}

// plan opens the bdevs and builds the jobs. On error it still returns what
// it built, for Run to release.
func plan(cfg *Config, reg *bdev.Registry, g *reactor.Group) ([]*target, []*job, error) {
	reactors := g.Reactors()
	if len(reactors) == 0 {
		return nil, nil, fmt.Errorf("%w: the reactor group is empty", ErrBadConfig)
	}
	if rr := reg.Reactors(); len(rr) != len(reactors) || rr[0] != reactors[0] {
		return nil, nil, fmt.Errorf("%w: the registry was not created on this reactor group", ErrBadConfig)
	}
	names := cfg.Bdevs
	if len(names) == 0 {
		for _, b := range reg.List() {
			if b.Claimed() == "" {
				names = append(names, b.Name())
			}
		}
		if len(names) == 0 {
			return nil, nil, fmt.Errorf("%w: the registry has no unclaimed bdev", ErrNoBdevs)
		}
	}
	seen := map[string]bool{}
	var targets []*target
	var jobs []*job
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		b, err := reg.Get(name)
		if err != nil {
			return targets, jobs, err
		}
		info := b.Info()
		if err := checkBdev(cfg, b, len(reactors)); err != nil {
			return targets, jobs, err
		}
		t := &target{name: info.Name}
		desc, err := reg.Open(name, cfg.Workload.writes(), t.onEvent)
		if err != nil {
			return targets, jobs, err
		}
		t.desc = desc
		targets = append(targets, t)
		add := func(r *reactor.Reactor, base, nblk uint64) error {
			j, err := newJob(jobParams{id: len(jobs), r: r, desc: desc, base: base, nblk: nblk, cfg: cfg,
				seed: cfg.Seed})
			if err != nil {
				return fmt.Errorf("bdevperf job on %s: %w", info.Name, err)
			}
			jobs = append(jobs, j)
			t.mu.Lock()
			t.jobs = append(t.jobs, j)
			t.mu.Unlock()
			return nil
		}
		if cfg.EveryCore {
			per := info.NumBlocks / uint64(len(reactors))
			for k, r := range reactors {
				if err := add(r, uint64(k)*per, per); err != nil {
					return targets, jobs, err
				}
			}
		} else if err := add(reactors[(len(targets)-1)%len(reactors)], 0, info.NumBlocks); err != nil {
			return targets, jobs, err
		}
	}
	return targets, jobs, nil
}

// checkBdev validates the workload against one bdev.
func checkBdev(cfg *Config, b *bdev.Bdev, nReactors int) error {
	info := b.Info()
	bs := int(info.BlockSize)
	if cfg.IOSizeBytes%bs != 0 {
		return fmt.Errorf("%w: IO size (-o) %d is not a multiple of bdev %s's block size %d",
			ErrIOSize, cfg.IOSizeBytes, info.Name, bs)
	}
	for _, t := range cfg.Workload.ioTypes() {
		if !b.Device().Supports(t) {
			return fmt.Errorf("%w: bdev %s cannot %s (workload %s)", ErrUnsupported, info.Name, t, cfg.Workload)
		}
	}
	blocks := info.NumBlocks
	if cfg.EveryCore {
		blocks /= uint64(nReactors)
	}
	ioBlocks := uint64(cfg.IOSizeBytes / bs)
	if blocks < ioBlocks {
		return fmt.Errorf("%w: IO size (-o) %d is larger than the %d bytes of bdev %s each job covers",
			ErrIOSize, cfg.IOSizeBytes, blocks*uint64(bs), info.Name)
	}
	if cfg.Workload == Verify && blocks/ioBlocks < uint64(cfg.QueueDepth) {
		return fmt.Errorf("%w: bdev %s: each job covers %d IOs of %d bytes, fewer than the queue depth %d; lower -q or -o",
			ErrVerifyRegion, info.Name, blocks/ioBlocks, cfg.IOSizeBytes, cfg.QueueDepth)
	}
	return nil
}

// onEvent stops the target's jobs when the bdev is being removed.
func (t *target) onEvent(ev bdev.EventType, _ *bdev.Bdev) {
	if ev != bdev.EventRemove {
		return
	}
	t.mu.Lock()
	jobs := append([]*job(nil), t.jobs...)
	t.mu.Unlock()
	stopAll(jobs)
}

// stuck reports whether any of t's jobs is still running.
func (t *target) stuck() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range t.jobs {
		if j.launched && !isClosed(j.done) {
			return true
		}
	}
	return false
}

func stopAll(jobs []*job) {
	for _, j := range jobs {
		for reactor.Send(j.r, msgStop, j) != nil {
			time.Sleep(10 * time.Microsecond)
		}
	}
}

// snapshotJob reads j's counters on its reactor. It gives up after
// timeout (a reactor stuck in a module must not hang the progress line);
// the message may then still run later, into a request nobody reads.
func snapshotJob(j *job, timeout time.Duration) (snapshot, bool) {
	if isClosed(j.done) {
		return j.snapshot(), true // finished: no longer written
	}
	req := &snapshotReq{j: j, done: make(chan struct{})}
	if reactor.Send(j.r, msgSnapshot, req) != nil {
		return snapshot{}, false
	}
	select {
	case <-req.done:
		return req.s, true
	case <-time.After(timeout):
		return snapshot{}, false
	}
}

type snapshotReq struct {
	j    *job
	s    snapshot
	done chan struct{}
}

func msgSnapshot(arg any) {
	req := arg.(*snapshotReq)
	req.s = req.j.snapshot()
	close(req.done)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// writeProgress prints one line: elapsed time, and IOPS and MiB/s of all
// jobs together since the previous line.
func writeProgress(w io.Writer, jobs []*job, prev []snapshot, interval, elapsed time.Duration) {
	var d snapshot
	for i, j := range jobs {
		s, ok := snapshotJob(j, interval)
		if !ok {
			s = prev[i]
		}
		d.ios += s.ios - prev[i].ios
		d.bytes += s.bytes - prev[i].bytes
		d.failed += s.failed - prev[i].failed
		d.miscompares += s.miscompares
		d.ioErrors += s.ioErrors
		prev[i] = s
	}
	secs := interval.Seconds()
	if secs <= 0 {
		return
	}
	line := fmt.Sprintf("%8.2f s: %12.2f IOPS %10.2f MiB/s", elapsed.Seconds(),
		float64(d.ios)/secs, float64(d.bytes)/secs/(1<<20))
	if d.failed > 0 || d.ioErrors > 0 {
		line += fmt.Sprintf(" %10.2f Fail/s (%d IO errors)", float64(d.failed)/secs, d.ioErrors)
	}
	if d.miscompares > 0 {
		line += fmt.Sprintf(" %d MISCOMPARES", d.miscompares)
	}
	fmt.Fprintln(w, line)
}
