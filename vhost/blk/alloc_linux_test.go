package blk_test

import (
	"bytes"
	"fmt"
	"testing"

	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/vhost/blk"
	"hyperpath/vhost/virtq"
)

// TestRequestPathAllocs asserts that a request costs no allocation in the
// driver-to-device-and-back path: pop, walk, header copy, bdev submit,
// completion, status, push, publish, notify.
func TestRequestPathAllocs(t *testing.T) {
	for _, c := range []struct {
		name string
		typ  uint32
		qd   int
	}{
		{"read/qd1", blk.TypeIn, 1},
		{"write/qd1", blk.TypeOut, 1},
		{"read/qd32", blk.TypeIn, 32},
		{"flush/qd1", blk.TypeFlush, 1},
		{"discard/qd4", blk.TypeDiscard, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{qsize: 128, blocks: 1 << 14})
			type slot struct{ out, in []virtq.Buf }
			slots := make([]slot, c.qd)
			for i := range slots {
				var hdr [blk.HeaderSize]byte
				blk.Header{Type: c.typ, Sector: uint64(8 * i)}.Encode(&hdr)
				hg, hb := e.buf(blk.HeaderSize)
				copy(hb, hdr[:])
				dg, _ := e.buf(4096)
				sg, _ := e.buf(1)
				s := slot{out: []virtq.Buf{{Addr: hg, Len: blk.HeaderSize}}, in: []virtq.Buf{{Addr: sg, Len: 1}}}
				switch c.typ {
				case blk.TypeIn:
					s.in = []virtq.Buf{{Addr: dg, Len: 4096}, {Addr: sg, Len: 1}}
				case blk.TypeOut:
					s.out = append(s.out, virtq.Buf{Addr: dg, Len: 4096})
				case blk.TypeDiscard:
					var seg [blk.SegmentSize]byte
					blk.Segment{Sector: uint64(8 * i), NumSectors: 8}.Encode(&seg)
					g, b := e.buf(blk.SegmentSize)
					copy(b, seg[:])
					s.out = append(s.out, virtq.Buf{Addr: g, Len: blk.SegmentSize})
				}
				slots[i] = s
			}
			used := make([]virtq.Used, 64)
			run := func() {
				for _, s := range slots {
					if _, err := e.drv.Add(s.out, s.in); err != nil {
						panic(err)
					}
				}
				e.drv.Publish()
				for got := 0; got < len(slots); {
					e.r.Poll(reactor.Now())
					n, err := e.drv.Reap(used)
					if err != nil {
						panic(err)
					}
					got += n
				}
			}
			run() // the bdev channel and its poller exist from here on
			if a := testing.AllocsPerRun(200, run); a != 0 {
				t.Fatalf("%v allocations per %d requests", a, c.qd)
			}
			if s := e.stats(); s.IOErrors != 0 || s.BadChains != 0 || s.Requests != uint64(202*c.qd) { // run, AllocsPerRun's warm-up, 200 runs
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// probeDisk is a bdev that checks where its data buffers live: every iovec
// it gets must be guest memory (found by the guest memory table, at the
// address the driver put in the descriptor), and reads are served by
// writing straight into them. It is the proof that the target copies no
// payload byte: the only copy is the device's own.
type probeDisk struct {
	info  bdev.Info
	gm    *virtq.GuestMemory
	addrs []uint64 // guest address of every iovec, in order
	bad   int      // iovecs not in guest memory
	fill  byte
}

func (d *probeDisk) Info() *bdev.Info { return &d.info }
func (d *probeDisk) Supports(t bdev.IOType) bool {
	return t == bdev.IORead || t == bdev.IOWrite
}
func (d *probeDisk) NewChannel(*reactor.Reactor) (bdev.Channel, error) { return probeChan{d}, nil }
func (d *probeDisk) Destroy() error                                    { return nil }

type probeChan struct{ d *probeDisk }

func (c probeChan) Submit(io *bdev.IO) {
	for _, v := range io.Iovs {
		g, err := c.d.gm.GuestAddrOf(v)
		if err != nil {
			c.d.bad++
			continue
		}
		c.d.addrs = append(c.d.addrs, g)
		if io.Type == bdev.IORead {
			for i := range v {
				v[i] = c.d.fill
			}
		}
	}
	io.Complete(bdev.StatusSuccess)
}
func (probeChan) Close() {}

func TestZeroCopy(t *testing.T) {
	d := &probeDisk{info: bdev.Info{Name: "Probe0", BlockSize: 512, NumBlocks: 4096}, fill: 0x5a}
	e := newEnv(t, envOpts{dev: d})
	d.gm = e.gm
	// A read scattered over three buffers and a write gathered from two
	// (header in a separate descriptor): each data buffer must reach the
	// device as is.
	var hdr [blk.HeaderSize]byte
	blk.Header{Type: blk.TypeIn, Sector: 16}.Encode(&hdr)
	hg, hb := e.buf(blk.HeaderSize)
	copy(hb, hdr[:])
	g1, b1 := e.buf(512)
	g2, b2 := e.buf(2048)
	g3, b3 := e.buf(1536)
	sg, sb := e.buf(1)
	p := e.add(&pending{status: sb}, []virtq.Buf{{Addr: hg, Len: 16}},
		[]virtq.Buf{{Addr: g1, Len: 512}, {Addr: g2, Len: 2048}, {Addr: g3, Len: 1536}, {Addr: sg, Len: 1}})
	e.kick()
	if l := e.wait(p)[0]; sb[0] != blk.StatusOK || l != 4097 {
		t.Fatalf("read: status %d used %d", sb[0], l)
	}
	for _, b := range [][]byte{b1, b2, b3} {
		if !bytes.Equal(b, bytes.Repeat([]byte{0x5a}, len(b))) {
			t.Fatal("device's write into the iovec did not land in the guest buffer")
		}
	}
	blk.Header{Type: blk.TypeOut, Sector: 32}.Encode(&hdr)
	hg, hb = e.buf(blk.HeaderSize)
	copy(hb, hdr[:])
	g4, _ := e.buf(1024)
	g5, _ := e.buf(3072)
	sg, sb = e.buf(1)
	p = e.add(&pending{status: sb}, []virtq.Buf{{Addr: hg, Len: 16}, {Addr: g4, Len: 1024}, {Addr: g5, Len: 3072}}, []virtq.Buf{{Addr: sg, Len: 1}})
	e.kick()
	if l := e.wait(p)[0]; sb[0] != blk.StatusOK || l != 1 {
		t.Fatalf("write: status %d used %d", sb[0], l)
	}
	want := []uint64{g1, g2, g3, g4, g5}
	if d.bad != 0 || fmt.Sprint(d.addrs) != fmt.Sprint(want) {
		t.Fatalf("device saw iovecs at %x (%d outside guest memory), want exactly the driver's buffers %x", d.addrs, d.bad, want)
	}
}
