package bdev

import (
	"testing"

	"hyperpath/reactor"
)

// ramDev is a tiny in-package device with knobs for NoMem and inline vs
// deferred completion. It records every piece it is asked to do.
type ramDev struct {
	info       Info
	data       []byte
	nomemEvery int // bounce every Nth submit with NoMem
	pieces     [][2]uint64
	submits    int
	queued     IOQueue
	completeIn bool // complete inside Submit (else in the test's pump)
}

func (d *ramDev) Info() *Info                                  { return &d.info }
func (d *ramDev) Supports(t IOType) bool                       { return t != IOCompare }
func (d *ramDev) NewChannel(*reactor.Reactor) (Channel, error) { return &ramChan{d}, nil }
func (d *ramDev) Destroy() error                               { return nil }

type ramChan struct{ d *ramDev }

func (c *ramChan) Close() {}
func (c *ramChan) Submit(io *IO) {
	d := c.d
	d.submits++
	if d.nomemEvery > 0 && d.submits%d.nomemEvery == 0 {
		io.Complete(StatusNoMem)
		return
	}
	d.pieces = append(d.pieces, [2]uint64{io.OffsetBlocks, io.NumBlocks})
	bs := uint64(d.info.BlockSize)
	off := io.OffsetBlocks * bs
	switch io.Type {
	case IORead:
		CopyToIovs(io.Iovs, 0, d.data[off:off+io.NumBlocks*bs])
	case IOWrite:
		CopyFromIovs(d.data[off:off+io.NumBlocks*bs], io.Iovs, 0)
	}
	if d.completeIn {
		io.Complete(StatusSuccess)
	} else {
		d.queued.Push(io)
	}
}

func (d *ramDev) pump() {
	for io := d.queued.Pop(); io != nil; io = d.queued.Pop() {
		io.Complete(StatusSuccess)
	}
}

func setup(t testing.TB, d *ramDev) (*reactor.Reactor, *IOChannel) {
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(Options{Reactors: []*reactor.Reactor{r}, IOPoolSize: 64})
	if d.data == nil {
		d.data = make([]byte, int(d.info.NumBlocks)*int(d.info.BlockSize))
	}
	if _, err := reg.Register(d); err != nil {
		t.Fatal(err)
	}
	desc, err := reg.Open(d.info.Name, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := desc.GetChannel(r)
	if err != nil {
		t.Fatal(err)
	}
	return r, ch
}

func TestSplitMatchesReference(t *testing.T) {
	for _, tc := range []struct{ maxXfer, boundary uint64 }{{8, 0}, {0, 16}, {8, 12}, {5, 7}, {1, 0}} {
		d := &ramDev{info: Info{Name: "ram", BlockSize: 512, NumBlocks: 256,
			MaxTransferBlocks: tc.maxXfer, OptimalIOBoundary: tc.boundary, SplitOnBoundary: tc.boundary != 0}, completeIn: true}
		r, ch := setup(t, d)
		for off := uint64(0); off < 40; off += 3 {
			for n := uint64(1); n < 50; n += 7 {
				d.pieces = nil
				// Reference: walk block by block, cutting where a naive
				// rule says a piece must end.
				var want [][2]uint64
				start, cur := off, uint64(0)
				for b := off; b < off+n; b++ {
					cur++
					end := b+1 == off+n ||
						(tc.maxXfer != 0 && cur == tc.maxXfer) ||
						(tc.boundary != 0 && (b+1)%tc.boundary == 0)
					if end {
						want = append(want, [2]uint64{start, cur})
						start, cur = b+1, 0
					}
				}
				buf := make([]byte, n*512)
				for i := range buf {
					buf[i] = byte(off + uint64(i)/512)
				}
				io := ch.Alloc()
				io.Type, io.OffsetBlocks, io.NumBlocks = IOWrite, off, n
				io.Iovs = [][]byte{buf[:100], buf[100:]} // odd split of the buffer
				var st Status
				ch.Submit(io, func(io *IO) { st = io.Status })
				r.Poll(0)
				if st != StatusSuccess {
					t.Fatalf("%+v off %d n %d: status %v", tc, off, n, st)
				}
				if len(d.pieces) != len(want) {
					t.Fatalf("%+v off %d n %d: pieces %v want %v", tc, off, n, d.pieces, want)
				}
				for i := range want {
					if d.pieces[i] != want[i] {
						t.Fatalf("%+v off %d n %d: pieces %v want %v", tc, off, n, d.pieces, want)
					}
				}
				if string(d.data[off*512:(off+n)*512]) != string(buf) {
					t.Fatalf("%+v off %d n %d: data mismatch after split write", tc, off, n)
				}
			}
		}
		if ch.Outstanding() != 0 {
			t.Fatalf("outstanding %d", ch.Outstanding())
		}
		r.Close()
	}
}

func TestNoMemRetried(t *testing.T) {
	d := &ramDev{info: Info{Name: "ram", BlockSize: 512, NumBlocks: 64}, nomemEvery: 3}
	r, ch := setup(t, d)
	defer r.Close()
	done := 0
	buf := make([]byte, 512)
	for i := 0; i < 20; i++ {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = IORead, uint64(i), 1, [][]byte{buf}
		ch.Submit(io, func(io *IO) {
			if io.Status != StatusSuccess {
				t.Errorf("status %v", io.Status)
			}
			done++
		})
	}
	for i := 0; i < 100 && done < 20; i++ {
		d.pump()
		r.Poll(reactor.Ticks(i))
	}
	if done != 20 {
		t.Fatalf("%d of 20 IOs completed; NoMem IOs were not retried", done)
	}
}

func TestCompletionNeverReentersSubmit(t *testing.T) {
	d := &ramDev{info: Info{Name: "ram", BlockSize: 512, NumBlocks: 64}, completeIn: true}
	r, ch := setup(t, d)
	defer r.Close()
	inSubmit := false
	called := 0
	buf := make([]byte, 512)
	for _, bad := range []bool{false, true} {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = IORead, 0, 1, [][]byte{buf}
		if bad {
			io.OffsetBlocks = 64 // invalid: also completes out of line
		}
		inSubmit = true
		ch.Submit(io, func(*IO) {
			if inSubmit {
				t.Error("completion ran inside Submit")
			}
			called++
		})
		inSubmit = false
	}
	r.Poll(0)
	if called != 2 {
		t.Fatalf("called %d", called)
	}
}

func TestPoolExhaustionAndReuse(t *testing.T) {
	d := &ramDev{info: Info{Name: "ram", BlockSize: 512, NumBlocks: 64}}
	r, ch := setup(t, d)
	defer r.Close()
	var ios []*IO
	for io := ch.Alloc(); io != nil; io = ch.Alloc() {
		ios = append(ios, io)
	}
	if len(ios) != 64 {
		t.Fatalf("pool gave %d IOs, want 64", len(ios))
	}
	for _, io := range ios {
		ch.Release(io)
	}
	if ch.Alloc() == nil {
		t.Fatal("released IOs did not return to the pool")
	}
}

// TestPutChannelFromCompletion: dropping the last reference from inside a
// completion callback must close the module channel exactly once.
func TestPutChannelFromCompletion(t *testing.T) {
	d := &ramDev{info: Info{Name: "ram", BlockSize: 512, NumBlocks: 64}, completeIn: true}
	r, ch := setup(t, d)
	defer r.Close()
	closes := 0
	ch.mod = &countingChan{ramChan{d}, &closes}
	buf := make([]byte, 512)
	io := ch.Alloc()
	io.Type, io.NumBlocks, io.Iovs = IORead, 1, [][]byte{buf}
	ch.Submit(io, func(*IO) { ch.PutChannel() })
	r.Poll(0)
	if closes != 1 {
		t.Fatalf("module channel closed %d times", closes)
	}
}

type countingChan struct {
	ramChan
	n *int
}

func (c *countingChan) Close() { *c.n++ }

// TestSplitLargerThanPool: a parent needing more children than the pool
// holds (pool 64, 200 children) goes out in waves and completes with the
// right data.
func TestSplitLargerThanPool(t *testing.T) {
	for _, inline := range []bool{true, false} {
		d := &ramDev{info: Info{Name: "ram", BlockSize: 512, NumBlocks: 256, MaxTransferBlocks: 1}, completeIn: inline}
		r, ch := setup(t, d)
		buf := make([]byte, 200*512)
		for i := range buf {
			buf[i] = byte(i / 512)
		}
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = IOWrite, 10, 200, [][]byte{buf}
		st := StatusPending
		ch.Submit(io, func(io *IO) { st = io.Status })
		for i := 0; i < 1000 && st == StatusPending; i++ {
			d.pump()
			r.Poll(reactor.Ticks(i))
		}
		if st != StatusSuccess {
			t.Fatalf("inline=%v: status %v after polling", inline, st)
		}
		if len(d.pieces) != 200 || string(d.data[10*512:210*512]) != string(buf) {
			t.Fatalf("inline=%v: %d pieces, data equal %v", inline, len(d.pieces), string(d.data[10*512:210*512]) == string(buf))
		}
		if ch.Outstanding() != 0 || len(ch.free) != 64 {
			t.Fatalf("inline=%v: outstanding %d free %d", inline, ch.Outstanding(), len(ch.free))
		}
		r.Close()
	}
}
