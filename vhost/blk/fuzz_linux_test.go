package blk_test

import (
	"encoding/binary"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
	"hyperpath/vhost/blk"
	"hyperpath/vhost/virtq"
)

// Fuzz input layout (everything the driver controls on a 8-entry ring):
//
//	  0: descriptor table, 8 x 16 bytes (addr u64, len u32, flags u16, next u16);
//	     an addr below 1 MiB is taken as an offset into guest memory
//	128: avail.idx u16
//	130: avail ring, 8 x u16
//	146: the rest is copied to guest memory at offset 0x1000 (headers,
//	     segments, indirect tables)
const (
	fuzzQSize   = 8
	fuzzMem     = 64 << 10
	fuzzBufBase = 0x1000
	fuzzHdr     = 146
)

type fuzzEnv struct {
	r    *reactor.Reactor
	reg  *bdev.Registry
	desc *bdev.Desc
	dev  *blk.Device
}

func newFuzzEnv(t testing.TB) *fuzzEnv {
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}, IOPoolSize: 4})
	d, err := malloc.New(malloc.Options{Name: "M", BlockSize: 512, NumBlocks: 64, Memory: hugemem.SmallPages})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(d); err != nil {
		t.Fatal(err)
	}
	desc, err := reg.Open("M", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := blk.New(blk.Options{Desc: desc, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	return &fuzzEnv{r: r, reg: reg, desc: desc, dev: dev}
}

// fuzzRequest encodes one well-formed request (for seeds): a header at
// buffer offset 0, data at 0x100, status at 0x1100.
func fuzzRequest(typ uint32, sector uint64, dataLen uint32, payload []byte) []byte {
	b := make([]byte, fuzzHdr)
	put := func(i int, addr uint64, l uint32, flags, next uint16) {
		d := b[16*i:]
		binary.LittleEndian.PutUint64(d[0:], addr)
		binary.LittleEndian.PutUint32(d[8:], l)
		binary.LittleEndian.PutUint16(d[12:], flags)
		binary.LittleEndian.PutUint16(d[14:], next)
	}
	dataFlags := uint16(virtq.DescFNext)
	if typ == blk.TypeIn || typ == blk.TypeGetID {
		dataFlags |= virtq.DescFWrite
	}
	put(0, fuzzBufBase, blk.HeaderSize, virtq.DescFNext, 1)
	if dataLen > 0 {
		put(1, fuzzBufBase+0x100, dataLen, dataFlags, 2)
		put(2, fuzzBufBase+0x1100, 1, virtq.DescFWrite, 0)
	} else {
		put(1, fuzzBufBase+0x1100, 1, virtq.DescFWrite, 0)
	}
	binary.LittleEndian.PutUint16(b[128:], 1)
	var h [blk.HeaderSize]byte
	blk.Header{Type: typ, Sector: sector}.Encode(&h)
	buf := make([]byte, 0x100)
	copy(buf, h[:])
	return append(append(b, buf...), payload...)
}

// FuzzQueue serves whatever a driver can put in a ring: descriptor chains
// (direct and indirect), headers, segments. It must never panic or touch
// memory outside the guest's, and every request it pops must be completed
// (or the ring declared broken) so the queue drains.
func FuzzQueue(f *testing.F) {
	var seg [blk.SegmentSize]byte
	blk.Segment{Sector: 8, NumSectors: 8}.Encode(&seg)
	f.Add(fuzzRequest(blk.TypeIn, 0, 512, nil))
	f.Add(fuzzRequest(blk.TypeOut, 4, 1024, nil))
	f.Add(fuzzRequest(blk.TypeFlush, 0, 0, nil))
	f.Add(fuzzRequest(blk.TypeGetID, 0, 20, nil))
	f.Add(fuzzRequest(blk.TypeDiscard, 0, 16, append(make([]byte, 0), seg[:]...)))
	f.Add(fuzzRequest(blk.TypeWriteZeroes, 0, 16, seg[:]))
	f.Add(fuzzRequest(99, 0, 0, nil))
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < fuzzHdr {
			return
		}
		mem := make([]byte, fuzzMem)
		gm, err := virtq.NewGuestMemory(virtq.NewRegion(gpaBase, virtq.HostAddr(mem), mem))
		if err != nil {
			t.Fatal(err)
		}
		lay, _ := virtq.NewLayout(fuzzQSize, 4)
		for i := range fuzzQSize {
			d := in[16*i : 16*i+16]
			addr := binary.LittleEndian.Uint64(d)
			if addr < 1<<20 {
				addr += gpaBase
			}
			out := mem[lay.DescOff+uint64(16*i):]
			binary.LittleEndian.PutUint64(out, addr)
			copy(out[8:16], d[8:16])
		}
		// avail ring: flags 0, idx, entries
		copy(mem[lay.AvailOff+2:], in[128:fuzzHdr])
		copy(mem[fuzzBufBase:], in[fuzzHdr:])
		cfg := virtq.Config{Size: fuzzQSize, Desc: gpaBase + lay.DescOff, Avail: gpaBase + lay.AvailOff,
			Used: gpaBase + lay.UsedOff, Indirect: true, EventIdx: in[0]&1 != 0}
		vq, err := virtq.NewQueue(gm, cfg, 0)
		if err != nil {
			t.Fatal(err)
		}
		q, err := env.dev.NewQueue(blk.QueueOptions{VQ: vq, Reactor: env.r, KickFD: -1, CallFD: -1, Name: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Start(); err != nil {
			t.Fatal(err)
		}
		for range 8 {
			env.r.Poll(reactor.Now())
		}
		stopped := false
		q.Stop(func() { stopped = true })
		for i := 0; !stopped; i++ {
			if i > 100 {
				t.Fatalf("queue did not drain: %+v", q.Stats())
			}
			env.r.Poll(reactor.Now())
		}
		if _, err := q.Close(); err != nil {
			t.Fatal(err)
		}
		env.r.Poll(reactor.Now())
		s := q.Stats()
		if q.Broken() == nil && uint64(vq.UsedIdx()) != s.Requests%(1<<16) {
			t.Fatalf("used idx %d after %d completions", vq.UsedIdx(), s.Requests)
		}
	})
}
