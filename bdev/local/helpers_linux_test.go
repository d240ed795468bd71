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

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/bdev/internal/bdevtest"
)

// env is a bdevtest.Env that the test goroutine steps with Poll. The
// goroutine is locked to its OS thread first: the channels' rings are
// SINGLE_ISSUER and must be used from the thread that created them.
type env struct {
	*bdevtest.Env
}

func newEnv(t testing.TB) *env {
	t.Helper()
	runtime.LockOSThread()
	lockedCaller = true
	t.Cleanup(func() {
		lockedCaller = false
		runtime.UnlockOSThread()
	})
	return &env{Env: bdevtest.New(t)}
}

// add creates and registers a Disk; it is unregistered at the end.
func (e *env) add(o Options) *Disk {
	e.T.Helper()
	d, err := New(o)
	if err != nil {
		e.T.Fatal(err)
	}
	if _, err := e.Reg.Register(d); err != nil {
		d.Destroy()
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { e.Reg.Unregister(o.Name, nil) })
	return d
}

// channel opens name and gets its channel on the env's reactor; both are
// released at the end of the test.
func (e *env) channel(name string) *bdev.IOChannel {
	e.T.Helper()
	desc, ch := e.Open(name)
	e.T.Cleanup(func() {
		ch.PutChannel()
		e.Drain(ch)
		desc.Close()
	})
	return ch
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
