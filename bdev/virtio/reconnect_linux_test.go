package virtio

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hyperpath/bdev"
)

// verifier keeps one write-then-read-back cycle per slot going on one
// channel, each slot on its own blocks, with a flush every fourth cycle;
// half the slots use buffers from the shared region (zero copy), half heap
// buffers (bounced). It counts failures and miscompares.
type verifier struct {
	ch          *bdev.IOChannel
	slots       []vslot
	stop        bool
	ok, fail    int
	miscompares int
	inflight    int
	cb          bdev.CompletionFunc
}

type vslot struct {
	iovs  [][]byte
	want  []byte
	lba   uint64
	seq   byte
	phase int // 0 write, 1 read, 2 flush
}

const vslotBlocks = 16 // 8 KiB of 512-byte blocks

func newVerifier(d *Disk, ch *bdev.IOChannel, n int) *verifier {
	v := &verifier{ch: ch, slots: make([]vslot, n)}
	for i := range v.slots {
		var buf []byte
		if i%2 == 0 {
			buf = d.AllocBuffer(vslotBlocks * 512)
		} else {
			buf = make([]byte, vslotBlocks*512)
		}
		v.slots[i] = vslot{iovs: [][]byte{buf}, want: make([]byte, len(buf)), lba: uint64(i) * vslotBlocks, seq: byte(i)}
	}
	v.cb = v.done
	return v
}

func (v *verifier) start() {
	for i := range v.slots {
		v.submit(&v.slots[i])
	}
}

func (v *verifier) submit(s *vslot) {
	io := v.ch.Alloc()
	io.Ctx = s
	switch s.phase {
	case 0:
		pattern(s.want, s.seq)
		copy(s.iovs[0], s.want)
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IOWrite, s.lba, vslotBlocks, s.iovs
	case 1:
		clear(s.iovs[0])
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, s.lba, vslotBlocks, s.iovs
	case 2:
		io.Type, io.OffsetBlocks, io.NumBlocks = bdev.IOFlush, 0, 0
	}
	v.inflight++
	v.ch.Submit(io, v.cb)
}

func (v *verifier) done(io *bdev.IO) {
	v.inflight--
	s := io.Ctx.(*vslot)
	if io.Status != bdev.StatusSuccess {
		v.fail++
		s.phase = 0 // write again
	} else {
		v.ok++
		switch s.phase {
		case 0:
			s.phase = 1
		case 1:
			if !bytes.Equal(s.iovs[0], s.want) {
				v.miscompares++
			}
			s.seq++
			s.phase = 0
			if s.seq%4 == 0 {
				s.phase = 2
			}
		case 2:
			s.phase = 0
		}
	}
	if !v.stop {
		v.submit(s)
	}
}

// TestHoldAndResubmit kills qemu-storage-daemon (SIGKILL) under a write
// and read-back load of 32 IOs, zero copy and bounced, with flushes, and
// starts it again on the same file: every IO in the ring at the kill and
// every IO submitted during the outage is held and resubmitted, so the
// run ends with no failed IO, no miscompare and one reconnect.
func TestHoldAndResubmit(t *testing.T) {
	file := shmFile(t, 4<<20, 0)
	qsd := startQSD(t, qsdConfig{File: file})
	e := newEnv(t)
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 64,
		CtrlrLossTimeout: Forever, ReconnectDelay: 20 * time.Millisecond})
	ch := e.channel("Virtio0")
	v := newVerifier(d, ch, 32)
	v.start()
	e.wait(func() bool { return v.ok >= 3000 })
	qsd.kill()
	e.wait(func() bool { return d.State() == StateReconnecting })
	// Stay down a while: completions of the IO taken back from the ring
	// may not happen, and new IO must wait too.
	until := time.Now().Add(100 * time.Millisecond)
	e.wait(func() bool { return time.Now().After(until) })
	held := d.Stats().HeldIOs
	if held == 0 {
		t.Fatal("no IO held during the outage")
	}
	atDown := v.ok
	os.Remove(qsd.sock)
	startQSD(t, qsdConfig{File: file, Sock: qsd.sock})
	e.wait(func() bool { return d.State() == StateConnected && v.ok >= atDown+3000 })
	v.stop = true
	e.wait(func() bool { return v.inflight == 0 })
	if v.fail != 0 || v.miscompares != 0 {
		t.Fatalf("%d IOs failed, %d miscompares across the restart", v.fail, v.miscompares)
	}
	if d.Reconnects() != 1 {
		t.Fatalf("%d reconnects", d.Reconnects())
	}
	q := d.queues[0]
	if len(q.freeSlots) != len(q.slots) || len(q.freeChunks) != d.lay.chunks || ch.Outstanding() != 0 {
		t.Fatalf("leak: %d of %d slots, %d of %d bounce chunks free, %d IOs outstanding",
			len(q.freeSlots), len(q.slots), len(q.freeChunks), d.lay.chunks, ch.Outstanding())
	}
	t.Logf("%d IOs ok, %d held during the outage", v.ok, held)
}

// TestFastIOFail: with FastIOFailTimeout the held IO fails once the device
// has been reconnecting that long, not before, and new IO fails at once;
// reconnect attempts go on, and after the back end returns IO succeeds.
func TestFastIOFail(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 64 << 20})
	e := newEnv(t)
	const fast = 300 * time.Millisecond
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 64,
		CtrlrLossTimeout: Forever, ReconnectDelay: 20 * time.Millisecond, FastIOFailTimeout: fast})
	ch := e.channel("Virtio0")
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = d.AllocBuffer(4096)
	}
	l := newLoader(ch, bufs)
	var firstFail time.Time
	l.cb = func(io *bdev.IO) {
		if io.Status != bdev.StatusSuccess && firstFail.IsZero() {
			firstFail = time.Now()
		}
		l.done(io)
	}
	l.start()
	e.wait(func() bool { return l.ok >= 500 })
	qsd.kill()
	e.wait(func() bool { return l.fail > 0 })
	d.mu.Lock()
	lost := d.lostAt
	d.mu.Unlock()
	if el := firstFail.Sub(lost); el < fast {
		t.Fatalf("first IO failed %v after the loss, before fast_io_fail_timeout %v", el, fast)
	}
	if d.State() != StateFailingIO || d.State().String() != "reconnecting_failing_io" {
		t.Fatalf("state %v", d.State())
	}
	l.stop = true
	e.wait(func() bool { return l.inflight == 0 })
	if st := e.do(ch, bdev.IORead, 0, 8, bufs[0]); st != bdev.StatusFailed {
		t.Fatalf("new IO after fast_io_fail_timeout: %v", st)
	}
	os.Remove(qsd.sock)
	startQSD(t, qsdConfig{NullBytes: 64 << 20, Sock: qsd.sock})
	e.wait(func() bool { return d.State() == StateConnected })
	if st := e.do(ch, bdev.IORead, 0, 8, bufs[0]); st != bdev.StatusSuccess {
		t.Fatalf("IO after the reconnect: %v", st)
	}
	if d.Reconnects() != 1 {
		t.Fatalf("%d reconnects", d.Reconnects())
	}
	t.Logf("first failure %v after the loss; %d reads ok, %d failed", firstFail.Sub(lost).Round(time.Millisecond), l.ok, l.fail)
}

// TestCtrlrLossTimeout: a back end that does not return within
// CtrlrLossTimeout makes the device give up: the held IO fails (not
// before the timeout) and the bdev is unregistered, as SPDK deletes a lost
// controller; it is destroyed once its descriptor is closed.
func TestCtrlrLossTimeout(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 64 << 20})
	e := newEnv(t)
	const loss = 400 * time.Millisecond
	if err := Attach(e.reg, Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 16,
		CtrlrLossTimeout: loss, ReconnectDelay: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	b, _ := e.reg.Get("Virtio0")
	d := b.Device().(*Disk)
	var removed atomic.Bool
	desc, err := e.reg.Open("Virtio0", true, func(ev bdev.EventType, _ *bdev.Bdev) {
		if ev == bdev.EventRemove {
			removed.Store(true)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := desc.GetChannel(e.r)
	if err != nil {
		t.Fatal(err)
	}
	buf := d.AllocBuffer(4096)
	qsd.kill()
	e.wait(func() bool { return d.State() == StateReconnecting })
	io := ch.Alloc()
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, 0, 8, [][]byte{buf}
	st := bdev.StatusPending
	var failedAt time.Time
	ch.Submit(io, func(io *bdev.IO) { st, failedAt = io.Status, time.Now() })
	e.wait(func() bool { return st != bdev.StatusPending && removed.Load() })
	d.mu.Lock()
	lost := d.lostAt
	d.mu.Unlock()
	if st != bdev.StatusFailed || failedAt.Sub(lost) < loss {
		t.Fatalf("held read completed with %v %v after the loss; want Failed after %v", st, failedAt.Sub(lost), loss)
	}
	if d.State() != StateFailed || !strings.Contains(d.LastError(), "ctrlr_loss_timeout") {
		t.Fatalf("state %v, last error %q", d.State(), d.LastError())
	}
	ch.PutChannel()
	e.drain(ch)
	desc.Close()
	if _, err := e.reg.Get("Virtio0"); !errors.Is(err, bdev.ErrNotFound) {
		t.Fatalf("bdev still registered: %v", err)
	}
	if d.State() != StateClosed {
		t.Fatalf("state %v after the last descriptor closed", d.State())
	}
}

// TestDetachWhileReconnecting: unregistering a device that holds IO for a
// reconnect that may never come fails the held IO, so that its users can
// close the bdev.
func TestDetachWhileReconnecting(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 64 << 20})
	e := newEnv(t)
	if err := Attach(e.reg, Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 16,
		CtrlrLossTimeout: Forever, ReconnectDelay: time.Second}); err != nil {
		t.Fatal(err)
	}
	b, _ := e.reg.Get("Virtio0")
	d := b.Device().(*Disk)
	desc, err := e.reg.Open("Virtio0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := desc.GetChannel(e.r)
	if err != nil {
		t.Fatal(err)
	}
	buf := d.AllocBuffer(4096)
	qsd.kill()
	e.wait(func() bool { return d.State() == StateReconnecting })
	io := ch.Alloc()
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IOWrite, 0, 8, [][]byte{buf}
	st := bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { st = io.Status })
	destroyed := make(chan struct{})
	if err := e.reg.Unregister("Virtio0", func(error) { close(destroyed) }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.wait(func() bool { return st != bdev.StatusPending })
	if st != bdev.StatusFailed || time.Since(start) > time.Second {
		t.Fatalf("held write after unregister: %v after %v", st, time.Since(start))
	}
	ch.PutChannel()
	e.drain(ch)
	desc.Close()
	select {
	case <-destroyed:
	case <-time.After(5 * time.Second):
		t.Fatal("device not destroyed after its last descriptor closed")
	}
	if d.State() != StateClosed {
		t.Fatalf("state %v", d.State())
	}
}

// TestHeldIOAllocs locks in zero allocations for an IO held while the
// device reconnects, and checks that all of them go out and succeed after
// the reconnect. (Resubmission uses the ordinary submit path, covered by
// TestAllocsPerIO.)
func TestHeldIOAllocs(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 64 << 20})
	e := newEnv(t)
	// A long delay keeps the monitor asleep (and allocation-free) while
	// the allocations are counted; its first attempt comes at once.
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 16,
		CtrlrLossTimeout: Forever, ReconnectDelay: 2 * time.Second})
	ch := e.channel("Virtio0")
	buf := d.AllocBuffer(4096)
	qsd.kill()
	q := d.queues[0]
	e.wait(func() bool {
		return q.resetGen.Load() == d.failGen.Load() && strings.Contains(d.LastError(), "vhost-user connect")
	})
	time.Sleep(100 * time.Millisecond) // the monitor logs the failed attempt, then sleeps
	ok, failed := 0, 0
	cb := func(io *bdev.IO) {
		if io.Status == bdev.StatusSuccess {
			ok++
		} else {
			failed++
		}
	}
	iovs := [][]byte{buf}
	submit := func() {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = bdev.IORead, 0, 8, iovs
		ch.Submit(io, cb)
	}
	submit() // warm up
	if a := testing.AllocsPerRun(100, submit); a != 0 {
		t.Errorf("%v allocations per held IO", a)
	}
	if d.State() != StateReconnecting {
		t.Fatalf("state %v while counting", d.State())
	}
	os.Remove(qsd.sock)
	startQSD(t, qsdConfig{NullBytes: 64 << 20, Sock: qsd.sock})
	e.wait(func() bool { return ok+failed == 102 })
	if failed != 0 || d.Stats().HeldIOs != 102 {
		t.Fatalf("%d held IOs failed; %d held", failed, d.Stats().HeldIOs)
	}
}

// TestCheckReconnect covers SPDK's rules for the three reconnect
// parameters.
func TestCheckReconnect(t *testing.T) {
	s := time.Second
	cases := []struct {
		loss, delay, fast time.Duration
		want              string // "" valid
	}{
		{0, 0, 0, ""},
		{0, s, 0, "must be 0 when ctrlr_loss_timeout_sec is 0"},
		{0, 0, s, "must be 0 when ctrlr_loss_timeout_sec is 0"},
		{Forever, 0, 0, "reconnect_delay_sec must be non-zero"},
		{Forever, s, 0, ""},
		{Forever, 2 * s, s, "must not be less than reconnect_delay_sec"},
		{Forever, s, 100 * s, ""},
		{10 * s, 0, 0, "reconnect_delay_sec must be non-zero"},
		{10 * s, 11 * s, 0, "must not exceed ctrlr_loss_timeout_sec"},
		{10 * s, 10 * s, 0, ""},
		{10 * s, 2 * s, s, "must not be less than reconnect_delay_sec"},
		{10 * s, 2 * s, 11 * s, "fast_io_fail_timeout_sec (11s) must not exceed ctrlr_loss_timeout_sec"},
		{10 * s, 2 * s, 10 * s, ""},
		{10 * s, -s, 0, "is negative"},
		{10 * s, s, -s, "is negative"},
	}
	for _, c := range cases {
		err := checkReconnect(c.loss, c.delay, c.fast)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrBadReconnect)) {
			t.Errorf("loss %v delay %v fast %v: got %v, want %q", c.loss, c.delay, c.fast, err, c.want)
		}
	}
	// New applies them too.
	if _, err := New(Options{Name: "X", SocketPath: "/nonexistent", ReconnectDelay: s}); !errors.Is(err, ErrBadReconnect) {
		t.Errorf("New with a delay and no ctrlr loss timeout: %v", err)
	}
}
