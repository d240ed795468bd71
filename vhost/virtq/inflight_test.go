package virtq

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func TestInflightSizes(t *testing.T) {
	// One region: a 16-byte header and 16 bytes per entry, 64-byte aligned.
	for _, c := range []struct {
		qs   uint16
		want uint64
	}{{1, 64}, {2, 64}, {3, 64}, {4, 128}, {128, 2112}, {256, 4160}, {32768, 524352}} {
		if got := InflightQueueSize(c.qs); got != c.want {
			t.Fatalf("InflightQueueSize(%d) = %d, want %d", c.qs, got, c.want)
		}
	}
	if InflightSize(4, 128) != 4*2112 {
		t.Fatal("InflightSize")
	}
	if _, err := NewInflight(make([]byte, 100), 1, 128); !errors.Is(err, ErrInflight) {
		t.Fatal(err)
	}
	f, err := NewInflight(make([]byte, InflightSize(2, 8)), 2, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Queue(2); !errors.Is(err, ErrInflight) {
		t.Fatal(err)
	}
}

// inflightFixture is a queue of 8 with an inflight area.
type inflightFixture struct {
	*fixture
	area []byte
}

func newInflightFixture(t *testing.T) *inflightFixture {
	f := newFixture(t, 8, false, false)
	for i := range 8 {
		f.setDesc(f.cfg.Desc, i, dataBase+uint64(i)*0x100, 0x100, W, 0)
	}
	return &inflightFixture{fixture: f, area: make([]byte, InflightSize(2, 8))}
}

// start plays a (re)started back-end: SET_VRING_BASE base, inflight area
// attached, recovery run. It returns the queue and the heads to resubmit.
func (f *inflightFixture) start(t *testing.T, base uint16) (*Queue, []uint16, *InflightQueue) {
	t.Helper()
	q := f.queue(t, base)
	area, err := NewInflight(f.area, 2, 8)
	if err != nil {
		t.Fatal(err)
	}
	iq, err := area.Queue(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.AttachInflight(iq); err != nil {
		t.Fatal(err)
	}
	heads, err := q.RecoverInflight(nil)
	if err != nil {
		t.Fatal(err)
	}
	return q, heads, iq
}

func pop(t *testing.T, q *Queue, n int) []uint16 {
	t.Helper()
	heads := make([]uint16, n)
	got, err := q.Pop(heads)
	if err != nil || got != n {
		t.Fatalf("popped %d %v, want %d", got, err, n)
	}
	return heads
}

func TestInflightTracking(t *testing.T) {
	f := newInflightFixture(t)
	q, heads, iq := f.start(t, 0)
	if len(heads) != 0 || iq.Version() != InflightVersion || iq.DescNum() != 8 {
		t.Fatalf("fresh region: %v version %d desc_num %d", heads, iq.Version(), iq.DescNum())
	}
	f.offer(3, 1, 6)
	got := pop(t, q, 3)
	for _, h := range got {
		if !iq.IsInflight(h) {
			t.Fatalf("head %d not marked", h)
		}
	}
	q.Push(1, 0)
	if !iq.IsInflight(1) {
		t.Fatal("cleared before the used idx was published")
	}
	q.Publish()
	if iq.IsInflight(1) || !iq.IsInflight(3) || !iq.IsInflight(6) || iq.UsedIdx() != 1 || iq.LastBatchHead() != 1 {
		t.Fatalf("after publish: used_idx %d last_batch_head %d", iq.UsedIdx(), iq.LastBatchHead())
	}
	// The first region of the area is untouched.
	if !slices.Equal(f.area[:InflightQueueSize(8)], make([]byte, InflightQueueSize(8))) {
		t.Fatal("queue 1 wrote into queue 0's region")
	}
}

func TestInflightRecoverOutOfOrder(t *testing.T) {
	f := newInflightFixture(t)
	q, _, _ := f.start(t, 0)
	f.offer(4, 0, 7, 2, 5)
	pop(t, q, 4) // 4 0 7 2 popped; 5 still in the ring
	q.Push(7, 1)
	q.Push(4, 1)
	q.Publish()
	// The back-end dies. The front-end restarts it with base = used idx.
	q2, heads, _ := f.start(t, f.usedIdx())
	if !slices.Equal(heads, []uint16{0, 2}) {
		t.Fatalf("resubmit %v, want [0 2] in pop order", heads)
	}
	if q2.LastAvail() != 4 {
		t.Fatalf("LastAvail %d, want 4", q2.LastAvail())
	}
	// Pop continues with what was never popped.
	if got := pop(t, q2, 1); got[0] != 5 {
		t.Fatalf("next pop %v, want 5", got)
	}
	c := NewChain(4)
	for _, h := range append(heads, 5) {
		if err := q2.Walk(h, c); err != nil {
			t.Fatal(err)
		}
		if err := q2.Push(h, 1); err != nil {
			t.Fatal(err)
		}
	}
	q2.Publish()
	if q2.Outstanding() != 0 || f.usedIdx() != 5 {
		t.Fatalf("outstanding %d used %d", q2.Outstanding(), f.usedIdx())
	}
	// A second restart finds nothing in flight.
	q3, heads, _ := f.start(t, 5)
	if len(heads) != 0 || q3.LastAvail() != 5 {
		t.Fatalf("%v %d", heads, q3.LastAvail())
	}
}

func TestInflightRecoverHalfCommittedBatch(t *testing.T) {
	f := newInflightFixture(t)
	q, _, iq := f.start(t, 0)
	f.offer(1, 2, 3, 4)
	pop(t, q, 4)
	q.Push(2, 1)
	q.Publish()
	// Next batch: 3 and 1 pushed and used.idx stored in the ring, but the
	// back-end dies before clearing their inflight marks.
	q.Push(3, 1)
	q.Push(1, 1)
	saved := slices.Clone(f.area)
	q.Publish()
	copy(f.area, saved) // undo the commit: the crash came before it
	if !iq.IsInflight(3) || iq.UsedIdx() != 1 || f.usedIdx() != 3 {
		t.Fatal("crash simulation")
	}
	q2, heads, iq2 := f.start(t, f.usedIdx())
	if !slices.Equal(heads, []uint16{4}) {
		t.Fatalf("resubmit %v, want [4]", heads)
	}
	if iq2.UsedIdx() != 3 || iq2.IsInflight(3) || iq2.IsInflight(1) || q2.LastAvail() != 4 {
		t.Fatalf("used_idx %d lastAvail %d", iq2.UsedIdx(), q2.LastAvail())
	}
	// A batch pushed but not published is still in flight.
	q2.Push(4, 1)
	_, heads, _ = f.start(t, f.usedIdx())
	if !slices.Equal(heads, []uint16{4}) {
		t.Fatalf("unpublished push: resubmit %v, want [4]", heads)
	}
}

func TestInflightCorruptRegion(t *testing.T) {
	setup := func(t *testing.T) (*inflightFixture, []byte) {
		f := newInflightFixture(t)
		q, _, _ := f.start(t, 0)
		f.offer(1, 2)
		pop(t, q, 2)
		return f, f.area[InflightQueueSize(8):]
	}
	tests := []struct {
		name string
		mod  func(r []byte)
	}{
		{"version 2", func(r []byte) { binary.NativeEndian.PutUint16(r[8:], 2) }},
		{"desc_num 0", func(r []byte) { binary.NativeEndian.PutUint16(r[10:], 0) }},
		{"desc_num beyond the region", func(r []byte) { binary.NativeEndian.PutUint16(r[10:], 9) }},
		{"used_idx far from the ring", func(r []byte) { binary.NativeEndian.PutUint16(r[14:], 100) }},
		{"batch list leaves the table", func(r []byte) {
			binary.NativeEndian.PutUint16(r[14:], 65535) // one entry to settle
			binary.NativeEndian.PutUint16(r[12:], 8)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, region := setup(t)
			tt.mod(region)
			q := f.queue(t, 0)
			area, _ := NewInflight(f.area, 2, 8)
			iq, _ := area.Queue(1)
			err := q.AttachInflight(iq)
			if err == nil {
				_, err = q.RecoverInflight(nil)
			}
			if !errors.Is(err, ErrInflight) {
				t.Fatalf("got %v, want ErrInflight", err)
			}
		})
	}
	f := newInflightFixture(t)
	q := f.queue(t, 0)
	if _, err := q.RecoverInflight(nil); !errors.Is(err, ErrInflight) {
		t.Fatal("recover without a region")
	}
	small, _ := NewInflight(make([]byte, InflightSize(1, 4)), 1, 4)
	iq, _ := small.Queue(0)
	if err := q.AttachInflight(iq); !errors.Is(err, ErrInflight) {
		t.Fatal("region smaller than the queue accepted")
	}
}
