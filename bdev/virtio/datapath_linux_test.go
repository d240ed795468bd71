package virtio

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
)

// oneIO submits the same IO again and again without allocating: the
// callback is a method value made once.
type oneIO struct {
	e    *env
	ch   *bdev.IOChannel
	typ  bdev.IOType
	off  uint64
	n    uint64
	iovs [][]byte
	st   bdev.Status
	cb   bdev.CompletionFunc
}

func newOneIO(e *env, ch *bdev.IOChannel, typ bdev.IOType, off, n uint64, iovs ...[]byte) *oneIO {
	o := &oneIO{e: e, ch: ch, typ: typ, off: off, n: n, iovs: iovs}
	o.cb = o.done
	return o
}

func (o *oneIO) done(io *bdev.IO) { o.st = io.Status }

func (o *oneIO) run() {
	io := o.ch.Alloc()
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = o.typ, o.off, o.n, o.iovs
	o.st = bdev.StatusPending
	o.ch.Submit(io, o.cb)
	for o.st == bdev.StatusPending {
		o.e.r.Poll(reactor.Now())
	}
}

// TestAllocsPerIO locks in zero allocations on the submit/complete path:
// zero-copy and bounced reads and writes, flush, write zeroes and discard.
func TestAllocsPerIO(t *testing.T) {
	file := shmFile(t, 4<<20, 0)
	qsd := startQSD(t, qsdConfig{File: file})
	e := newEnv(t)
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 128})
	ch := e.channel("Virtio0")
	zc := d.AllocBuffer(4096)
	heap := make([]byte, 4096)
	cases := []*oneIO{
		newOneIO(e, ch, bdev.IORead, 8, 8, zc),
		newOneIO(e, ch, bdev.IOWrite, 16, 8, zc),
		newOneIO(e, ch, bdev.IORead, 24, 8, heap),
		newOneIO(e, ch, bdev.IOWrite, 32, 8, heap),
		newOneIO(e, ch, bdev.IOFlush, 0, 0),
		newOneIO(e, ch, bdev.IOWriteZeroes, 40, 8),
		newOneIO(e, ch, bdev.IOUnmap, 48, 8),
	}
	for _, c := range cases {
		c.run() // warm up
		if c.st != bdev.StatusSuccess {
			t.Fatalf("%v: %v", c.typ, c.st)
		}
		if a := testing.AllocsPerRun(200, c.run); a != 0 {
			t.Errorf("%v (%d-byte buffers, zero copy %v): %v allocations per IO", c.typ, len(heap), len(c.iovs) > 0 && &c.iovs[0][0] == &zc[0], a)
		}
	}
}

// loader keeps one read per buffer in flight on one channel until
// stopped, counting outcomes. It runs on the channel's reactor.
type loader struct {
	ch       *bdev.IOChannel
	slots    []loadSlot
	blocks   uint64
	next     uint64
	stop     bool
	ok, fail int
	inflight int
	cb       bdev.CompletionFunc
}

type loadSlot struct{ iovs [][]byte }

func newLoader(ch *bdev.IOChannel, bufs [][]byte) *loader {
	l := &loader{ch: ch, blocks: ch.Bdev().Info().NumBlocks, slots: make([]loadSlot, len(bufs))}
	for i, b := range bufs {
		l.slots[i].iovs = [][]byte{b}
	}
	l.cb = l.done
	return l
}

func (l *loader) submit(s *loadSlot) {
	io := l.ch.Alloc()
	nb := uint64(len(s.iovs[0])) / 512
	io.Type, io.NumBlocks, io.Iovs, io.Ctx = bdev.IORead, nb, s.iovs, s
	io.OffsetBlocks = (l.next * 7919 * nb) % (l.blocks - nb)
	l.next++
	l.inflight++
	l.ch.Submit(io, l.cb)
}

func (l *loader) start() {
	for i := range l.slots {
		l.submit(&l.slots[i])
	}
}

func (l *loader) done(io *bdev.IO) {
	l.inflight--
	if io.Status == bdev.StatusSuccess {
		l.ok++
	} else {
		l.fail++
	}
	if !l.stop {
		l.submit(io.Ctx.(*loadSlot))
	}
}

// TestConnectionLoss kills qemu-storage-daemon (SIGKILL, by PID) under a
// queue depth of 32: every outstanding IO must complete with
// StatusFailed, the bdev must report failed, and new IO must fail at once.
func TestConnectionLoss(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 256 << 20})
	e := newEnv(t)
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 64})
	ch := e.channel("Virtio0")
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = d.AllocBuffer(4096)
	}
	l := newLoader(ch, bufs)
	l.start()
	e.wait(func() bool { return l.ok >= 2000 })
	qsd.kill()
	e.wait(func() bool { return l.fail > 0 })
	l.stop = true
	e.wait(func() bool { return l.inflight == 0 })
	if ch.Outstanding() != 0 {
		t.Fatalf("%d IOs outstanding after the failure", ch.Outstanding())
	}
	if d.State() != StateFailed || !strings.Contains(d.LastError(), "lost") {
		t.Fatalf("state %v, last error %q", d.State(), d.LastError())
	}
	if st := e.do(ch, bdev.IORead, 0, 8, bufs[0]); st != bdev.StatusFailed {
		t.Fatalf("IO on a failed bdev: %v", st)
	}
	t.Logf("%d reads succeeded before the kill, %d failed after", l.ok, l.fail)
}

// TestReconnect restarts qemu-storage-daemon on the same socket and file:
// with CtrlrLossTimeout Forever the bdev holds a read submitted while it
// is disconnected, reconnects, and serves it with the data written before
// the restart.
func TestReconnect(t *testing.T) {
	file := shmFile(t, 4<<20, 0)
	qsd := startQSD(t, qsdConfig{File: file})
	e := newEnv(t)
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, CtrlrLossTimeout: Forever,
		ReconnectDelay: 20 * time.Millisecond, QueueSize: 32})
	ch := e.channel("Virtio0")
	buf := d.AllocBuffer(8192)
	pattern(buf, 3)
	if st := e.do(ch, bdev.IOWrite, 64, 16, buf); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	qsd.kill()
	e.wait(func() bool { return d.State() == StateReconnecting })
	clear(buf)
	io := ch.Alloc()
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, 64, 16, [][]byte{buf}
	st := bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { st = io.Status })
	for range 200 {
		e.r.Poll(reactor.Now())
		time.Sleep(100 * time.Microsecond)
	}
	if st != bdev.StatusPending {
		t.Fatalf("read while disconnected completed with %v; want it held", st)
	}
	os.Remove(qsd.sock)
	startQSD(t, qsdConfig{File: file, Sock: qsd.sock})
	e.wait(func() bool { return st != bdev.StatusPending })
	if st != bdev.StatusSuccess {
		t.Fatalf("held read after reconnect: %v", st)
	}
	want := make([]byte, 8192)
	pattern(want, 3)
	if !bytes.Equal(buf, want) {
		t.Fatal("data written before the restart is not read back")
	}
	if d.State() != StateConnected || d.Reconnects() != 1 || d.Stats().HeldIOs != 1 {
		t.Fatalf("state %v, %d reconnects, %d held", d.State(), d.Reconnects(), d.Stats().HeldIOs)
	}
}

// TestMultiQueue runs reactor groups on core masks 0x1 and 0x3 against a
// two-queue export: each reactor's channel holds a queue of its own and
// writes and verifies its own stripe. With more reactors than queues the
// extra channel is refused with a clear error.
func TestMultiQueue(t *testing.T) {
	file := shmFile(t, 16<<20, 0)
	for _, mask := range []string{"0x1", "0x3"} {
		t.Run(mask, func(t *testing.T) {
			cores, err := reactor.ParseCoreMask(mask)
			if err != nil {
				t.Fatal(err)
			}
			avail, _ := reactor.AvailableCores()
			for _, c := range cores {
				if !containsInt(avail, c) {
					t.Skipf("core %d not available (have %v)", c, avail)
				}
			}
			g, err := reactor.NewGroup(reactor.GroupOptions{Cores: cores})
			if err != nil {
				t.Fatal(err)
			}
			g.Start()
			t.Cleanup(func() { g.Stop(); g.Close() })
			qsd := startQSD(t, qsdConfig{File: file, Queues: 2})
			reg := bdev.NewRegistry(bdev.Options{Reactors: g.Reactors()})
			if err := Attach(reg, Options{Name: "Virtio0", SocketPath: qsd.sock, QueueCount: 2, QueueSize: 64}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				done := make(chan struct{})
				reg.Unregister("Virtio0", func(error) { close(done) })
				<-done
			})
			b, _ := reg.Get("Virtio0")
			d := b.Device().(*Disk)
			desc, err := reg.Open("Virtio0", true, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer desc.Close()
			var wg sync.WaitGroup
			errs := make(chan string, len(cores))
			for i, r := range g.Reactors() {
				wg.Add(1)
				stripe := uint64(i) * 4096 // blocks
				buf := d.AllocBuffer(64 << 10)
				err := reactor.Call(r, func() {
					ch, err := desc.GetChannel(r)
					if err != nil {
						errs <- err.Error()
						wg.Done()
						return
					}
					stripeIO(ch, stripe, buf, byte(i+1), func(msg string) {
						ch.PutChannel()
						if msg != "" {
							errs <- msg
						}
						wg.Done()
					})
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			close(errs)
			for m := range errs {
				t.Error(m)
			}
			for i, q := range d.queues {
				n := d.queueCounters(q).requests
				if used := i < len(cores); used != (n > 0) {
					t.Errorf("queue %d served %d requests with %d reactor(s)", i, n, len(cores))
				}
			}
			for i := range cores {
				want := make([]byte, 64<<10)
				pattern(want, byte(i+1))
				for k := range uint64(16) {
					if got := fileAt(t, file, int64((uint64(i)*4096+k*128)*512), len(want)); !bytes.Equal(got, want) {
						t.Fatalf("reactor %d stripe %d not in the file", i, k)
					}
				}
			}
		})
	}

	t.Run("more-reactors-than-queues", func(t *testing.T) {
		qsd := startQSD(t, qsdConfig{NullBytes: 1 << 20})
		r0, _ := reactor.New(0, reactor.Options{Core: -1})
		r1, _ := reactor.New(1, reactor.Options{Core: -1})
		defer r0.Close()
		defer r1.Close()
		reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r0, r1}})
		if err := Attach(reg, Options{Name: "V", SocketPath: qsd.sock}); err != nil {
			t.Fatal(err)
		}
		defer reg.Unregister("V", nil)
		desc, _ := reg.Open("V", true, nil)
		defer desc.Close()
		ch0, err := desc.GetChannel(r0)
		if err != nil {
			t.Fatal(err)
		}
		defer ch0.PutChannel()
		_, err = desc.GetChannel(r1)
		if err == nil || !strings.Contains(err.Error(), "vq_count >= the number of reactors") {
			t.Fatalf("second channel on a 1-queue device: %v", err)
		}
	})
}

// stripeIO writes buf (filled with pattern seed) 16 times across a stripe
// starting at block first, 4 at a time, reads each back and compares; then
// calls done with "" or a failure. Runs on the channel's reactor.
func stripeIO(ch *bdev.IOChannel, first uint64, buf []byte, seed byte, done func(string)) {
	const n = 16
	pattern(buf, seed)
	nb := uint64(len(buf)) / 512
	issued, finished := 0, 0
	var failed string
	var submit func()
	submit = func() {
		k := uint64(issued)
		issued++
		w := ch.Alloc()
		w.Type, w.OffsetBlocks, w.NumBlocks, w.Iovs = bdev.IOWrite, first+k*nb, nb, [][]byte{buf}
		ch.Submit(w, func(io *bdev.IO) {
			if io.Status != bdev.StatusSuccess && failed == "" {
				failed = "write: " + io.Status.String()
			}
			back := make([]byte, len(buf))
			r := ch.Alloc()
			r.Type, r.OffsetBlocks, r.NumBlocks, r.Iovs = bdev.IORead, first+k*nb, nb, [][]byte{back}
			ch.Submit(r, func(io *bdev.IO) {
				if (io.Status != bdev.StatusSuccess || !bytes.Equal(back, buf)) && failed == "" {
					failed = "read back differs or failed: " + io.Status.String()
				}
				finished++
				if issued < n {
					submit()
				} else if finished == n {
					done(failed)
				}
			})
		})
	}
	for range 4 {
		submit()
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestDeepQueueVerify keeps 48 IOs outstanding on a 16-entry ring (five
// requests fit at a time, the rest bounce off with NoMem and are retried)
// and checks that every IO completes with its own data: writes of distinct
// patterns, half zero copy and half bounced, then reads compared block by
// block.
func TestDeepQueueVerify(t *testing.T) {
	const nio, bs = 48, 8192
	file := shmFile(t, 8<<20, 0)
	qsd := startQSD(t, qsdConfig{File: file})
	e := newEnv(t)
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 16, BounceChunks: 8})
	ch := e.channel("Virtio0")
	bufs := make([][]byte, nio)
	for i := range bufs {
		if i%2 == 0 {
			bufs[i] = d.AllocBuffer(bs)
		} else {
			bufs[i] = make([]byte, bs)
		}
	}
	run := func(typ bdev.IOType) {
		done, failed := 0, 0
		for i := range nio {
			if typ == bdev.IOWrite {
				pattern(bufs[i], byte(i))
			} else {
				clear(bufs[i])
			}
			io := ch.Alloc()
			// Spread the IOs so that neighbours in the ring are far apart
			// on disk.
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, uint64((i*37)%nio)*bs/512, bs/512, bufs[i:i+1]
			ch.Submit(io, func(io *bdev.IO) {
				done++
				if io.Status != bdev.StatusSuccess {
					failed++
				}
			})
		}
		e.wait(func() bool { return done == nio })
		if failed != 0 {
			t.Fatalf("%v: %d of %d failed", typ, failed, nio)
		}
	}
	run(bdev.IOWrite)
	for i := range nio {
		want := make([]byte, bs)
		pattern(want, byte(i))
		if got := fileAt(t, file, int64((i*37)%nio)*bs, bs); !bytes.Equal(got, want) {
			t.Fatalf("write %d landed wrong in the file", i)
		}
	}
	run(bdev.IORead)
	for i := range nio {
		want := make([]byte, bs)
		pattern(want, byte(i))
		if !bytes.Equal(bufs[i], want) {
			t.Fatalf("read %d returned another IO's data", i)
		}
	}
	if s := d.Stats(); s.BouncedIOs != nio || s.ZeroCopyIOs != nio {
		t.Fatalf("stats %+v, want %d bounced and %d zero copy", s, nio, nio)
	}
}

// TestAdaptiveReactorWakes runs the bdev on a reactor that sleeps after
// 1 µs without work: each read is submitted, the reactor goes to sleep
// before qemu-storage-daemon answers, and only the call eventfd (armed by
// the poller's Arm hook) can wake it for the completion.
func TestAdaptiveReactorWakes(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 64 << 20})
	r, err := reactor.New(0, reactor.Options{Core: -1, SpinTime: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	if err := Attach(reg, Options{Name: "V", SocketPath: qsd.sock}); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run() }()
	defer func() {
		r.Stop()
		<-runErr
		r.Close()
	}()
	defer func() {
		done := make(chan struct{})
		reg.Unregister("V", func(error) { close(done) })
		<-done
	}()
	desc, _ := reg.Open("V", true, nil)
	defer desc.Close()
	b, _ := reg.Get("V")
	buf := b.Device().(*Disk).AllocBuffer(4096)
	var ch *bdev.IOChannel
	if err := reactor.Call(r, func() { ch, err = desc.GetChannel(r) }); err != nil || ch == nil {
		t.Fatal(err)
	}
	defer reactor.Call(r, func() { ch.PutChannel() })
	var before reactor.Stats
	reactor.Call(r, func() { before, _ = r.Snapshot() })
	const n = 100
	for i := range n {
		done := make(chan bdev.Status, 1)
		time.Sleep(200 * time.Microsecond) // let the reactor fall asleep
		reactor.Call(r, func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, uint64(i)*8, 8, [][]byte{buf}
			ch.Submit(io, func(io *bdev.IO) { done <- io.Status })
		})
		select {
		case st := <-done:
			if st != bdev.StatusSuccess {
				t.Fatalf("read %d: %v", i, st)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("read %d never completed: the sleeping reactor was not woken", i)
		}
	}
	var after reactor.Stats
	reactor.Call(r, func() { after, _ = r.Snapshot() })
	if after.Sleeps-before.Sleeps < n {
		t.Errorf("reactor slept %d times for %d reads", after.Sleeps-before.Sleeps, n)
	}
}

// TestHugepages backs the shared region with 2 MiB hugepages
// (hugemem.RequireHuge) and runs IO through qemu-storage-daemon, which maps
// the hugetlb memfd from SET_MEM_TABLE. When the kernel has too few free
// hugepages the test reserves some (root only) and restores
// vm.nr_hugepages afterwards.
func TestHugepages(t *testing.T) {
	const need = 8
	reserveHugepages(t, need)
	file := shmFile(t, 4<<20, 0)
	qsd := startQSD(t, qsdConfig{File: file})
	e := newEnv(t)
	d := e.attach(Options{Name: "Huge0", SocketPath: qsd.sock, QueueSize: 64, BounceChunks: 64,
		BufferBytes: 4 << 20, Memory: hugemem.RequireHuge})
	if !d.hugepages() || d.sharedBytes()%hugemem.HugePageSize != 0 {
		t.Fatalf("region not on hugepages (huge %v, %d bytes)", d.hugepages(), d.sharedBytes())
	}
	ch := e.channel("Huge0")
	buf := d.AllocBuffer(1 << 20)
	pattern(buf, 7)
	if st := e.do(ch, bdev.IOWrite, 0, uint64(len(buf)/512), buf); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	if got := fileAt(t, file, 0, len(buf)); !bytes.Equal(got, buf) {
		t.Fatal("write from a hugepage buffer did not reach the file")
	}
	heap := make([]byte, 64<<10)
	if st := e.do(ch, bdev.IORead, 0, uint64(len(heap)/512), heap); st != bdev.StatusSuccess || !bytes.Equal(heap, buf[:len(heap)]) {
		t.Fatalf("bounced read through hugepage chunks: %v", st)
	}
}

// reserveHugepages makes sure n 2 MiB hugepages are free, raising
// vm.nr_hugepages if needed (and restoring it when the test ends), or
// skips the test.
func reserveHugepages(t *testing.T, n int) {
	const sysctl = "/proc/sys/vm/nr_hugepages"
	free := meminfo(t, "HugePages_Free")
	if free >= n {
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("%d free hugepages, %d needed, and not root to reserve more", free, n)
	}
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Skipf("cannot read %s: %v", sysctl, err)
	}
	total, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	if err := os.WriteFile(sysctl, []byte(strconv.Itoa(total+n-free)), 0o644); err != nil {
		t.Skipf("cannot reserve hugepages: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(sysctl, old, 0o644); err != nil {
			t.Errorf("restore %s to %s: %v", sysctl, strings.TrimSpace(string(old)), err)
		}
	})
	if got := meminfo(t, "HugePages_Free"); got < n {
		t.Skipf("the kernel found only %d free hugepages (memory fragmented)", got)
	}
}

func meminfo(t *testing.T, key string) int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key+":" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}
