package reactor

import (
	"sort"
	"sync/atomic"
	"testing"
	"time"
)

// Reference results (2 vCPU AMD EPYC VM, Go 1.26.8, cores 0 and 1):
// see README.md "Benchmarks" for the figures and the command.

// twoReactors starts a pinned group on the first two usable cores (or one
// core twice when only one is usable) in polling mode.
func twoReactors(b *testing.B) (*Group, *Reactor, *Reactor) {
	avail, err := AvailableCores()
	if err != nil {
		b.Fatal(err)
	}
	cores := []int{avail[0], avail[0]}
	if len(avail) > 1 {
		cores[1] = avail[1]
	}
	g, err := NewGroup(GroupOptions{Cores: cores, Reactor: Options{Mode: ModePoll, RingSize: 65536}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Close)
	return g, g.Reactors()[0], g.Reactors()[1]
}

// BenchmarkCrossReactorThroughput: reactor A sends messages to reactor B as
// fast as B's ring accepts them; one op is one message run on B.
func BenchmarkCrossReactorThroughput(b *testing.B) {
	g, ra, rb := twoReactors(b)
	var received atomic.Uint64 // written by B only; read once at the end
	var count uint64
	recv := func(any) { count++ }
	var sent int
	var target int
	var start, end atomic.Int64
	done := make(chan struct{})
	ra.RegisterPoller("sender", func(Ticks) Status {
		if sent == 0 {
			start.Store(time.Now().UnixNano())
		}
		for k := 0; k < 256 && sent < target; k++ {
			if Send(rb, recv, nil) != nil {
				break
			}
			sent++
		}
		return Busy
	}, 0)
	target = b.N
	want, reported := uint64(b.N), false
	rb.RegisterPoller("receiver", func(Ticks) Status {
		if count == want && !reported {
			reported = true
			received.Store(count)
			end.Store(time.Now().UnixNano())
			close(done)
		}
		return Idle
	}, 0)
	b.ReportAllocs()
	b.ResetTimer()
	g.Start()
	<-done
	b.StopTimer()
	g.Stop()
	secs := float64(end.Load()-start.Load()) / 1e9
	b.ReportMetric(float64(received.Load())/secs, "msgs/s")
}

// BenchmarkCrossReactorLatency: a message bounces A -> B -> A; one op is one
// round trip. Reports the one-way latency (half the round trip) p50/p99.
func BenchmarkCrossReactorLatency(b *testing.B) {
	g, ra, rb := twoReactors(b)
	lat := make([]int64, 0, 1<<20)
	var n int
	var t0 Ticks
	done := make(chan struct{})
	var back func(any)
	var ping func(any)
	ping = func(any) { Send(ra, back, nil) }
	back = func(any) {
		t1 := Now()
		if len(lat) < cap(lat) {
			lat = append(lat, int64(t1-t0))
		}
		n++
		if n >= b.N {
			close(done)
			return
		}
		t0 = t1
		Send(rb, ping, nil)
	}
	var started bool
	ra.RegisterPoller("kick", func(now Ticks) Status {
		if !started {
			started = true
			t0 = Now()
			Send(rb, ping, nil)
		}
		return Idle
	}, 0)
	b.ReportAllocs()
	b.ResetTimer()
	g.Start()
	<-done
	b.StopTimer()
	g.Stop()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		toNs := 1e9 / float64(TickRate())
		b.ReportMetric(float64(lat[len(lat)/2])*toNs/2, "p50-oneway-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100])*toNs/2, "p99-oneway-ns")
	}
}

// BenchmarkIdleIteration: one Poll of a reactor with 8 idle active pollers
// and nothing queued.
func BenchmarkIdleIteration(b *testing.B) {
	r, err := New(0, Options{Core: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 8; i++ {
		r.RegisterPoller("idle", func(Ticks) Status { return Idle }, 0)
	}
	now := Now()
	b.ReportAllocs()
	for b.Loop() {
		now++
		r.Poll(now)
	}
}

// BenchmarkSendPollSameThread: the cost of one message on one thread.
func BenchmarkSendPollSameThread(b *testing.B) {
	r, err := New(0, Options{Core: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	fn := func(any) {}
	b.ReportAllocs()
	for b.Loop() {
		Send(r, fn, nil)
		r.Poll(0)
	}
}
