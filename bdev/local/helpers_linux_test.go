package local

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/reactor"
)

// env is one reactor that the test goroutine steps with Poll. The
// goroutine is locked to its OS thread first: the channels' rings are
// SINGLE_ISSUER and must be used from the thread that created them.
type env struct {
	t   testing.TB
	r   *reactor.Reactor
	reg *bdev.Registry
}

func newEnv(t testing.TB) *env {
	t.Helper()
	runtime.LockOSThread()
	lockedCaller = true
	t.Cleanup(func() {
		lockedCaller = false
		runtime.UnlockOSThread()
	})
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &env{t: t, r: r, reg: bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})}
}

// add creates and registers a Disk; it is unregistered at the end.
func (e *env) add(o Options) *Disk {
	e.t.Helper()
	d, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reg.Register(d); err != nil {
		d.Destroy()
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.reg.Unregister(o.Name, nil) })
	return d
}

// channel opens name and gets its channel on the env's reactor; both are
// released at the end of the test.
func (e *env) channel(name string) *bdev.IOChannel {
	e.t.Helper()
	desc, err := e.reg.Open(name, true, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ch, err := desc.GetChannel(e.r)
	if err != nil {
		desc.Close()
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ch.PutChannel()
		e.drain(ch)
		desc.Close()
	})
	return ch
}

// drain polls until ch has no IO outstanding.
func (e *env) drain(ch *bdev.IOChannel) {
	deadline := time.Now().Add(10 * time.Second)
	for ch.Outstanding() > 0 && time.Now().Before(deadline) {
		e.r.Poll(reactor.Now())
	}
}

// do submits one IO and polls until it completes.
func (e *env) do(ch *bdev.IOChannel, typ bdev.IOType, off, n uint64, iovs ...[]byte) bdev.Status {
	e.t.Helper()
	io := ch.Alloc()
	if io == nil {
		e.t.Fatal("IO pool empty")
	}
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, off, n, iovs
	st := bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { st = io.Status })
	e.wait(func() bool { return st != bdev.StatusPending })
	return st
}

// wait polls until cond holds (10 s at most).
func (e *env) wait(cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatal("timed out polling")
		}
		e.r.Poll(reactor.Now())
	}
}

// aligned returns page-aligned memory outside the Go heap, as O_DIRECT
// wants.
func aligned(tb testing.TB, n int) []byte {
	tb.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(b) })
	return b
}

// dataFile writes size bytes of fill to a new file in dir (TempDir when
// empty) and returns its path.
func dataFile(tb testing.TB, dir string, size int, fill byte) string {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	p := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(p, bytes.Repeat([]byte{fill}, size), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func pattern(b []byte, seed byte) {
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
	}
}

// loopDevice attaches path to a free loop device with the given logical
// sector size and detaches it at the end; it skips when that is not
// possible here.
func loopDevice(tb testing.TB, path string, sector int) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		tb.Skip("losetup not installed")
	}
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on",
		"--sector-size", strconv.Itoa(sector), path).CombinedOutput()
	if err != nil {
		tb.Skipf("losetup refused (%v): %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	tb.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			tb.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}
