package uring

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The model test drives a ring through many thousands of random requests
// at every queue depth from 1 to 128 and checks each completion against a
// deliberately simple reference: a byte slice holding what the file must
// contain, and a table of the requests in flight. Small rings (8 SQEs,
// 16 CQEs) make the SQ fill and the CQ overflow constantly, so the ring
// indices wrap thousands of times.

const (
	modelBS     = 512
	modelBlocks = 256
	maxQD       = 128
)

const (
	kindNop = iota
	kindRead
	kindWrite
	kindReadv
	kindWritev
	numKinds
)

type modelOp struct {
	kind  int
	block int
	gen   uint64
	busy  bool
	buf   []byte
	iov   []unix.Iovec // two halves of buf
}

type modelRun struct {
	t     *testing.T
	r     *Ring
	fd    int32
	rng   xorshift
	file  []byte // reference contents
	ops   [maxQD]modelOp
	free  []int
	bbusy [modelBlocks]bool
	cq    [32]CQE

	issued, submitted, completed int
	sqFullHits, waits            int
	maxCQReady                   uint32
	overflowSeen                 int
}

func newModelRun(t *testing.T, r *Ring, seed uint64) *modelRun {
	m := &modelRun{t: t, r: r, rng: xorshift(seed), file: make([]byte, modelBS*modelBlocks)}
	m.fd = openTemp(t, int64(len(m.file)), false)
	if n, err := unix.Pread(int(m.fd), m.file, 0); err != nil || n != len(m.file) {
		t.Fatalf("pread: %d, %v", n, err)
	}
	mem := make([]byte, maxQD*modelBS)
	for i := range m.ops {
		op := &m.ops[i]
		op.buf = mem[i*modelBS : (i+1)*modelBS]
		op.iov = iovecsOf(op.buf[:modelBS/2], op.buf[modelBS/2:])
		m.free = append(m.free, i)
	}
	return m
}

// issue fills one SQE with a random request; false when the SQ is full.
func (m *modelRun) issue() bool {
	s := m.r.GetSQE()
	if s == nil {
		m.sqFullHits++
		return false
	}
	slot := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	op := &m.ops[slot]
	op.kind = m.rng.intn(numKinds)
	b := m.rng.intn(modelBlocks)
	for m.bbusy[b] {
		b = (b + 1) % modelBlocks
	}
	op.block, op.busy = b, true
	op.gen++
	off := uint64(b * modelBS)
	switch op.kind {
	case kindNop:
		s.PrepNop()
	case kindRead:
		clear(op.buf)
		s.PrepRead(m.fd, op.buf, off)
	case kindReadv:
		clear(op.buf)
		s.PrepReadv(m.fd, op.iov, off)
	case kindWrite, kindWritev:
		for i := range op.buf {
			op.buf[i] = byte(m.rng.next())
		}
		if op.kind == kindWrite {
			s.PrepWrite(m.fd, op.buf, off)
		} else {
			s.PrepWritev(m.fd, op.iov, off)
		}
	}
	if op.kind != kindNop {
		m.bbusy[b] = true
	}
	s.UserData = op.gen<<8 | uint64(slot)
	m.issued++
	return true
}

func (m *modelRun) complete(c CQE) {
	t := m.t
	slot := int(c.UserData & 0xff)
	if slot >= maxQD {
		t.Fatalf("completion for unknown slot %d (user data %#x)", slot, c.UserData)
	}
	op := &m.ops[slot]
	if !op.busy || op.gen != c.UserData>>8 {
		t.Fatalf("completion %#x: slot %d busy=%v gen=%d: duplicate or stale", c.UserData, slot, op.busy, op.gen)
	}
	ref := m.file[op.block*modelBS : (op.block+1)*modelBS]
	switch op.kind {
	case kindNop:
		if c.Res != 0 {
			t.Fatalf("nop res %d", c.Res)
		}
	case kindRead, kindReadv:
		if c.Res != modelBS {
			t.Fatalf("read block %d res %d", op.block, c.Res)
		}
		if !bytes.Equal(op.buf, ref) {
			first, last := -1, -1
			for i := range ref {
				if op.buf[i] != ref[i] {
					if first < 0 {
						first = i
					}
					last = i
				}
			}
			t.Fatalf("read block %d (kind %d, slot %d): data differs from the model in bytes [%d, %d]; got %x want %x",
				op.block, op.kind, slot, first, last, op.buf[first:min(first+16, modelBS)], ref[first:min(first+16, modelBS)])
		}
	case kindWrite, kindWritev:
		if c.Res != modelBS {
			t.Fatalf("write block %d res %d", op.block, c.Res)
		}
		copy(ref, op.buf)
	}
	op.busy = false
	if op.kind != kindNop {
		m.bbusy[op.block] = false
	}
	m.free = append(m.free, slot)
	m.completed++
}

func (m *modelRun) run(qd, nops int) {
	t, r := m.t, m.r
	start := m.issued
	for m.completed-start < nops {
		sqFull := false
		for m.issued-m.completed < qd && m.issued-start < nops {
			if !m.issue() {
				sqFull = true
				break
			}
		}
		// Sometimes hold SQEs back so that batches of varying size go in.
		if sqFull || m.issued-m.completed == qd || m.issued-start == nops || m.rng.intn(3) == 0 {
			n, err := r.Submit()
			if err != nil {
				t.Fatalf("qd %d: Submit: %v", qd, err)
			}
			m.submitted += n
		}
		if got := int(r.SQPending()); got != m.issued-m.submitted {
			t.Fatalf("qd %d: SQPending %d, model %d", qd, got, m.issued-m.submitted)
		}
		ready := r.CQReady()
		if ready > r.CQEntries() {
			t.Fatalf("CQReady %d exceeds the CQ size %d", ready, r.CQEntries())
		}
		m.maxCQReady = max(m.maxCQReady, ready)
		if r.CQOverflowPending() {
			m.overflowSeen++
		}
		n := r.ReapCQEs(m.cq[:1+m.rng.intn(len(m.cq))])
		for _, c := range m.cq[:n] {
			m.complete(c)
		}
		if n == 0 && m.issued == m.submitted && m.issued > m.completed && r.CQReady() == 0 {
			if _, err := r.SubmitAndWaitTimeout(1, 10*time.Second); err != nil {
				t.Fatalf("qd %d: %d in flight, none completes: %v", qd, m.issued-m.completed, err)
			}
			m.waits++
		}
	}
	if m.issued != m.completed || r.CQReady() != 0 || r.SQPending() != 0 || r.CQOverflowPending() {
		t.Fatalf("qd %d drained: issued %d completed %d ready %d pending %d overflow %v",
			qd, m.issued, m.completed, r.CQReady(), r.SQPending(), r.CQOverflowPending())
	}
}

func TestWraparoundModel(t *testing.T) {
	opsPerQD := 120
	if testing.Short() {
		opsPerQD = 20
	}
	configs := []struct {
		name string
		opts Options
	}{
		{"sq8-cq16", Options{Entries: 8, CQEntries: 16}},
		{"sq128-cq256", Options{Entries: 128}},
		{"sq4-cq8-reactor", Options{Entries: 4, CQEntries: 8, OptionalFlags: ReactorFlags}},
	}
	for i, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := newRing(t, cfg.opts)
			m := newModelRun(t, r, uint64(0x9e3779b97f4a7c15)+uint64(i))
			for qd := 1; qd <= maxQD; qd++ {
				m.run(qd, opsPerQD)
			}
			if r.CQDropped() != 0 || r.SQDropped() != 0 {
				t.Fatalf("kernel dropped CQEs %d SQEs %d", r.CQDropped(), r.SQDropped())
			}
			if m.submitted != m.issued {
				t.Fatalf("Submit reported %d consumed of %d issued", m.submitted, m.issued)
			}
			// The file read with plain pread(2) equals the model.
			got := make([]byte, len(m.file))
			if n, err := unix.Pread(int(m.fd), got, 0); err != nil || n != len(got) {
				t.Fatalf("pread: %d, %v", n, err)
			}
			if !bytes.Equal(got, m.file) {
				t.Fatal("file contents differ from the model")
			}
			laps := uint32(m.issued) / r.SQEntries()
			t.Logf("%d ops, SQ wrapped %d times, SQ-full %d, waits %d, max CQ fill %d/%d, overflow seen %d polls",
				m.issued, laps, m.sqFullHits, m.waits, m.maxCQReady, r.CQEntries(), m.overflowSeen)
			if cfg.opts.Entries < maxQD && m.sqFullHits == 0 {
				t.Error("small SQ never filled: the test lost its point")
			}
		})
	}
}

// TestZeroAllocsPerOp asserts the hot path's contract: getting an SQE,
// preparing it, submitting, and reaping allocate nothing.
func TestZeroAllocsPerOp(t *testing.T) {
	cases := []struct {
		name   string
		direct bool
		flags  uint32
		fixed  bool
		kind   int
	}{
		{"nop", false, 0, false, kindNop},
		{"readv-buffered", false, 0, false, kindReadv},
		{"read-direct", true, 0, false, kindRead},
		{"readv-direct-reactorflags", true, ReactorFlags, false, kindReadv},
		{"write-fixed-direct-reactorflags", true, ReactorFlags, true, kindWrite},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := newRing(t, Options{Entries: 16, OptionalFlags: tc.flags})
			fd := openTemp(t, 1<<20, tc.direct)
			buf := alignedBuf(t, 4096)
			iovs := iovecsOf(buf)
			if tc.fixed {
				if err := r.RegisterBuffers([][]byte{buf}); err != nil {
					t.Fatal(err)
				}
				if err := r.RegisterFiles([]int32{fd}); err != nil {
					t.Fatal(err)
				}
			}
			var cq [4]CQE
			var off uint64
			bad := 0
			op := func() {
				s := r.GetSQE()
				switch {
				case tc.kind == kindNop:
					s.PrepNop()
				case tc.kind == kindReadv:
					s.PrepReadv(fd, iovs, off)
				case tc.kind == kindRead:
					s.PrepRead(fd, buf, off)
				case tc.fixed:
					s.PrepWriteFixed(0, buf, off, 0)
					s.Flags |= SQEFixedFile
				}
				s.UserData = off
				if _, err := r.Submit(); err != nil {
					bad++
				}
				for spins := 0; r.ReapCQEs(cq[:]) == 0; spins++ {
					if _, err := r.Submit(); err != nil || spins > 1e7 {
						bad++
						return
					}
				}
				if cq[0].Res < 0 || cq[0].UserData != off {
					bad++
				}
				off = (off + 4096) % (1 << 20)
			}
			op() // warm up
			allocs := testing.AllocsPerRun(500, op)
			if bad != 0 {
				t.Fatalf("%d ops failed", bad)
			}
			if allocs != 0 {
				t.Fatalf("%v allocations per op, want 0", allocs)
			}
		})
	}
}

func ExampleRing() {
	// A reactor locks its OS thread first: with SetupSingleIssuer the
	// kernel accepts submissions only from the thread that created the ring.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(Options{Entries: 32, OptionalFlags: ReactorFlags})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	s := r.GetSQE() // nil would mean: SQ full, Submit first
	s.PrepNop()
	s.UserData = 7

	var cq [8]CQE
	for {
		if _, err := r.Submit(); err != nil { // a no-op when idle
			fmt.Println(err)
			return
		}
		if n := r.ReapCQEs(cq[:]); n > 0 { // no system call
			fmt.Println(cq[0].UserData, cq[0].Res)
			return
		}
	}
	// Output: 7 0
}
