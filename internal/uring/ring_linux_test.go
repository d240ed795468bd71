package uring

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNewOptions(t *testing.T) {
	r := newRing(t, Options{Entries: 5})
	if r.SQEntries() != 8 || r.CQEntries() != 16 {
		t.Fatalf("entries 5: SQ %d CQ %d, want 8 and 16", r.SQEntries(), r.CQEntries())
	}
	if r.Features()&FeatNoDrop == 0 {
		t.Logf("kernel lacks FeatNoDrop: overflowed completions may be dropped")
	}
	r2 := newRing(t, Options{Entries: 4, CQEntries: 100})
	if r2.SQEntries() != 4 || r2.CQEntries() != 128 {
		t.Fatalf("entries 4 cq 100: SQ %d CQ %d, want 4 and 128", r2.SQEntries(), r2.CQEntries())
	}
	if _, err := New(Options{}); !errors.Is(err, ErrEntries) {
		t.Fatalf("zero entries: %v, want ErrEntries", err)
	}
	if _, err := New(Options{Entries: MaxEntries + 1}); !errors.Is(err, ErrEntries) {
		t.Fatalf("too many entries: %v, want ErrEntries", err)
	}
	if _, err := New(Options{Entries: 4, Flags: SetupCQE32}); !errors.Is(err, ErrUnsupportedFlags) {
		t.Fatalf("CQE32: %v, want ErrUnsupportedFlags", err)
	}
	// An unknown flag the kernel must refuse: required fails, optional
	// falls back to the required set.
	const bogus = 1 << 30
	if _, err := New(Options{Entries: 4, Flags: bogus}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("bogus required flag: %v, want EINVAL", err)
	}
	r3 := newRing(t, Options{Entries: 4, OptionalFlags: bogus | SetupSubmitAll})
	if r3.Flags()&bogus != 0 || r3.Flags()&SetupSubmitAll == 0 {
		t.Fatalf("fallback flags %#x: want SubmitAll without the bogus bit", r3.Flags())
	}
}

// TestReactorFlags creates the recommended ring on a locked thread and
// reports what the kernel granted.
func TestReactorFlags(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, Options{Entries: 64, OptionalFlags: ReactorFlags})
	t.Logf("granted flags %#x (want %#x), features %#x", r.Flags(), ReactorFlags, r.Features())
	if r.Flags()&(SetupCoopTaskrun|SetupDeferTaskrun) != 0 && r.Flags()&SetupTaskrunFlag == 0 {
		t.Fatalf("taskrun mode without SetupTaskrunFlag: %#x", r.Flags())
	}
	s := getSQE(t, r)
	s.PrepNop()
	s.UserData = 42
	one(t, r, 42)
}

func TestCloseTwice(t *testing.T) {
	r, err := New(Options{Entries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.RegisterFiles([]int32{0}); !errors.Is(err, ErrClosed) {
		t.Fatalf("register after close: %v, want ErrClosed", err)
	}
}

func TestNop(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	s := getSQE(t, r)
	s.PrepNop()
	s.UserData = 0xdeadbeefcafe
	if c := one(t, r, 0xdeadbeefcafe); c.Res != 0 {
		t.Fatalf("nop res %d", c.Res)
	}
	// Nothing queued, nothing flagged: Submit returns without entering.
	if n, err := r.Submit(); n != 0 || err != nil {
		t.Fatalf("empty Submit: %d, %v", n, err)
	}
	// An abandoned SQE: a NOP that posts no CQE, followed by one that does.
	if r.Features()&FeatCQESkip == 0 {
		t.Skip("kernel without CQE skip")
	}
	s = getSQE(t, r)
	s.PrepNop()
	s.Flags = SQECQESkipSuccess
	s.UserData = 1
	s = getSQE(t, r)
	s.PrepNop()
	s.UserData = 2
	one(t, r, 2)
	if r.CQReady() != 0 {
		t.Fatalf("skipped NOP posted a CQE (%d ready)", r.CQReady())
	}
}

func TestReadvWritev(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			r := newRing(t, Options{Entries: 8})
			fd := openTemp(t, 1<<20, direct)
			mem := alignedBuf(t, 6*4096)
			w := [][]byte{mem[0:4096], mem[4096:12288], mem[12288:16384]}
			for i, b := range w {
				fill(b, byte(i+1))
			}
			rd := [][]byte{mem[16384:20480], mem[20480:24576]}
			wiov, riov := iovecsOf(w...), iovecsOf(rd...)

			s := getSQE(t, r)
			s.PrepWritev(fd, wiov, 64<<10)
			s.UserData = 1
			if c := one(t, r, 1); c.Res != 16384 {
				t.Fatalf("writev res %d, want 16384", c.Res)
			}
			// Read back the middle 8 KiB into two buffers.
			s = getSQE(t, r)
			s.PrepReadv(fd, riov, 64<<10+4096)
			s.UserData = 2
			if c := one(t, r, 2); c.Res != 8192 {
				t.Fatalf("readv res %d, want 8192", c.Res)
			}
			if !bytes.Equal(rd[0], w[1][:4096]) || !bytes.Equal(rd[1], w[1][4096:]) {
				t.Fatal("readv data differs from what writev wrote")
			}
			// Past end of file: a short read of 0 bytes.
			s = getSQE(t, r)
			s.PrepReadv(fd, riov, 1<<20)
			s.UserData = 3
			if c := one(t, r, 3); c.Res != 0 {
				t.Fatalf("readv at EOF res %d, want 0", c.Res)
			}
		})
	}
}

func TestReadWrite(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			r := newRing(t, Options{Entries: 4})
			fd := openTemp(t, 1<<20, direct)
			mem := alignedBuf(t, 2*8192)
			w, rd := mem[:8192], mem[8192:]
			fill(w, 9)
			s := getSQE(t, r)
			s.PrepWrite(fd, w, 4096)
			s.UserData = 1
			if c := one(t, r, 1); c.Res != 8192 {
				t.Fatalf("write res %d", c.Res)
			}
			s = getSQE(t, r)
			s.PrepRead(fd, rd, 4096)
			s.UserData = 2
			if c := one(t, r, 2); c.Res != 8192 || !bytes.Equal(w, rd) {
				t.Fatalf("read res %d, equal %v", c.Res, bytes.Equal(w, rd))
			}
		})
	}
}

func TestFsync(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	fd := openTemp(t, 0, false)
	buf := make([]byte, 4096)
	fill(buf, 3)
	s := getSQE(t, r)
	s.PrepWrite(fd, buf, 0)
	s.UserData = 1
	one(t, r, 1)
	for i, flags := range []uint32{0, FsyncDatasync} {
		s = getSQE(t, r)
		s.PrepFsync(fd, flags)
		s.UserData = uint64(10 + i)
		if c := one(t, r, uint64(10+i)); c.Res != 0 {
			t.Fatalf("fsync flags %d: res %d", flags, c.Res)
		}
	}
}

// fallocateCase writes a pattern, applies mode to [16K, 24K) and checks that
// exactly that range reads back as zeros and the size is unchanged.
func fallocateCase(t *testing.T, mode uint32, wantFewerBlocks bool) {
	const size = 64 << 10
	r := newRing(t, Options{Entries: 4})
	fd := openTemp(t, 0, true)
	mem := alignedBuf(t, 2*size)
	w, rd := mem[:size], mem[size:]
	for i := range w {
		w[i] = 0xab
	}
	s := getSQE(t, r)
	s.PrepWrite(fd, w, 0)
	s.UserData = 1
	if c := one(t, r, 1); c.Res != size {
		t.Fatalf("write res %d", c.Res)
	}
	var before, after unix.Stat_t
	if err := unix.Fstat(int(fd), &before); err != nil {
		t.Fatal(err)
	}
	s = getSQE(t, r)
	s.PrepFallocate(fd, mode, 16<<10, 8<<10)
	s.UserData = 2
	c := one(t, r, 2)
	if c.Res == -int32(unix.EOPNOTSUPP) {
		t.Skipf("file system does not support fallocate mode %#x", mode)
	}
	if c.Res != 0 {
		t.Fatalf("fallocate mode %#x: res %d", mode, c.Res)
	}
	s = getSQE(t, r)
	s.PrepRead(fd, rd, 0)
	s.UserData = 3
	if c := one(t, r, 3); c.Res != size {
		t.Fatalf("read res %d", c.Res)
	}
	for i, b := range rd {
		want := byte(0xab)
		if i >= 16<<10 && i < 24<<10 {
			want = 0
		}
		if b != want {
			t.Fatalf("byte %d = %#x, want %#x", i, b, want)
		}
	}
	if err := unix.Fstat(int(fd), &after); err != nil {
		t.Fatal(err)
	}
	if after.Size != size {
		t.Fatalf("size %d after fallocate, want %d", after.Size, size)
	}
	if wantFewerBlocks && after.Blocks >= before.Blocks {
		t.Fatalf("punch hole left %d blocks (was %d)", after.Blocks, before.Blocks)
	}
}

func TestFallocatePunchHole(t *testing.T) {
	fallocateCase(t, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, true)
}

func TestFallocateZeroRange(t *testing.T) {
	fallocateCase(t, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, false)
}

func TestFixedBuffersAndFiles(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	fd := openTemp(t, 1<<20, true)
	fd2 := openTemp(t, 1<<20, true)
	region := alignedBuf(t, 64<<10)
	other := alignedBuf(t, 8<<10)
	if err := r.RegisterBuffers([][]byte{region, other}); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterFiles([]int32{fd, -1}); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateFiles(1, []int32{fd2}); err != nil {
		t.Fatal(err)
	}

	w, rd := region[4096:12288], region[32768:40960]
	fill(w, 77)
	// Write through file slot 0 with buffer 0, read through the real fd.
	s := getSQE(t, r)
	s.PrepWriteFixed(0, w, 8192, 0)
	s.Flags |= SQEFixedFile
	s.UserData = 1
	if c := one(t, r, 1); c.Res != 8192 {
		t.Fatalf("write_fixed res %d", c.Res)
	}
	s = getSQE(t, r)
	s.PrepReadFixed(fd, rd, 8192, 0)
	s.UserData = 2
	if c := one(t, r, 2); c.Res != 8192 || !bytes.Equal(w, rd) {
		t.Fatalf("read_fixed res %d equal %v", c.Res, bytes.Equal(w, rd))
	}
	// Buffer 1 and file slot 1 (installed by UpdateFiles).
	fill(other, 5)
	s = getSQE(t, r)
	s.PrepWriteFixed(1, other[:4096], 0, 1)
	s.Flags |= SQEFixedFile
	s.UserData = 3
	if c := one(t, r, 3); c.Res != 4096 {
		t.Fatalf("write_fixed slot 1 res %d", c.Res)
	}
	s = getSQE(t, r)
	s.PrepReadFixed(fd2, other[4096:], 0, 1)
	s.UserData = 4
	if c := one(t, r, 4); c.Res != 4096 || !bytes.Equal(other[:4096], other[4096:]) {
		t.Fatalf("read back slot 1: res %d equal %v", c.Res, bytes.Equal(other[:4096], other[4096:]))
	}
	// A buffer outside the registered one is refused.
	s = getSQE(t, r)
	s.PrepReadFixed(fd, alignedBuf(t, 4096), 0, 0)
	s.UserData = 5
	if c := one(t, r, 5); c.Res >= 0 {
		t.Fatalf("read_fixed outside the registered buffer: res %d, want an error", c.Res)
	}
	if err := r.UnregisterFiles(); err != nil {
		t.Fatal(err)
	}
	if err := r.UnregisterBuffers(); err != nil {
		t.Fatal(err)
	}
	// With nothing registered, fixed requests fail.
	s = getSQE(t, r)
	s.PrepReadFixed(fd, rd, 0, 0)
	s.UserData = 6
	if c := one(t, r, 6); c.Res != -int32(unix.EFAULT) {
		t.Fatalf("read_fixed without buffers: res %d, want -EFAULT", c.Res)
	}
}

func TestErrorCompletions(t *testing.T) {
	r := newRing(t, Options{Entries: 8})
	fd := openTemp(t, 1<<20, true)
	if err := r.RegisterFiles([]int32{fd}); err != nil {
		t.Fatal(err)
	}
	mem := alignedBuf(t, 8192)
	// Give the file data: ext4 serves unaligned O_DIRECT reads of a hole
	// without checking alignment.
	s := getSQE(t, r)
	s.PrepWrite(fd, mem, 0)
	s.UserData = 1
	if c := one(t, r, 1); c.Res != 8192 {
		t.Fatalf("write res %d", c.Res)
	}
	cases := []struct {
		name string
		prep func(s *SQE)
		want unix.Errno
	}{
		{"read bad fd", func(s *SQE) { s.PrepRead(1<<20, mem[:4096], 0) }, unix.EBADF},
		{"readv bad fd", func(s *SQE) { s.PrepReadv(-1, iovecsOf(mem[:4096]), 0) }, unix.EBADF},
		{"fsync bad fd", func(s *SQE) { s.PrepFsync(1<<20, 0) }, unix.EBADF},
		{"fixed file out of range", func(s *SQE) {
			s.PrepRead(3, mem[:4096], 0)
			s.Flags |= SQEFixedFile
		}, unix.EBADF},
		{"direct read unaligned offset", func(s *SQE) { s.PrepRead(fd, mem[:4096], 1) }, unix.EINVAL},
		{"direct read unaligned length", func(s *SQE) { s.PrepRead(fd, mem[:100], 0) }, unix.EINVAL},
		{"direct read unaligned buffer", func(s *SQE) { s.PrepRead(fd, mem[1:4097], 0) }, unix.EINVAL},
		{"fallocate bad mode", func(s *SQE) { s.PrepFallocate(fd, 0xffff, 0, 4096) }, unix.EOPNOTSUPP},
		{"unknown opcode", func(s *SQE) { s.PrepRW(250, fd, 0, 0, 0) }, unix.EINVAL},
	}
	for i, tc := range cases {
		s := getSQE(t, r)
		tc.prep(s)
		s.UserData = uint64(100 + i)
		c := one(t, r, uint64(100+i))
		if c.Res != -int32(tc.want) {
			t.Errorf("%s: res %d, want %d (-%v)", tc.name, c.Res, -int32(tc.want), tc.want)
		}
	}
}

func TestSQFull(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	for i := 0; i < 4; i++ {
		s := r.GetSQE()
		if s == nil {
			t.Fatalf("GetSQE %d: nil before the SQ is full", i)
		}
		s.PrepNop()
		s.UserData = uint64(i)
	}
	if s := r.GetSQE(); s != nil {
		t.Fatal("GetSQE on a full SQ returned an entry")
	}
	if r.SQSpace() != 0 || r.SQPending() != 4 {
		t.Fatalf("full SQ: space %d pending %d", r.SQSpace(), r.SQPending())
	}
	n, err := r.Submit()
	if err != nil || n != 4 {
		t.Fatalf("Submit: %d, %v", n, err)
	}
	if r.SQSpace() != 4 {
		t.Fatalf("after Submit: space %d, want 4", r.SQSpace())
	}
	cqes := submitWait(t, r, 4)
	for i, c := range cqes {
		if c.UserData != uint64(i) {
			t.Fatalf("completion %d has user data %d", i, c.UserData)
		}
	}
	if r.GetSQE() == nil {
		t.Fatal("GetSQE nil after the SQ drained")
	}
	r.sqes[(r.sqeTail-1)&r.sqMask].PrepNop()
	submitWait(t, r, 1)
}

// TestCQOverflow fills the CQ beyond its size without reaping: the kernel
// keeps the surplus (FeatNoDrop), flags it, and Submit brings it in once
// there is room, in order and without loss.
func TestCQOverflow(t *testing.T) {
	r := newRing(t, Options{Entries: 4, CQEntries: 8})
	if r.Features()&FeatNoDrop == 0 {
		t.Skip("kernel without FeatNoDrop drops overflowed completions")
	}
	next := uint64(0)
	for round := 0; round < 4; round++ {
		for i := 0; i < 4; i++ {
			s := getSQE(t, r)
			s.PrepNop()
			s.UserData = next
			next++
		}
		if n, err := r.Submit(); err != nil || n != 4 {
			t.Fatalf("round %d: Submit %d, %v", round, n, err)
		}
	}
	if r.CQReady() != 8 {
		t.Fatalf("CQReady %d, want 8 (the CQ size)", r.CQReady())
	}
	if !r.CQOverflowPending() {
		t.Fatal("16 completions in an 8-entry CQ and no overflow flag")
	}
	var buf [16]CQE
	want := uint64(0)
	for want < next {
		n := r.ReapCQEs(buf[:5])
		if n == 0 {
			if _, err := r.Submit(); err != nil {
				t.Fatalf("Submit to flush overflow: %v", err)
			}
			if r.CQReady() == 0 {
				t.Fatalf("overflow not flushed at completion %d", want)
			}
			continue
		}
		for _, c := range buf[:n] {
			if c.UserData != want || c.Res != 0 {
				t.Fatalf("got user data %d res %d, want %d", c.UserData, c.Res, want)
			}
			want++
		}
	}
	if r.CQOverflowPending() || r.CQReady() != 0 || r.CQDropped() != 0 {
		t.Fatalf("after draining: overflow %v ready %d dropped %d", r.CQOverflowPending(), r.CQReady(), r.CQDropped())
	}
}

// TestPeekAdvance covers the zero-copy completion API.
func TestPeekAdvance(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	if r.PeekCQE() != nil {
		t.Fatal("PeekCQE on an empty CQ")
	}
	for i := 0; i < 3; i++ {
		s := getSQE(t, r)
		s.PrepNop()
		s.UserData = uint64(i + 1)
	}
	if _, err := r.SubmitAndWait(3); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c := r.PeekCQE()
		if c == nil || c.UserData != uint64(i+1) {
			t.Fatalf("peek %d: %+v", i, c)
		}
		r.AdvanceCQ(1)
	}
	if r.CQReady() != 0 {
		t.Fatalf("CQReady %d after advancing past everything", r.CQReady())
	}
}

func TestProbe(t *testing.T) {
	r := newRing(t, Options{Entries: 2})
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []uint8{OpNop, OpReadv, OpWritev, OpFsync, OpReadFixed, OpWriteFixed, OpFallocate, OpRead, OpWrite} {
		if !p.Supports(op) {
			t.Errorf("kernel reports opcode %d unsupported", op)
		}
	}
	if p.Supports(250) || p.LastOp() < OpWrite {
		t.Errorf("probe: opcode 250 supported=%v, last op %d", p.Supports(250), p.LastOp())
	}
}

// TestSingleIssuerLockedThread shows the rule a reactor lives by: a
// SINGLE_ISSUER ring is created and driven on one locked OS thread, and the
// kernel refuses submission from any other thread.
func TestSingleIssuerLockedThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, Options{Entries: 8, OptionalFlags: SetupSingleIssuer})
	if r.Flags()&SetupSingleIssuer == 0 {
		t.Skip("kernel without IORING_SETUP_SINGLE_ISSUER")
	}
	s := getSQE(t, r)
	s.PrepNop()
	s.UserData = 1
	one(t, r, 1)

	// Another goroutine locked to its own thread (LockOSThread while this
	// one holds its thread guarantees a different one) must be refused.
	s = getSQE(t, r)
	s.PrepNop()
	s.UserData = 2
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, err := r.Submit()
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, unix.EEXIST) {
		t.Fatalf("Submit from a foreign thread: %v, want EEXIST", err)
	}
	// The SQE is still queued; the owner submits it.
	one(t, r, 2)
}

// TestEventfd checks that a registered eventfd is signalled by completions,
// including a real device completion that arrives while this thread sleeps
// in poll(2), in each task-run mode; and that SetEventfdEnabled(false)
// silences it.
func TestEventfd(t *testing.T) {
	modes := []struct {
		name  string
		flags uint32
	}{
		{"default", 0},
		{"coop", SetupCoopTaskrun},
		{"defer", SetupSingleIssuer | SetupDeferTaskrun},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r, err := New(Options{Entries: 8, Flags: m.flags})
			if errors.Is(err, unix.EINVAL) {
				t.Skipf("kernel refuses flags %#x", m.flags)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(efd)
			if err := r.RegisterEventfd(efd, false); err != nil {
				t.Fatal(err)
			}
			var cnt [8]byte
			drain := func() bool {
				_, err := unix.Read(efd, cnt[:])
				return err == nil
			}

			// Silenced: a NOP completes without a signal.
			if !r.SetEventfdEnabled(false) {
				t.Skip("kernel without CQ ring flags")
			}
			s := getSQE(t, r)
			s.PrepNop()
			s.UserData = 1
			one(t, r, 1)
			if drain() {
				t.Fatal("eventfd signalled while disabled")
			}
			r.SetEventfdEnabled(true)

			// A 1 MiB O_DIRECT read completes from the device's interrupt
			// while we sleep in poll(2) on the eventfd.
			fd := openTemp(t, 4<<20, true)
			buf := alignedBuf(t, 1<<20)
			s = getSQE(t, r)
			s.PrepRead(fd, buf, 1<<20)
			s.UserData = 2
			if _, err := r.Submit(); err != nil {
				t.Fatal(err)
			}
			pfd := []unix.PollFd{{Fd: int32(efd), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(pfd, 5000)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					t.Fatalf("eventfd not signalled within 5 s (ready %d, taskrun %v)", r.CQReady(), r.TaskrunPending())
				}
				break
			}
			if !drain() {
				t.Fatal("poll said readable, read failed")
			}
			// The completion may still need this thread to enter the
			// kernel (coop/defer modes): Submit does that.
			var cq [1]CQE
			for i := 0; r.ReapCQEs(cq[:]) == 0; i++ {
				if _, err := r.Submit(); err != nil {
					t.Fatal(err)
				}
				if i > 1e7 {
					t.Fatal("signalled but no completion reaped")
				}
			}
			if cq[0].UserData != 2 || cq[0].Res != 1<<20 {
				t.Fatalf("completion %+v", cq[0])
			}
			if err := r.UnregisterEventfd(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSQPoll(t *testing.T) {
	r, err := New(Options{Entries: 8, Flags: SetupSQPoll, SQThreadIdleMs: 1})
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		t.Skipf("SQPOLL refused: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd := openTemp(t, 1<<20, false)
	buf := make([]byte, 4096)
	for i := 0; i < 20; i++ {
		s := getSQE(t, r)
		if i%2 == 0 {
			s.PrepNop()
		} else {
			s.PrepRead(fd, buf, 0)
		}
		s.UserData = uint64(i)
		c := one(t, r, uint64(i))
		if c.Res < 0 {
			t.Fatalf("op %d res %d", i, c.Res)
		}
		if i%5 == 0 {
			// Let the kernel thread go idle so the next Submit must wake it.
			for j := 0; j < 50 && !r.sqFlagsNeedWakeup(); j++ {
				runtime.Gosched()
				unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil)
			}
		}
	}
}

func (r *Ring) sqFlagsNeedWakeup() bool { return atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 }

// TestStackBuffersEscape checks the guard in the prep helpers: a buffer
// declared on the caller's stack is moved to the heap by the compiler, so
// the kernel never writes into a goroutine stack the runtime may move.
func TestStackBuffersEscape(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	var cq [4]CQE
	allocs := testing.AllocsPerRun(50, func() {
		var local [512]byte
		s := r.GetSQE()
		s.PrepRead(-1, local[:], 0)
		r.SubmitAndWait(1)
		r.ReapCQEs(cq[:])
	})
	if allocs < 1 {
		t.Fatalf("stack buffer passed to PrepRead did not escape (%v allocs)", allocs)
	}
}

func TestSubmitAndWaitTimeout(t *testing.T) {
	r := newRing(t, Options{Entries: 2})
	start := time.Now()
	_, err := r.SubmitAndWaitTimeout(1, 20*time.Millisecond)
	if !errors.Is(err, unix.ETIME) {
		t.Fatalf("wait with nothing in flight: %v, want ETIME", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timed out after %v, want about 20ms", d)
	}
	s := getSQE(t, r)
	s.PrepNop()
	s.UserData = 3
	if n, err := r.SubmitAndWaitTimeout(1, time.Second); n != 1 || err != nil {
		t.Fatalf("SubmitAndWaitTimeout: %d, %v", n, err)
	}
	one(t, r, 3)
}
