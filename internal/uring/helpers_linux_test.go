package uring

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newRing creates a ring closed at the end of the test.
func newRing(tb testing.TB, opts Options) *Ring {
	tb.Helper()
	r, err := New(opts)
	if err != nil {
		tb.Fatalf("New(%+v): %v", opts, err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return r
}

// alignedBuf returns page-aligned memory outside the Go heap, as O_DIRECT
// and registered buffers want.
func alignedBuf(tb testing.TB, n int) []byte {
	tb.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		tb.Fatalf("mmap %d: %v", n, err)
	}
	tb.Cleanup(func() { unix.Munmap(b) })
	return b
}

// openTemp creates a file of size bytes in a temporary directory and opens
// it read-write, with O_DIRECT if direct. It skips the test when the file
// system refuses O_DIRECT. The file is written out and synced, not sparse:
// reading a hole completes inline, and the tests want reads that go to the
// device and complete from its interrupt.
func openTemp(tb testing.TB, size int64, direct bool) int32 {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "data")
	writeDataFile(tb, path, size)
	return openPath(tb, path, direct)
}

// writeDataFile writes size bytes of a non-zero pattern to path and syncs.
func writeDataFile(tb testing.TB, path string, size int64) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	fill(chunk, 0x5a)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		n := min(int64(len(chunk)), size-off)
		if _, err := f.WriteAt(chunk[:n], off); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		tb.Fatal(err)
	}
}

func openPath(tb testing.TB, path string, direct bool) int32 {
	tb.Helper()
	flags := unix.O_RDWR | unix.O_CLOEXEC
	if direct {
		flags |= unix.O_DIRECT
	}
	fd, err := unix.Open(path, flags, 0)
	if errors.Is(err, unix.EINVAL) && direct {
		tb.Skipf("%s: file system refuses O_DIRECT", path)
	}
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return int32(fd)
}

// getSQE returns an SQE or fails the test.
func getSQE(tb testing.TB, r *Ring) *SQE {
	tb.Helper()
	s := r.GetSQE()
	if s == nil {
		tb.Fatal("GetSQE: SQ full")
	}
	return s
}

// submitWait submits and collects exactly n completions, failing the test
// after 10 s.
func submitWait(tb testing.TB, r *Ring, n int) []CQE {
	tb.Helper()
	out := make([]CQE, 0, n)
	buf := make([]CQE, n)
	for len(out) < n {
		if _, err := r.SubmitAndWaitTimeout(1, 10*time.Second); err != nil {
			tb.Fatalf("SubmitAndWaitTimeout: %v (got %d of %d completions)", err, len(out), n)
		}
		got := r.ReapCQEs(buf[:n-len(out)])
		out = append(out, buf[:got]...)
	}
	return out
}

// one submits and returns the single completion, checking its user data.
func one(tb testing.TB, r *Ring, userData uint64) CQE {
	tb.Helper()
	c := submitWait(tb, r, 1)[0]
	if c.UserData != userData {
		tb.Fatalf("completion user data %#x, want %#x", c.UserData, userData)
	}
	return c
}

func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = seed + byte(i*7+i>>9)
	}
}

func iovecsOf(bufs ...[]byte) []unix.Iovec {
	iovs := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		iovs[i].Base = &b[0]
		iovs[i].SetLen(len(b))
	}
	return iovs
}

// xorshift is a tiny deterministic PRNG that does not allocate.
type xorshift uint64

func (x *xorshift) next() uint64 {
	v := uint64(*x)
	v ^= v << 13
	v ^= v >> 7
	v ^= v << 17
	*x = xorshift(v)
	return v
}

func (x *xorshift) intn(n int) int { return int(x.next() % uint64(n)) }
