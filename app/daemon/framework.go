package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/rpc"
)

// registerFramework adds the RPCs that report on reactors and pollers.
func (d *Daemon) registerFramework() {
	d.rpc.Register("framework_get_reactors", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := rpc.NoParams(p, "framework_get_reactors requires no parameters"); err != nil {
			return nil, err
		}
		snaps := d.snapshot()
		list := []bdev.Ordered{}
		for i, r := range d.group.Reactors() {
			s := snaps[i]
			usr, sys := threadCPU(r.Tid())
			list = append(list, bdev.Obj(
				"lcore", r.Core(), "tid", r.Tid(),
				"busy", s.stats.BusyTicks, "idle", s.stats.IdleTicks,
				"in_interrupt", r.Mode() == reactor.ModeAdaptive && r.Sleeping(),
				"irq", 0, "sys", sys, "usr", usr,
				"lw_threads", []bdev.Ordered{bdev.Obj(
					"name", r.Name(), "id", r.ID()+1,
					"cpumask", reactor.FormatCoreMask([]int{r.Core()}),
					"elapsed", s.stats.BusyTicks+s.stats.IdleTicks,
				)},
			))
		}
		return bdev.Obj("tick_rate", reactor.TickRate(), "pid", os.Getpid(), "reactors", list), nil
	})
	d.rpc.Register("thread_get_stats", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := rpc.NoParams(p, "thread_get_stats requires no parameters"); err != nil {
			return nil, err
		}
		snaps := d.snapshot()
		threads := []bdev.Ordered{}
		for i, r := range d.group.Reactors() {
			s := snaps[i]
			var active, timed, paused int
			for _, p := range s.pollers {
				switch {
				case p.State == reactor.PollerPaused:
					paused++
				case p.Timed:
					timed++
				default:
					active++
				}
			}
			threads = append(threads, bdev.Obj(
				"name", r.Name(), "id", r.ID()+1, "cpumask", reactor.FormatCoreMask([]int{r.Core()}),
				"busy", s.stats.BusyTicks, "idle", s.stats.IdleTicks,
				"active_pollers_count", active, "timed_pollers_count", timed, "paused_pollers_count", paused,
			))
		}
		return bdev.Obj("tick_rate", reactor.TickRate(), "threads", threads), nil
	})
	d.rpc.Register("thread_get_pollers", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := rpc.NoParams(p, "thread_get_pollers requires no parameters"); err != nil {
			return nil, err
		}
		snaps := d.snapshot()
		threads := []bdev.Ordered{}
		for i, r := range d.group.Reactors() {
			active, timed, paused := []bdev.Ordered{}, []bdev.Ordered{}, []bdev.Ordered{}
			for _, p := range snaps[i].pollers {
				o := bdev.Obj("name", p.Name, "id", p.ID, "state", p.State.String(),
					"run_count", p.RunCount, "busy_count", p.BusyCount)
				if p.PeriodTicks != 0 {
					o = append(o, bdev.KV{Key: "period_ticks", Value: p.PeriodTicks})
				}
				switch {
				case p.State == reactor.PollerPaused:
					paused = append(paused, o)
				case p.Timed:
					timed = append(timed, o)
				default:
					active = append(active, o)
				}
			}
			threads = append(threads, bdev.Obj("name", r.Name(), "id", r.ID()+1,
				"active_pollers", active, "timed_pollers", timed, "paused_pollers", paused))
		}
		return bdev.Obj("tick_rate", reactor.TickRate(), "threads", threads), nil
	})
}

type reactorSnapshot struct {
	stats   reactor.Stats
	pollers []reactor.PollerInfo
}

// snapshot visits every reactor with a message and copies its counters.
func (d *Daemon) snapshot() []reactorSnapshot {
	out := make([]reactorSnapshot, d.group.Len())
	var mu sync.Mutex
	d.group.CallAll(func(r *reactor.Reactor) {
		st, ps := r.Snapshot()
		mu.Lock()
		out[r.ID()] = reactorSnapshot{st, ps}
		mu.Unlock()
	})
	return out
}

// threadCPU reads a thread's user and system time in clock ticks from
// /proc (0, 0 when it cannot).
func threadCPU(tid int) (usr, sys uint64) {
	if tid == 0 {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0, 0
	}
	usr, _ = strconv.ParseUint(f[11], 10, 64)
	sys, _ = strconv.ParseUint(f[12], 10, 64)
	return usr, sys
}
