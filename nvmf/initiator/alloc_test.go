package initiator

import (
	"runtime"
	"testing"
	"time"

	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// stepper polls a reactor from a goroutine of its own until paused, so
// that a test can take the reactor over and step it itself.
type stepper struct {
	r    *reactor.Reactor
	stop chan struct{}
	done chan struct{}
}

func (s *stepper) start() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			s.r.Poll(reactor.Now())
			runtime.Gosched()
		}
	}()
}

func (s *stepper) pause() { close(s.stop); <-s.done }

// TestZeroAllocsPerIO: reads and writes (in capsule and by R2T, with and
// without digests) allocate nothing on the host, Submit to completion.
func TestZeroAllocsPerIO(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need a quiet process")
	}
	for _, dg := range []bool{false, true} {
		r, err := reactor.New(0, reactor.Options{Core: -1})
		if err != nil {
			t.Fatal(err)
		}
		st := &stepper{r: r}
		st.start()
		tg := startTarget(t, testtarget.Options{C2HSuccess: dg})
		c := connect(t, tg, []*reactor.Reactor{r}, func(o *Options) {
			o.HeaderDigest, o.DataDigest = dg, dg
			o.DisableKeepAlive = true
		})
		q := c.IOQPair(r)
		st.pause()

		completed := 0
		var status proto.Status
		done := func(_ any, cpl *proto.CQE) { completed++; status = cpl.Status }
		small := [][]byte{make([]byte, 2048), make([]byte, 2048)}
		big := [][]byte{make([]byte, 64<<10)}
		cmds := map[string]*Cmd{
			"read-4k":           {Op: OpRead, NSID: 1, NLB: 8, Iovs: small, LenBytes: 4096, Done: done},
			"write-4k-capsule":  {Op: OpWrite, NSID: 1, NLB: 8, Iovs: small, LenBytes: 4096, Done: done},
			"write-64k-r2t":     {Op: OpWrite, NSID: 1, NLB: 128, Iovs: big, LenBytes: 64 << 10, Done: done},
			"read-64k":          {Op: OpRead, NSID: 1, NLB: 128, Iovs: big, LenBytes: 64 << 10, Done: done},
			"flush":             {Op: OpFlush, NSID: 1, Done: done},
			"deallocate-ranges": {Op: OpDeallocate, NSID: 1, Ranges: []proto.DSMRange{{SLBA: 8, NLB: 8}}, Done: done},
		}
		for name, cmd := range cmds {
			allocs := testing.AllocsPerRun(200, func() {
				want := completed + 1
				if err := q.Submit(cmd); err != nil {
					t.Fatal(err)
				}
				// AllocsPerRun runs with GOMAXPROCS 1: park briefly when
				// idle so that the scheduler polls the network and runs
				// the target's goroutine (Gosched would not).
				for completed < want {
					if r.Poll(reactor.Now()) == reactor.Idle {
						time.Sleep(time.Microsecond)
					}
				}
			})
			if !status.Success() {
				t.Errorf("%s: %v", name, status)
			}
			if allocs != 0 {
				t.Errorf("digests=%v %s: %v allocations per command, want 0", dg, name, allocs)
			}
		}
		// A burst of reads: with SUCCESS the host reads them
		// speculatively, several C2HData PDUs per readv.
		read4k := cmds["read-4k"]
		before := q.Stats()
		allocs := testing.AllocsPerRun(100, func() {
			want := completed + 8
			for i := 0; i < 8; i++ {
				if err := q.Submit(read4k); err != nil {
					t.Fatal(err)
				}
			}
			for completed < want {
				if r.Poll(reactor.Now()) == reactor.Idle {
					time.Sleep(time.Microsecond)
				}
			}
		})
		if !status.Success() {
			t.Errorf("read burst: %v", status)
		}
		if allocs != 0 {
			t.Errorf("digests=%v read burst of 8: %v allocations per burst, want 0", dg, allocs)
		}
		if after := q.Stats(); dg && after.Speculated == before.Speculated {
			t.Errorf("digests=%v: no C2HData read speculatively in 100 bursts of 8 reads", dg)
		}
		st.start()
		c.Close()
		st.pause()
		r.Close()
	}
}
