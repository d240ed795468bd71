package vhost

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/bdev/null"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// tenv is a target on running reactors (adaptive, unpinned), the way the
// daemon runs it, with a socket directory short enough for sun_path.
type tenv struct {
	t   testing.TB
	rs  []*reactor.Reactor
	reg *bdev.Registry
	tgt *Target
	dir string
}

type tenvOpts struct {
	reactors int
	poll     bool
	log      *slog.Logger
}

func newTEnv(t testing.TB, o tenvOpts) *tenv {
	t.Helper()
	if o.reactors == 0 {
		o.reactors = 2
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	dir, err := os.MkdirTemp("", "vh")
	if err != nil {
		t.Fatal(err)
	}
	e := &tenv{t: t, dir: dir}
	mode := reactor.ModeAdaptive
	if o.poll {
		mode = reactor.ModePoll
	}
	done := make(chan error, o.reactors)
	for i := range o.reactors {
		r, err := reactor.New(i, reactor.Options{Core: -1, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		e.rs = append(e.rs, r)
	}
	for _, r := range e.rs {
		go func() { done <- r.Run() }()
	}
	e.reg = bdev.NewRegistry(bdev.Options{Reactors: e.rs})
	e.tgt = NewTarget(Options{Registry: e.reg, Reactors: e.rs, SockDir: dir, Logger: o.log})
	t.Cleanup(func() {
		e.tgt.Close()
		for _, r := range e.rs {
			r.Stop()
		}
		for range e.rs {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
		for _, r := range e.rs {
			r.Close()
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("socket directory not empty after Close: %v", ents)
		}
		os.RemoveAll(dir)
	})
	return e
}

func (e *tenv) malloc(name string, bs uint32, blocks uint64) *malloc.Disk {
	e.t.Helper()
	d, err := malloc.New(malloc.Options{Name: name, BlockSize: bs, NumBlocks: blocks, Memory: hugemem.SmallPages})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reg.Register(d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *tenv) null(name string, bs uint32, blocks uint64) {
	e.t.Helper()
	d, err := null.New(null.Options{Name: name, BlockSize: bs, NumBlocks: blocks})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reg.Register(d); err != nil {
		e.t.Fatal(err)
	}
}

func (e *tenv) ctrl(o BlkControllerOptions) *Controller {
	e.t.Helper()
	c, err := e.tgt.CreateBlkController(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}
