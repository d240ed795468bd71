package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/internal/uring"
	"hyperpath/reactor"
)

func TestReadWriteRoundTripDirect(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 1<<20, 0x5a)
	d := e.add(Options{Name: "L0", Filename: path})
	if !d.Direct() {
		t.Skip("the temporary directory's file system refuses O_DIRECT")
	}
	if d.Info().BlockSize < 512 || d.Info().NumBlocks != (1<<20)/uint64(d.Info().BlockSize) {
		t.Fatalf("geometry %d x %d", d.Info().BlockSize, d.Info().NumBlocks)
	}
	ch := e.channel("L0")
	bs := int(d.Info().BlockSize)
	w := aligned(t, 8*bs)
	pattern(w, 3)
	// Three iovecs of different lengths, each a multiple of the block size.
	if st := e.Do(ch, bdev.IOWrite, 4, 8, w[:bs], w[bs:4*bs], w[4*bs:]); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	r := aligned(t, 8*bs)
	if st := e.Do(ch, bdev.IORead, 4, 8, r[:2*bs], r[2*bs:]); st != bdev.StatusSuccess {
		t.Fatalf("read: %v", st)
	}
	if !bytes.Equal(r, w) {
		t.Fatal("read back differs from what was written")
	}
	// What reached the file is what we wrote, and nothing else moved.
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[4*bs:12*bs], w) {
		t.Fatal("file contents differ")
	}
	if got[4*bs-1] != 0x5a || got[12*bs] != 0x5a {
		t.Fatal("write spilled outside its range")
	}
	if st := e.Do(ch, bdev.IOFlush, 0, d.Info().NumBlocks); st != bdev.StatusSuccess {
		t.Fatalf("flush: %v", st)
	}
}

func TestMisalignedBuffersUseBufferedTwin(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 256<<10, 0)
	d := e.add(Options{Name: "L0", Filename: path, BlockSize: 4096})
	if !d.Direct() {
		t.Skip("no O_DIRECT here")
	}
	ch := e.channel("L0")
	// Go heap memory at an odd address: O_DIRECT would refuse it.
	raw := make([]byte, 2*4096+1)
	w := raw[1:]
	pattern(w, 9)
	if st := e.Do(ch, bdev.IOWrite, 2, 2, w[:100], w[100:]); st != bdev.StatusSuccess {
		t.Fatalf("misaligned write: %v", st)
	}
	r := aligned(t, 8192)
	if st := e.Do(ch, bdev.IORead, 2, 2, r); st != bdev.StatusSuccess || !bytes.Equal(r, w) {
		t.Fatalf("direct read after buffered write: %v equal=%v", st, bytes.Equal(r, w))
	}
	raw2 := make([]byte, 8193)
	if st := e.Do(ch, bdev.IORead, 2, 2, raw2[1:]); st != bdev.StatusSuccess || !bytes.Equal(raw2[1:], w) {
		t.Fatalf("misaligned read: %v", st)
	}
}

func TestBufferedOption(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 64<<10, 1)
	d := e.add(Options{Name: "B0", Filename: path, Buffered: true})
	if d.Direct() || d.Info().BlockSize != 512 {
		t.Fatalf("direct=%v block size %d, want buffered 512", d.Direct(), d.Info().BlockSize)
	}
	ch := e.channel("B0")
	w := make([]byte, 1536)
	pattern(w, 1)
	if st := e.Do(ch, bdev.IOWrite, 7, 3, w); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	r := make([]byte, 1536)
	if st := e.Do(ch, bdev.IORead, 7, 3, r[:1], r[1:]); st != bdev.StatusSuccess || !bytes.Equal(r, w) {
		t.Fatalf("read %v", st)
	}
	var ds struct {
		Uring struct {
			Filename string `json:"filename"`
			ODirect  bool   `json:"o_direct"`
		} `json:"uring"`
	}
	b, _ := json.Marshal(d.DriverSpecific())
	if err := json.Unmarshal(b, &ds); err != nil || ds.Uring.Filename != path || ds.Uring.ODirect {
		t.Fatalf("driver_specific %s", b)
	}
}

// On tmpfs (which refuses O_DIRECT on older kernels and ZERO_RANGE on all)
// the disk falls back to buffered IO and write_zeroes to punching holes.
func TestTmpfsFallbacks(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "hplocal")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := newEnv(t)
	path := dataFile(t, dir, 64<<10, 0xee)
	d := e.add(Options{Name: "T0", Filename: path, Fallocate: true})
	t.Logf("tmpfs: o_direct=%v block size %d", d.Direct(), d.Info().BlockSize)
	ch := e.channel("T0")
	bs := uint64(d.Info().BlockSize)
	if st := e.Do(ch, bdev.IOWriteZeroes, 1, 2); st != bdev.StatusSuccess {
		t.Fatalf("write_zeroes: %v", st)
	}
	if m := d.zeroMode.Load(); m != zeroPunch {
		t.Fatalf("zero mode %d after tmpfs write_zeroes, want punch (%d)", m, zeroPunch)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got[bs:3*bs], make([]byte, 2*bs)) || got[bs-1] != 0xee || got[3*bs] != 0xee {
		t.Fatal("write_zeroes did not zero exactly its range")
	}
}

func TestUnmapAndWriteZeroes(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 4<<20, 0xff)
	d := e.add(Options{Name: "Z0", Filename: path, Fallocate: true, BlockSize: 4096})
	ch := e.channel("Z0")
	check := func(what string, off, n uint64) {
		t.Helper()
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got[off*4096:(off+n)*4096], make([]byte, n*4096)) {
			t.Fatalf("%s: range not zero", what)
		}
		if off > 0 && got[off*4096-1] == 0 {
			t.Fatalf("%s: zeroed before its range", what)
		}
		if end := (off + n) * 4096; end < uint64(len(got)) && got[end] == 0 {
			t.Fatalf("%s: zeroed after its range", what)
		}
	}
	if st := e.Do(ch, bdev.IOWriteZeroes, 3, 5); st != bdev.StatusSuccess {
		t.Fatalf("write_zeroes: %v", st)
	}
	check("zero range", 3, 5)
	if st := e.Do(ch, bdev.IOUnmap, 20, 4); st != bdev.StatusSuccess {
		t.Fatalf("unmap: %v", st)
	}
	check("unmap", 20, 4)

	// The last resort: writes from the zero page run, across chunks.
	d.zeroMode.Store(zeroWrite)
	if st := e.Do(ch, bdev.IOWriteZeroes, 100, 700); st != bdev.StatusSuccess {
		t.Fatalf("write_zeroes by writes: %v", st)
	}
	check("zero writes", 100, 700)
}

func TestReadOnly(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 64<<10, 0x11)
	e.add(Options{Name: "R0", Filename: path, ReadOnly: true, Fallocate: true})
	ch := e.channel("R0")
	buf := aligned(t, 4096)
	if st := e.Do(ch, bdev.IORead, 0, 8, buf); st != bdev.StatusSuccess || buf[100] != 0x11 {
		t.Fatalf("read: %v", st)
	}
	for _, typ := range []bdev.IOType{bdev.IOWrite, bdev.IOUnmap, bdev.IOWriteZeroes} {
		var iovs [][]byte
		if typ == bdev.IOWrite {
			iovs = [][]byte{buf}
		}
		if st := e.Do(ch, typ, 0, 8, iovs...); st != bdev.StatusFailed {
			t.Errorf("%v on a read-only disk: %v", typ, st)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, make([]byte, 100), 0o600)
	odd := filepath.Join(dir, "odd")
	os.WriteFile(odd, make([]byte, 4096+512), 0o600)
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, make([]byte, 8192), 0o600)
	for _, tc := range []struct {
		name string
		o    Options
		want unix.Errno
	}{
		{"missing file", Options{Name: "x", Filename: filepath.Join(dir, "nope")}, unix.ENOENT},
		{"directory", Options{Name: "x", Filename: dir}, unix.EISDIR},
		{"read-only directory", Options{Name: "x", Filename: dir, ReadOnly: true}, unix.EISDIR},
		{"smaller than a block", Options{Name: "x", Filename: small}, unix.EINVAL},
		{"size not a multiple", Options{Name: "x", Filename: odd, BlockSize: 4096}, unix.EINVAL},
		{"block size not a power of two", Options{Name: "x", Filename: ok, BlockSize: 1536}, unix.EINVAL},
		{"block size below 512", Options{Name: "x", Filename: ok, BlockSize: 256}, unix.EINVAL},
		{"nowait on a file", Options{Name: "x", Filename: ok, NoWait: true}, unix.ENOTSUP},
		{"no name", Options{Filename: ok}, unix.EINVAL},
		{"no filename", Options{Name: "x"}, unix.EINVAL},
	} {
		d, err := New(tc.o)
		if !errors.Is(err, tc.want) || d != nil {
			t.Errorf("%s: New = %v, %v; want %v", tc.name, d, err, tc.want)
		}
	}
}

// A loop device with 4 KiB logical sectors: the block size is detected
// from BLKSSZGET, a smaller one is refused, and IO works.
func TestBlockDevice(t *testing.T) {
	path := dataFile(t, "", 1<<20, 0x33)
	dev := loopDevice(t, path, 4096)
	if _, err := New(Options{Name: "x", Filename: dev, BlockSize: 512}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("512-byte blocks on a 4 KiB device: %v", err)
	}
	e := newEnv(t)
	d := e.add(Options{Name: "Loop0", Filename: dev, Fallocate: true})
	if d.Info().BlockSize != 4096 || d.Info().NumBlocks != 256 || !d.blockDev {
		t.Fatalf("geometry %d x %d blockdev=%v", d.Info().BlockSize, d.Info().NumBlocks, d.blockDev)
	}
	ch := e.channel("Loop0")
	w := aligned(t, 3*4096)
	pattern(w, 5)
	if st := e.Do(ch, bdev.IOWrite, 10, 3, w); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	r := aligned(t, 3*4096)
	if st := e.Do(ch, bdev.IORead, 10, 3, r); st != bdev.StatusSuccess || !bytes.Equal(r, w) {
		t.Fatalf("read: %v", st)
	}
	if st := e.Do(ch, bdev.IOWriteZeroes, 11, 1); st != bdev.StatusSuccess {
		t.Fatalf("write_zeroes: %v", st)
	}
	e.Do(ch, bdev.IORead, 10, 3, r)
	if !bytes.Equal(r[4096:8192], make([]byte, 4096)) || !bytes.Equal(r[:4096], w[:4096]) {
		t.Fatal("write_zeroes on the block device")
	}
	if st := e.Do(ch, bdev.IOFlush, 0, 1); st != bdev.StatusSuccess {
		t.Fatalf("flush: %v", st)
	}
	if _, err := New(Options{Name: "y", Filename: dev, NoWait: true}); err != nil {
		t.Fatalf("nowait on a block device: %v", err)
	}
}

// More IOs than the channel has tasks: the extra ones bounce with NoMem
// and the generic layer retries them.
func TestNoMemRetry(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 1<<20, 0)
	e.add(Options{Name: "Q0", Filename: path, QueueDepth: 4, BlockSize: 4096})
	ch := e.channel("Q0")
	const n = 64
	bufs := aligned(t, n*4096)
	done := 0
	for i := 0; i < n; i++ {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks = bdev.IOWrite, uint64(i), 1
		b := bufs[i*4096 : (i+1)*4096]
		pattern(b, byte(i))
		io.Iovs = append(io.Iovs[:0], b)
		ch.Submit(io, func(io *bdev.IO) {
			if io.Status != bdev.StatusSuccess {
				t.Errorf("write %d: %v", io.OffsetBlocks, io.Status)
			}
			done++
		})
	}
	e.Wait(func() bool { return done == n })
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got[:n*4096], bufs) {
		t.Fatal("file differs after NoMem retries")
	}
}

// A reset completes only after the IO submitted before it.
func TestResetWaitsForOutstanding(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 8<<20, 7)
	e.add(Options{Name: "S0", Filename: path, BlockSize: 4096})
	ch := e.channel("S0")
	buf := aligned(t, 8<<20)
	var order []string
	for i := 0; i < 4; i++ {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks = bdev.IORead, uint64(i)*512, 512
		io.Iovs = append(io.Iovs[:0], buf[i<<21:(i+1)<<21])
		ch.Submit(io, func(*bdev.IO) { order = append(order, "read") })
	}
	e.R.Poll(reactor.Now()) // the reads are now in the kernel
	io := ch.Alloc()
	io.Type = bdev.IOReset
	ch.Submit(io, func(io *bdev.IO) {
		if io.Status != bdev.StatusSuccess {
			t.Errorf("reset: %v", io.Status)
		}
		order = append(order, "reset")
	})
	e.Wait(func() bool { return len(order) == 5 })
	if order[4] != "reset" {
		t.Fatalf("completion order %v", order)
	}
	// With nothing outstanding a reset completes at once.
	if st := e.Do(ch, bdev.IOReset, 0, 0); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
}

// runReactor runs r on its own goroutine until the test ends.
func runReactor(t *testing.T, r *reactor.Reactor) {
	done := make(chan struct{})
	go func() { r.Run(); close(done) }()
	t.Cleanup(func() { r.Stop(); <-done; r.Close() })
}

// Two running adaptive reactors: IO on both, a reset on one waits for the
// other's IO, and completions wake reactors that went to sleep.
func TestRunningReactorsResetAndWakeup(t *testing.T) {
	var rs []*reactor.Reactor
	for i := 0; i < 2; i++ {
		r, err := reactor.New(i, reactor.Options{Core: -1, SpinTime: 50 * time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	reg := bdev.NewRegistry(bdev.Options{Reactors: rs})
	path := dataFile(t, "", 16<<20, 0x42)
	d, err := New(Options{Name: "M0", Filename: path, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(d); err != nil {
		t.Fatal(err)
	}
	desc, err := reg.Open("M0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		runReactor(t, r)
	}
	chans := make([]*bdev.IOChannel, 2)
	for i, r := range rs {
		i := i
		reactor.Call(r, func() { chans[i], err = desc.GetChannel(r) })
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i, r := range rs {
			reactor.Call(r, chans[i].PutChannel)
		}
		desc.Close()
		reg.Unregister("M0", nil)
	})

	// Let both reactors fall asleep, then submit from outside: the IO must
	// complete although nothing but the ring's eventfd can wake reactor 1
	// once the read is in the kernel.
	time.Sleep(20 * time.Millisecond)
	buf := aligned(t, 8<<20)
	var bigDone, resetDone atomic.Int64
	var resetSawData, submitted atomic.Bool
	reactor.Send(rs[1], func(any) {
		io := chans[1].Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks = bdev.IORead, 0, 2048
		io.Iovs = append(io.Iovs[:0], buf)
		chans[1].Submit(io, func(io *bdev.IO) {
			if io.Status == bdev.StatusSuccess {
				bigDone.Store(time.Now().UnixNano())
			}
		})
		submitted.Store(true)
	}, nil)
	for !submitted.Load() {
		time.Sleep(100 * time.Microsecond) // until the read is in flight on reactor 1
	}
	reactor.Send(rs[0], func(any) {
		io := chans[0].Alloc()
		io.Type = bdev.IOReset
		chans[0].Submit(io, func(io *bdev.IO) {
			if io.Status == bdev.StatusSuccess {
				// The read's completion may reach its own callback on
				// reactor 1 a moment after this, but the kernel has
				// filled the whole buffer by now.
				resetSawData.Store(bytes.Count(buf, []byte{0x42}) == len(buf))
				resetDone.Store(time.Now().UnixNano())
			}
		})
	}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for (bigDone.Load() == 0 || resetDone.Load() == 0) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if bigDone.Load() == 0 || resetDone.Load() == 0 {
		t.Fatalf("read done=%v reset done=%v: a completion did not wake its reactor", bigDone.Load() != 0, resetDone.Load() != 0)
	}
	if !resetSawData.Load() {
		t.Fatal("the reset on reactor 0 completed before reactor 1's read")
	}
	if buf[12345] != 0x42 {
		t.Fatal("read returned wrong data")
	}
	if d.submitErrors.Load() != 0 {
		t.Fatalf("%d io_uring_enter errors", d.submitErrors.Load())
	}
}

func TestZeroAllocsPerIO(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 4<<20, 0)
	e.add(Options{Name: "A0", Filename: path, BlockSize: 4096, Fallocate: true})
	ch := e.channel("A0")
	buf := aligned(t, 4096)
	iovs := [][]byte{buf[:1024], buf[1024:]}
	for _, typ := range []bdev.IOType{bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOWriteZeroes} {
		var done int
		cb := func(*bdev.IO) { done++ }
		off := uint64(0)
		allocs := testing.AllocsPerRun(500, func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks = typ, off%1000, 1
			if typ == bdev.IORead || typ == bdev.IOWrite {
				io.Iovs = iovs
			}
			off++
			ch.Submit(io, cb)
			for ch.Outstanding() > 0 {
				e.R.Poll(0)
			}
		})
		if allocs != 0 {
			t.Errorf("%v: %.2f allocations per IO", typ, allocs)
		}
		if done < 500 {
			t.Errorf("%v: %d IOs completed", typ, done)
		}
	}
}

func TestConfigEntryAndDriverSpecific(t *testing.T) {
	path := dataFile(t, "", 64<<10, 0)
	u, _ := bdev.ParseUUID("11111111-2222-3333-4444-555555555555")
	d, err := New(Options{Name: "Aio0", Filename: path, Flavor: FlavorAIO, Fallocate: true, UUID: u, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy()
	m, p := d.ConfigEntry()
	b, _ := json.Marshal(p)
	want := `{"name":"Aio0","block_size":4096,"filename":"` + path + `","readonly":false,"fallocate":true,"uuid":"11111111-2222-3333-4444-555555555555","nowait":false}`
	if m != "bdev_aio_create" || string(b) != want {
		t.Fatalf("config %s %s\nwant %s", m, b, want)
	}
	b, _ = json.Marshal(d.DriverSpecific())
	want = `{"aio":{"filename":"` + path + `","block_size_override":true,"readonly":false,"fallocate":true,"nowait":false,"o_direct":` +
		map[bool]string{true: "true", false: "false"}[d.Direct()] + `}}`
	if string(b) != want {
		t.Fatalf("driver_specific %s\nwant %s", b, want)
	}
	if d.Info().ProductName != "AIO disk" || d.Info().Module != "aio" {
		t.Fatalf("info %+v", d.Info())
	}

	d2, err := New(Options{Name: "Uring0", Filename: path, UUID: u})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Destroy()
	m, p = d2.ConfigEntry()
	b, _ = json.Marshal(p)
	want = `{"name":"Uring0","block_size":` + itoaU(d2.Info().BlockSize) + `,"filename":"` + path + `","uuid":"11111111-2222-3333-4444-555555555555"}`
	if m != "bdev_uring_create" || string(b) != want {
		t.Fatalf("config %s %s\nwant %s", m, b, want)
	}
	if d2.Supports(bdev.IOUnmap) || !d.Supports(bdev.IOUnmap) || !d2.Supports(bdev.IOFlush) {
		t.Fatal("supported IO types")
	}
}

func itoaU(v uint32) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// PutChannel with IO in flight: the channel closes from inside its own
// poller when the last IO completes, and nothing touches the ring after.
func TestPutChannelWithIOInFlight(t *testing.T) {
	e := newEnv(t)
	path := dataFile(t, "", 1<<20, 3)
	d := e.add(Options{Name: "P0", Filename: path, BlockSize: 4096})
	desc, err := e.Reg.Open("P0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer desc.Close()
	ch, err := desc.GetChannel(e.R)
	if err != nil {
		t.Fatal(err)
	}
	// Exactly one full CQ batch, all complete before the poller reaps:
	// the batch that closes the channel is full, so the poller would
	// reap again.
	const n = cqBatch
	buf := aligned(t, n*4096)
	done := 0
	for i := 0; i < n; i++ {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks = bdev.IORead, uint64(i), 1
		io.Iovs = [][]byte{buf[i*4096 : (i+1)*4096]}
		ch.Submit(io, func(*bdev.IO) { done++ })
	}
	e.R.Poll(reactor.Now()) // submitted
	time.Sleep(100 * time.Millisecond)
	ch.PutChannel()
	e.Wait(func() bool { return done == n })
	for i := 0; i < 10; i++ {
		e.R.Poll(reactor.Now())
	}
	if len(*d.chans.Load()) != 0 {
		t.Fatal("channel not closed after its last IO")
	}
	if buf[n*4096-1] != 3 {
		t.Fatal("reads incomplete")
	}
}

// A channel made outside a running reactor gets a ring that any thread may
// drive; one made on a running reactor gets SINGLE_ISSUER|DEFER_TASKRUN
// when the kernel has them.
func TestRingFlagsFollowTheThread(t *testing.T) {
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	d, err := New(Options{Name: "F0", Filename: dataFile(t, "", 64<<10, 9), BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(d)
	defer reg.Unregister("F0", nil)
	desc, _ := reg.Open("F0", true, nil)
	defer desc.Close()
	ch, err := desc.GetChannel(r) // not locked, reactor not running
	if err != nil {
		t.Fatal(err)
	}
	if f := (*d.chans.Load())[0].ring.Flags(); f&uring.SetupSingleIssuer != 0 {
		t.Fatalf("ring made off-reactor has flags %#x", f)
	}
	// Submit and poll from fresh goroutines: whichever threads they land on.
	buf := aligned(t, 4096)
	for i := 0; i < 20; i++ {
		st := bdev.StatusPending
		done := make(chan struct{})
		go func() {
			defer close(done)
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, uint64(i%16), 1, [][]byte{buf}
			ch.Submit(io, func(io *bdev.IO) { st = io.Status })
		}()
		<-done
		deadline := time.Now().Add(5 * time.Second)
		for st == bdev.StatusPending && time.Now().Before(deadline) {
			done := make(chan struct{})
			go func() { r.Poll(reactor.Now()); close(done) }()
			<-done
		}
		if st != bdev.StatusSuccess || buf[0] != 9 {
			t.Fatalf("read %d: %v", i, st)
		}
	}
	ch.PutChannel()
	r.Poll(reactor.Now())

	// On the running reactor.
	runReactor(t, r)
	reactor.Call(r, func() { ch, err = desc.GetChannel(r) })
	if err != nil {
		t.Fatal(err)
	}
	var flags uint32
	reactor.Call(r, func() { flags = (*d.chans.Load())[0].ring.Flags() })
	t.Logf("ring flags on the reactor: %#x", flags)
	probe, perr := uring.New(uring.Options{Entries: 2, Flags: uring.SetupSingleIssuer | uring.SetupDeferTaskrun})
	if perr == nil {
		probe.Close()
		if flags&uring.SetupDeferTaskrun == 0 {
			t.Fatalf("kernel has DEFER_TASKRUN but the reactor's ring has flags %#x", flags)
		}
	}
	reactor.Call(r, ch.PutChannel)
}
