//go:build linux

package remote

import (
	"runtime"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/reactor"
)

// stepEnv is a host whose one reactor is stepped by the test goroutine
// (after setup, which a helper goroutine polls through).
// The helper runs except between foreground and background.
type stepEnv struct {
	r    *reactor.Reactor
	reg  *bdev.Registry
	mod  *Module
	stop chan struct{}
	done chan struct{}
}

func newStepEnv(t testing.TB) *stepEnv {
	t.Helper()
	r, err := reactor.New(0, reactor.Options{Core: -1, Name: "host_0"})
	if err != nil {
		t.Fatal(err)
	}
	s := &stepEnv{r: r}
	s.reg = bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	s.mod = New(s.reg, []*reactor.Reactor{r}, quietLog)
	s.reg.RegisterModule(s.mod)
	s.background()
	t.Cleanup(func() {
		s.mod.Close()
		s.foreground()
		r.Close()
	})
	return s
}

// background polls the reactor from a helper goroutine.
func (s *stepEnv) background() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			if s.r.Poll(reactor.Now()) == reactor.Idle {
				runtime.Gosched()
			}
		}
	}()
}

// foreground stops the helper; the caller steps the reactor from now on.
func (s *stepEnv) foreground() { close(s.stop); <-s.done }

// channel opens name and gets its channel (while in background).
func (s *stepEnv) channel(t testing.TB, name string) *bdev.IOChannel {
	t.Helper()
	desc, err := s.reg.Open(name, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ch *bdev.IOChannel
	on(t, s.r, func() { ch, err = desc.GetChannel(s.r) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		on(t, s.r, func() { ch.PutChannel() })
		desc.Close()
	})
	return ch
}

// poll steps the reactor until cond; when idle it parks briefly so that
// other goroutines (the target's) run even with GOMAXPROCS 1, as
// AllocsPerRun sets it.
func (s *stepEnv) poll(cond func() bool) {
	for !cond() {
		if s.r.Poll(reactor.Now()) == reactor.Idle {
			time.Sleep(time.Microsecond)
		}
	}
}

// TestZeroAllocsPerBdevIO: a bdev IO through the generic layer, the
// channel and the initiator, Submit to completion callback, allocates
// nothing; against nvmf/target the count covers the target too (same
// process).
func TestZeroAllocsPerBdevIO(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need a quiet process")
	}
	t.Run("testtarget", func(t *testing.T) {
		tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 65536}}})
		h, p := tg.Addr()
		zeroAllocs(t, cfgFor("Nvme0", h, p, tg.SubNQN()))
	})
	t.Run("nvmf-target", func(t *testing.T) {
		rt := startRealTarget(t, realOpts{})
		zeroAllocs(t, cfgFor("Nvme0", "127.0.0.1", rt.port, realNQN))
	})
}

func zeroAllocs(t *testing.T, cfg AttachConfig) {
	s := newStepEnv(t)
	cfg.HeaderDigest, cfg.DataDigest = true, true
	if _, err := s.mod.Attach(t.Context(), cfg, -1); err != nil {
		t.Fatal(err)
	}
	ch := s.channel(t, "Nvme0n1")
	s.foreground()
	defer s.background()

	n := 0
	var last bdev.Status
	cb := func(io *bdev.IO) { n++; last = io.Status }
	buf4k := [][]byte{make([]byte, 4096)}
	buf64k := [][]byte{make([]byte, 32<<10), make([]byte, 32<<10)}
	for _, c := range []struct {
		name   string
		typ    bdev.IOType
		blocks uint64
		iovs   [][]byte
	}{
		{"read-4k", bdev.IORead, 8, buf4k},
		{"write-4k", bdev.IOWrite, 8, buf4k},
		{"read-64k", bdev.IORead, 128, buf64k},
		{"write-64k-r2t", bdev.IOWrite, 128, buf64k},
		{"flush", bdev.IOFlush, 0, nil},
		{"unmap", bdev.IOUnmap, 64, nil},
		{"write-zeroes", bdev.IOWriteZeroes, 4464, nil},
	} {
		off := uint64(0)
		allocs := testing.AllocsPerRun(200, func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = c.typ, off, c.blocks, c.iovs
			off = (off + 1024) % 60000
			want := n + 1
			ch.Submit(io, cb)
			s.poll(func() bool { return n == want })
		})
		if last != bdev.StatusSuccess {
			t.Errorf("%s: %v", c.name, last)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per IO, want 0", c.name, allocs)
		}
	}
}
