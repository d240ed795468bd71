package virtq

import (
	"errors"
	"testing"
)

const itab = reg0 + 0x20000 // where tests put indirect tables

// desc is one descriptor to write: in the queue's table when tbl is 0,
// else in the table at guest address tbl.
type desc struct {
	tbl   uint64
	i     int
	addr  uint64
	len   uint32
	flags uint16
	next  uint16
}

const (
	N = DescFNext
	W = DescFWrite
	I = DescFIndirect
)

func TestWalk(t *testing.T) {
	tests := []struct {
		name        string
		indirect    bool
		descs       []desc
		head        uint16
		segCap      int
		wantErr     error
		wantSegs    []int // segment lengths
		wantOut     int   // NumOut
		wantDescs   int
		badDesc     uint16
		badIndirect bool
	}{
		{name: "single readable", descs: []desc{{0, 0, dataBase, 512, 0, 0}},
			wantSegs: []int{512}, wantOut: 1, wantDescs: 1},
		{name: "single writable", descs: []desc{{0, 3, dataBase, 1, W, 0}}, head: 3,
			wantSegs: []int{1}, wantOut: 0, wantDescs: 1},
		{name: "blk request out,in,in", descs: []desc{
			{0, 0, dataBase, 16, N, 5}, {0, 5, dataBase + 0x1000, 4096, N | W, 2}, {0, 2, dataBase + 0x3000, 1, W, 0}},
			wantSegs: []int{16, 4096, 1}, wantOut: 1, wantDescs: 3},
		{name: "zero-length buffer", descs: []desc{{0, 0, dataBase, 16, N, 1}, {0, 1, 0, 0, N | W, 2}, {0, 2, dataBase, 1, W, 0}},
			wantSegs: []int{16, 1}, wantOut: 1, wantDescs: 3},
		{name: "buffer across regions", descs: []desc{{0, 0, reg1 - 100, 300, W, 0}},
			wantSegs: []int{100, 200}, wantOut: 0, wantDescs: 1},
		{name: "full-length chain", descs: func() []desc {
			var ds []desc
			for i := range 16 {
				ds = append(ds, desc{0, i, dataBase + uint64(i)*64, 64, N, uint16(i + 1)})
			}
			ds[15].flags = 0
			return ds
		}(), wantSegs: []int{64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64}, wantOut: 16, wantDescs: 16},
		{name: "indirect", indirect: true, descs: []desc{
			{0, 1, itab, 48, I, 0},
			{itab, 0, dataBase, 16, N, 1}, {itab, 1, dataBase + 0x1000, 4096, N | W, 2}, {itab, 2, dataBase + 0x3000, 1, W, 0}},
			head: 1, wantSegs: []int{16, 4096, 1}, wantOut: 1, wantDescs: 4},
		{name: "indirect ignores WRITE on itself", indirect: true, descs: []desc{
			{0, 0, itab, 16, I | W, 0}, {itab, 0, dataBase, 16, 0, 0}},
			wantSegs: []int{16}, wantOut: 1, wantDescs: 2},
		{name: "mixed direct then indirect", indirect: true, descs: []desc{
			{0, 0, dataBase, 16, N, 7}, {0, 7, itab, 32, I, 0},
			{itab, 0, dataBase + 0x1000, 512, N | W, 1}, {itab, 1, dataBase + 0x3000, 1, W, 0}},
			wantSegs: []int{16, 512, 1}, wantOut: 1, wantDescs: 4},
		{name: "indirect table of queue size", indirect: true, descs: func() []desc {
			ds := []desc{{0, 0, itab, 16 * 16, I, 0}}
			for i := range 16 {
				ds = append(ds, desc{itab, i, dataBase, 8, N | W, uint16(i + 1)})
			}
			ds[16].flags = W
			return ds
		}(), wantSegs: []int{8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8}, wantOut: 0, wantDescs: 17},

		{name: "head out of range", head: 16, wantErr: ErrHead, badDesc: 16},
		{name: "next out of range", descs: []desc{{0, 0, dataBase, 16, N, 16}},
			wantErr: ErrNext, wantSegs: []int{16}, wantOut: 1, wantDescs: 1, badDesc: 0},
		{name: "self loop", descs: []desc{{0, 4, dataBase, 16, N, 4}}, head: 4,
			wantErr: ErrChainTooLong, wantSegs: rep(16, 16), wantOut: 16, wantDescs: 16, badDesc: 4},
		{name: "two-cycle", descs: []desc{{0, 0, dataBase, 16, N, 1}, {0, 1, dataBase, 16, N, 0}},
			wantErr: ErrChainTooLong, wantSegs: rep(16, 16), wantOut: 16, wantDescs: 16, badDesc: 1},
		{name: "buffer outside memory", descs: []desc{{0, 0, dataBase, 16, N, 1}, {0, 1, reg2 + reg2Size - 1, 2, W, 0}},
			wantErr: ErrAddr, wantSegs: []int{16}, wantOut: 1, wantDescs: 2, badDesc: 1},
		{name: "buffer address wraps", descs: []desc{{0, 0, ^uint64(0) - 1, 16, 0, 0}},
			wantErr: ErrAddr, wantDescs: 1},
		{name: "read after write", descs: []desc{{0, 0, dataBase, 16, W | N, 1}, {0, 1, dataBase, 16, 0, 0}},
			wantErr: ErrReadAfterWrite, wantSegs: []int{16}, wantDescs: 2, badDesc: 1},
		{name: "too many segments", segCap: 2, descs: []desc{
			{0, 0, dataBase, 16, N, 1}, {0, 1, dataBase, 16, N, 2}, {0, 2, dataBase, 1, W, 0}},
			wantErr: ErrIovecFull, wantSegs: []int{16, 16}, wantOut: 2, wantDescs: 3, badDesc: 2},
		{name: "indirect not negotiated", descs: []desc{{0, 0, itab, 16, I, 0}},
			wantErr: ErrIndirectNotNegotiated, wantDescs: 1},
		{name: "nested indirect", indirect: true, descs: []desc{{0, 0, itab, 16, I, 0}, {itab, 0, itab, 16, I, 0}},
			wantErr: ErrNestedIndirect, wantDescs: 2, badIndirect: true},
		{name: "indirect with next", indirect: true, descs: []desc{{0, 0, itab, 16, I | N, 1}},
			wantErr: ErrIndirectNext, wantDescs: 1},
		{name: "indirect length zero", indirect: true, descs: []desc{{0, 0, itab, 0, I, 0}},
			wantErr: ErrIndirectLen, wantDescs: 1},
		{name: "indirect length not multiple of 16", indirect: true, descs: []desc{{0, 0, itab, 24, I, 0}},
			wantErr: ErrIndirectLen, wantDescs: 1},
		{name: "indirect longer than queue", indirect: true, descs: []desc{{0, 0, itab, 17 * 16, I, 0}},
			wantErr: ErrIndirectLen, wantDescs: 1},
		{name: "indirect table outside memory", indirect: true, descs: []desc{{0, 0, reg2 + reg2Size - 16, 32, I, 0}},
			wantErr: ErrIndirectAddr, wantDescs: 1},
		{name: "indirect table across regions", indirect: true, descs: []desc{{0, 0, reg1 - 16, 32, I, 0}},
			wantErr: ErrIndirectAddr, wantDescs: 1},
		{name: "loop inside indirect", indirect: true, descs: []desc{
			{0, 0, itab, 32, I, 0}, {itab, 0, dataBase, 8, N, 1}, {itab, 1, dataBase, 8, N, 0}},
			wantErr: ErrChainTooLong, wantSegs: []int{8, 8}, wantOut: 2, wantDescs: 3, badDesc: 1, badIndirect: true},
		{name: "next beyond indirect table", indirect: true, descs: []desc{
			{0, 0, itab, 32, I, 0}, {itab, 0, dataBase, 8, N, 2}},
			wantErr: ErrNext, wantSegs: []int{8}, wantOut: 1, wantDescs: 2, badDesc: 0, badIndirect: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 16, false, tt.indirect)
			for _, d := range tt.descs {
				tbl := d.tbl
				if tbl == 0 {
					tbl = f.cfg.Desc
				}
				f.setDesc(tbl, d.i, d.addr, d.len, d.flags, d.next)
			}
			q := f.queue(t, 0)
			segCap := tt.segCap
			if segCap == 0 {
				segCap = 64
			}
			c := NewChain(segCap)
			err := q.Walk(tt.head, c)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if c.Head != tt.head || c.NumDesc != tt.wantDescs || c.NumOut != tt.wantOut {
				t.Fatalf("head %d descs %d out %d, want %d %d %d", c.Head, c.NumDesc, c.NumOut, tt.head, tt.wantDescs, tt.wantOut)
			}
			if err != nil && (c.BadDesc != tt.badDesc || c.BadIndirect != tt.badIndirect) {
				t.Fatalf("failure at %d (indirect %v), want %d (%v): %s", c.BadDesc, c.BadIndirect, tt.badDesc, tt.badIndirect, c.Describe(err))
			}
			if len(c.Segs) != len(tt.wantSegs) {
				t.Fatalf("%d segments, want %d", len(c.Segs), len(tt.wantSegs))
			}
			var out, in uint64
			for i, s := range c.Segs {
				if len(s) != tt.wantSegs[i] {
					t.Fatalf("segment %d is %d bytes, want %d", i, len(s), tt.wantSegs[i])
				}
				if !q.Memory().Contains(s) {
					t.Fatalf("segment %d outside guest memory", i)
				}
				if c.Writable(i) {
					in += uint64(len(s))
				} else {
					out += uint64(len(s))
				}
			}
			if err == nil && (out != c.OutLen || in != c.InLen) {
				t.Fatalf("lengths out %d in %d, segments say %d %d", c.OutLen, c.InLen, out, in)
			}
			if len(c.Out())+len(c.In()) != len(c.Segs) {
				t.Fatal("Out/In do not partition Segs")
			}
		})
	}
}

// TestWalkPointsIntoGuestMemory checks that segments alias the guest's
// buffers: what the driver wrote is what the device reads, and what the
// device writes the driver sees, with no copy.
func TestWalkPointsIntoGuestMemory(t *testing.T) {
	f := newFixture(t, 8, false, false)
	copy(f.at(dataBase, 5), "hello")
	f.setDesc(f.cfg.Desc, 0, dataBase, 5, N, 1)
	f.setDesc(f.cfg.Desc, 1, dataBase+0x100, 3, W, 0)
	q := f.queue(t, 0)
	c := NewChain(4)
	if err := q.Walk(0, c); err != nil {
		t.Fatal(err)
	}
	if string(c.Out()[0]) != "hello" {
		t.Fatalf("read %q", c.Out()[0])
	}
	copy(c.In()[0], "abc")
	if string(f.at(dataBase+0x100, 3)) != "abc" {
		t.Fatal("device write not visible in guest memory")
	}
}

func rep(v, n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = v
	}
	return r
}
