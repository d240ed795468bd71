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
// system refuses O_DIRECT.
func openTemp(tb testing.TB, size int64, direct bool) int32 {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "data")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		tb.Fatal(err)
	}
	return openPath(tb, path, direct)
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
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n {
		if _, err := r.SubmitAndWait(1); err != nil {
			tb.Fatalf("SubmitAndWait: %v", err)
		}
		got := r.ReapCQEs(buf[:n-len(out)])
		out = append(out, buf[:got]...)
		if time.Now().After(deadline) {
			tb.Fatalf("got %d of %d completions after 10 s", len(out), n)
		}
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
