// Package bdevtest holds the test scaffolding that bdev module tests share:
// a reactor that the test goroutine steps with Poll and a registry on it,
// IO submission helpers, an RPC server with the generic bdev methods, and
// a runner for SPDK's own scripts/rpc.py. It is imported only by _test.go
// files.
//
// Everything here runs on the test goroutine, which plays the reactor's
// thread: Env.R is never Run, so IO and messages happen inside Env.Poll
// and Env.Do.
package bdevtest

import (
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// Env is one reactor stepped by the test and a registry on it. The
// reactor is closed when the test ends.
type Env struct {
	T   testing.TB
	R   *reactor.Reactor
	Reg *bdev.Registry
}

// New returns an Env on a fresh reactor 0 (not pinned to a core).
func New(t testing.TB) *Env {
	t.Helper()
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	e := &Env{T: t, R: r, Reg: bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})}
	t.Cleanup(e.UnregisterAll)
	return e
}

// UnregisterAll unregisters every bdev, stacked ones before their bases,
// so that their memory and files are released (New's cleanup calls it).
// A bdev with a descriptor the test left open goes only once that closes.
func (e *Env) UnregisterAll() {
	for {
		progress := false
		for _, b := range e.Reg.List() {
			if !b.Removing() && e.Reg.Unregister(b.Name(), nil) == nil {
				progress = true
			}
		}
		if !progress {
			return
		}
	}
}

// Malloc registers a malloc bdev of blocks blocks of bs bytes in ordinary
// pages.
func (e *Env) Malloc(name string, bs uint32, blocks uint64) *malloc.Disk {
	e.T.Helper()
	d, err := malloc.New(malloc.Options{Name: name, BlockSize: bs, NumBlocks: blocks, Memory: hugemem.SmallPages})
	if err != nil {
		e.T.Fatal(err)
	}
	if _, err := e.Reg.Register(d); err != nil {
		e.T.Fatal(err)
	}
	return d
}

// Open opens name for writing and gets its channel on the Env's reactor.
// The caller puts them back (or leaves them to the end of the test).
func (e *Env) Open(name string) (*bdev.Desc, *bdev.IOChannel) {
	e.T.Helper()
	desc, err := e.Reg.Open(name, true, nil)
	if err != nil {
		e.T.Fatal(err)
	}
	ch, err := desc.GetChannel(e.R)
	if err != nil {
		desc.Close()
		e.T.Fatal(err)
	}
	return desc, ch
}

// Submit starts an IO on ch whose status lands in *st (StatusPending
// until it completes).
func Submit(ch *bdev.IOChannel, st *bdev.Status, typ bdev.IOType, off, n uint64, iovs ...[]byte) {
	io := ch.Alloc()
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, off, n, iovs
	*st = bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { *st = io.Status })
}

// Poll runs n reactor iterations at the current time.
func (e *Env) Poll(n int) {
	for i := 0; i < n; i++ {
		e.R.Poll(reactor.Now())
	}
}

// Do submits one IO and polls until it completes; it fails the test if
// ch's pool is empty or after 10 s.
func (e *Env) Do(ch *bdev.IOChannel, typ bdev.IOType, off, n uint64, iovs ...[]byte) bdev.Status {
	e.T.Helper()
	io := ch.Alloc()
	if io == nil {
		e.T.Fatal("IO pool empty")
	}
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, off, n, iovs
	st := bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { st = io.Status })
	e.Wait(func() bool { return st != bdev.StatusPending })
	return st
}

// Wait polls until cond holds; it fails the test after 10 s.
func (e *Env) Wait(cond func() bool) {
	e.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.T.Fatal("timed out polling")
		}
		e.R.Poll(reactor.Now())
	}
}

// Drain polls until ch has no IO outstanding (10 s at most).
func (e *Env) Drain(ch *bdev.IOChannel) {
	deadline := time.Now().Add(10 * time.Second)
	for ch.Outstanding() > 0 && time.Now().Before(deadline) {
		e.R.Poll(reactor.Now())
	}
}
