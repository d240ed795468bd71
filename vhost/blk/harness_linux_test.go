package blk_test

import (
	"io"
	"log/slog"
	"testing"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/bdev/null"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
	"hyperpath/vhost/blk"
	"hyperpath/vhost/virtq"
)

// The harness plays the driver on memory the test owns: a virtq.Driver puts
// requests in a ring in that memory, and a blk.Queue on a reactor the test
// steps with Poll serves them from a bdev.

const (
	gpaBase = 0x1_0000_0000 // guest address of the test memory
	memSize = 40 << 20
)

type envOpts struct {
	dev       bdev.Device // default: malloc of blocks*blockSize
	blockSize uint32      // default 512
	blocks    uint64      // default 16384
	readOnly  bool
	qsize     uint16 // default 128
	eventIdx  bool
	indirect  bool
	poolSize  int // bdev IOs per channel (0: registry default)
	noKick    bool
}

type env struct {
	t      testing.TB
	r      *reactor.Reactor
	reg    *bdev.Registry
	desc   *bdev.Desc
	dev    *blk.Device
	disk   *malloc.Disk
	mem    []byte
	gm     *virtq.GuestMemory
	drv    *virtq.Driver
	vq     *virtq.Queue
	q      *blk.Queue
	callFD int
	kickFD int
	bump   uint64 // next free guest address for buffers
	bufLo  uint64
	reaped []virtq.Used
	done   map[uint16]uint32 // head -> used length, reaped and not yet claimed
	// fakeNow, when set, is the time handed to Poll instead of the clock.
	fakeNow reactor.Ticks
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.blockSize == 0 {
		o.blockSize = 512
	}
	if o.blocks == 0 {
		o.blocks = 16384
	}
	if o.qsize == 0 {
		o.qsize = 128
	}
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, r: r, done: map[uint16]uint32{}, callFD: -1, kickFD: -1}
	e.reg = bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}, IOPoolSize: o.poolSize})
	dev := o.dev
	if dev == nil {
		d, err := malloc.New(malloc.Options{Name: "Malloc0", BlockSize: o.blockSize, NumBlocks: o.blocks, Memory: hugemem.SmallPages})
		if err != nil {
			t.Fatal(err)
		}
		e.disk = d
		dev = d
	}
	b, err := e.reg.Register(dev)
	if err != nil {
		t.Fatal(err)
	}
	e.desc, err = e.reg.Open(b.Name(), !o.readOnly, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.dev, err = blk.New(blk.Options{Desc: e.desc, ReadOnly: o.readOnly, NumQueues: 1, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	e.mem = make([]byte, memSize)
	e.gm, err = virtq.NewGuestMemory(virtq.NewRegion(gpaBase, virtq.HostAddr(e.mem), e.mem))
	if err != nil {
		t.Fatal(err)
	}
	lay, err := virtq.NewLayout(o.qsize, 4)
	if err != nil {
		t.Fatal(err)
	}
	cfg := virtq.Config{Size: o.qsize, Desc: gpaBase + lay.DescOff, Avail: gpaBase + lay.AvailOff,
		Used: gpaBase + lay.UsedOff, EventIdx: o.eventIdx, Indirect: o.indirect}
	if e.drv, err = virtq.NewDriver(e.gm, cfg); err != nil {
		t.Fatal(err)
	}
	if e.vq, err = virtq.NewQueue(e.gm, cfg, 0); err != nil {
		t.Fatal(err)
	}
	e.bufLo = (gpaBase + lay.Len + 4095) &^ 4095
	e.bump = e.bufLo
	if e.callFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if !o.noKick {
		if e.kickFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			t.Fatal(err)
		}
	}
	e.q, err = e.dev.NewQueue(blk.QueueOptions{VQ: e.vq, Reactor: r, KickFD: e.kickFD, CallFD: e.callFD, Name: "vq0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	e.q.Stop(nil)
	for i := 0; i < 1000; i++ {
		if _, err := e.q.Close(); err == nil {
			break
		}
		e.r.Poll(reactor.Now())
	}
	for i := 0; i < 10; i++ {
		e.r.Poll(reactor.Now())
	}
	e.desc.Close()
	unix.Close(e.callFD)
	if e.kickFD >= 0 {
		unix.Close(e.kickFD)
	}
	e.r.Close()
}

// buf reserves n bytes of guest memory (64-byte aligned) and returns its
// guest address and host slice.
func (e *env) buf(n int) (uint64, []byte) {
	e.t.Helper()
	gpa := (e.bump + 63) &^ 63
	if gpa+uint64(n) > gpaBase+memSize {
		e.t.Fatalf("test memory exhausted")
	}
	e.bump = gpa + uint64(n)
	return gpa, e.mem[gpa-gpaBase : gpa-gpaBase+uint64(n)]
}

// resetBufs frees every buffer (call only with nothing outstanding).
func (e *env) resetBufs() { e.bump = e.bufLo }

// pending is a request the harness put in the ring.
type pending struct {
	head   uint16
	data   []byte // device-writable data (reads, GET_ID)
	status []byte
}

// request adds a request: a header, outData after it (device-readable),
// inLen device-writable bytes, and the status byte. Header and data are
// separate descriptors, as Linux lays them out.
func (e *env) request(h blk.Header, outData []byte, inLen int) *pending {
	e.t.Helper()
	hg, hb := e.buf(blk.HeaderSize)
	var hdr [blk.HeaderSize]byte
	h.Encode(&hdr)
	copy(hb, hdr[:])
	out := []virtq.Buf{{Addr: hg, Len: blk.HeaderSize}}
	if len(outData) > 0 {
		g, b := e.buf(len(outData))
		copy(b, outData)
		out = append(out, virtq.Buf{Addr: g, Len: uint32(len(outData))})
	}
	p := &pending{}
	var in []virtq.Buf
	if inLen > 0 {
		g, b := e.buf(inLen)
		for i := range b {
			b[i] = 0xee
		}
		p.data = b
		in = append(in, virtq.Buf{Addr: g, Len: uint32(inLen)})
	}
	sg, sb := e.buf(1)
	sb[0] = 0xff
	p.status = sb
	in = append(in, virtq.Buf{Addr: sg, Len: 1})
	return e.add(p, out, in)
}

// add puts a raw chain in the ring.
func (e *env) add(p *pending, out, in []virtq.Buf) *pending {
	e.t.Helper()
	h, err := e.drv.Add(out, in)
	if err != nil {
		e.t.Fatalf("driver add: %v", err)
	}
	p.head = h
	return p
}

// kick publishes the added requests and kicks if the device asked.
func (e *env) kick() {
	e.drv.Publish()
	if e.drv.NeedsKick() && e.kickFD >= 0 {
		unix.Write(e.kickFD, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// wait polls the reactor until every p has completed and returns their
// used lengths.
func (e *env) wait(ps ...*pending) []uint32 {
	e.t.Helper()
	lens := make([]uint32, len(ps))
	for i, p := range ps {
		for iter := 0; ; iter++ {
			if l, ok := e.done[p.head]; ok {
				delete(e.done, p.head)
				lens[i] = l
				break
			}
			if iter > 100000 {
				e.t.Fatalf("request head %d never completed", p.head)
			}
			e.step()
		}
	}
	return lens
}

// step runs one reactor iteration and reaps completions.
func (e *env) step() {
	e.t.Helper()
	now := reactor.Now()
	if e.fakeNow != 0 {
		now = e.fakeNow
	}
	e.r.Poll(now)
	if e.reaped == nil {
		e.reaped = make([]virtq.Used, 256)
	}
	n, err := e.drv.Reap(e.reaped)
	if err != nil {
		e.t.Fatalf("reap: %v", err)
	}
	for _, u := range e.reaped[:n] {
		if _, dup := e.done[u.Head]; dup {
			e.t.Fatalf("head %d completed twice", u.Head)
		}
		e.done[u.Head] = u.Len
	}
}

// do runs one request to completion and returns the status byte and the
// used length.
func (e *env) do(h blk.Header, outData []byte, inLen int) (*pending, byte, uint32) {
	e.t.Helper()
	p := e.request(h, outData, inLen)
	e.kick()
	l := e.wait(p)[0]
	return p, p.status[0], l
}

func (e *env) stats() blk.QueueStats { return e.q.Stats() }

// signals drains the call eventfd and returns its count.
func (e *env) signals() uint64 {
	var b [8]byte
	n, err := unix.Read(e.callFD, b[:])
	if err != nil || n != 8 {
		return 0
	}
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
}

func newNull(t testing.TB, blockSize uint32, blocks uint64) bdev.Device {
	d, err := null.New(null.Options{Name: "Null0", BlockSize: blockSize, NumBlocks: blocks})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// quietLog drops the queue's warnings about the bad requests tests send.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))
