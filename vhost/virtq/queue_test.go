package virtq

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestNewQueueValidation(t *testing.T) {
	f := newFixture(t, 16, false, false)
	mod := func(fn func(c *Config)) Config { c := f.cfg; fn(&c); return c }
	tests := []struct {
		name string
		cfg  Config
		base uint16
		ok   bool
	}{
		{"valid", f.cfg, 0, true},
		{"user addresses", f.userCfg(), 0, true},
		{"size 0", mod(func(c *Config) { c.Size = 0 }), 0, false},
		{"size 12", mod(func(c *Config) { c.Size = 12 }), 0, false},
		{"size 1", mod(func(c *Config) { c.Size = 1 }), 0, true},
		{"desc misaligned", mod(func(c *Config) { c.Desc += 8 }), 0, false},
		{"avail odd", mod(func(c *Config) { c.Avail++ }), 0, false},
		{"avail 2-aligned", mod(func(c *Config) { c.Avail = reg0 + 0x8002 }), 0, true},
		{"used misaligned", mod(func(c *Config) { c.Used += 2 }), 0, false},
		{"desc outside memory", mod(func(c *Config) { c.Desc = reg1 + regSize }), 0, false},
		{"desc across regions", mod(func(c *Config) { c.Desc = reg1 - 128 }), 0, false},
		{"used at region end", mod(func(c *Config) { c.Used = reg2 + reg2Size - 4 }), 0, false},
		{"avail at very start of memory, 2 mod 4", mod(func(c *Config) { c.Avail = reg2 + 2 }), 0, true},
		{"guest addrs given as user", mod(func(c *Config) { c.Addrs = UserAddrs }), 0, false},
		{"base far from used", f.cfg, 17, false},
		{"base within size of used", f.cfg, 16, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := NewQueue(f.mem, tt.cfg, tt.base)
			if tt.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (q != nil || !errors.Is(err, ErrRing)) {
				t.Fatalf("q %v err %v", q, err)
			}
		})
	}
}

func TestPopPushPublish(t *testing.T) {
	f := newFixture(t, 8, false, false)
	for i := range 8 {
		f.setDesc(f.cfg.Desc, i, dataBase+uint64(i)*0x100, 0x100, W, 0)
	}
	q := f.queue(t, 0)
	heads := make([]uint16, 3)
	if n, err := q.Pop(heads); n != 0 || err != nil {
		t.Fatalf("empty ring popped %d %v", n, err)
	}
	if q.HasAvail() {
		t.Fatal("HasAvail on empty ring")
	}
	if err := q.Push(0, 0); !errors.Is(err, ErrNotOutstanding) {
		t.Fatalf("push before pop: %v", err)
	}
	f.offer(5, 2, 7, 1)
	if !q.HasAvail() {
		t.Fatal("HasAvail")
	}
	n, err := q.Pop(heads)
	if n != 3 || err != nil || heads[0] != 5 || heads[1] != 2 || heads[2] != 7 {
		t.Fatalf("pop %d %v %v", n, err, heads)
	}
	if n, _ := q.Pop(heads); n != 1 || heads[0] != 1 || q.LastAvail() != 4 || q.Outstanding() != 4 {
		t.Fatalf("second pop %d %v", n, heads[:n])
	}
	if n, _ := q.Pop(nil); n != 0 {
		t.Fatal("pop into nothing")
	}
	// Complete out of order.
	for _, c := range []struct {
		head uint16
		len  uint32
	}{{7, 100}, {5, 0}} {
		if err := q.Push(c.head, c.len); err != nil {
			t.Fatal(err)
		}
	}
	if f.usedIdx() != 0 {
		t.Fatal("used idx moved before Publish")
	}
	q.Publish()
	if f.usedIdx() != 2 || q.UsedIdx() != 2 {
		t.Fatalf("used idx %d", f.usedIdx())
	}
	if id, l := f.usedElem(0); id != 7 || l != 100 {
		t.Fatalf("elem 0: %d %d", id, l)
	}
	if id, l := f.usedElem(1); id != 5 || l != 0 {
		t.Fatalf("elem 1: %d %d", id, l)
	}
	if err := q.Push(8, 0); !errors.Is(err, ErrHead) {
		t.Fatalf("push head 8: %v", err)
	}
	q.Push(2, 1)
	q.Push(1, 1)
	if err := q.Push(1, 1); !errors.Is(err, ErrNotOutstanding) {
		t.Fatalf("push beyond popped: %v", err)
	}
	q.Publish()
	q.Publish() // nothing new: no change
	if f.usedIdx() != 4 || q.Outstanding() != 0 {
		t.Fatalf("used idx %d outstanding %d", f.usedIdx(), q.Outstanding())
	}
}

func TestAvailIdxTooFar(t *testing.T) {
	f := newFixture(t, 8, false, false)
	q := f.queue(t, 0)
	binary.LittleEndian.PutUint16(f.at(f.cfg.Avail+2, 2), 9)
	if _, err := q.Pop(make([]uint16, 32)); !errors.Is(err, ErrAvailIdx) {
		t.Fatalf("got %v", err)
	}
	if q.LastAvail() != 0 {
		t.Fatal("LastAvail moved")
	}
	binary.LittleEndian.PutUint16(f.at(f.cfg.Avail+2, 2), 8)
	if n, err := q.Pop(make([]uint16, 32)); n != 8 || err != nil {
		t.Fatalf("full ring: %d %v", n, err)
	}
}

// TestWraparound starts a queue near the top of the 16-bit index space and
// checks that available and used indices wrap through 65535 to 0.
func TestWraparound(t *testing.T) {
	f := newFixture(t, 8, true, false)
	const start = 65530
	for i := range 8 {
		f.setDesc(f.cfg.Desc, i, dataBase, 16, W, 0)
	}
	binary.LittleEndian.PutUint16(f.at(f.cfg.Avail+2, 2), start)
	binary.LittleEndian.PutUint16(f.at(f.cfg.Used+2, 2), start)
	q := f.queue(t, start)
	heads := make([]uint16, 4)
	c := NewChain(4)
	total := 0
	for round := range 5 {
		f.offer(uint16(round%8), uint16((round+1)%8), uint16((round+2)%8))
		for {
			n, err := q.Pop(heads)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			for _, h := range heads[:n] {
				if err := q.Walk(h, c); err != nil {
					t.Fatal(err)
				}
				if err := q.Push(h, 16); err != nil {
					t.Fatal(err)
				}
				total++
			}
			q.Publish()
		}
	}
	want := uint16(start + total)
	if total != 15 || q.LastAvail() != want || f.usedIdx() != want || want >= start {
		t.Fatalf("total %d lastAvail %d used %d want %d", total, q.LastAvail(), f.usedIdx(), want)
	}
	for i := range uint16(8) {
		idx := want - 8 + i
		id, _ := f.usedElem(idx)
		k := int(idx - start) // position in the offered sequence, across the wrap
		if id != uint32((k/3+k%3)%8) {
			t.Fatalf("used slot for idx %d holds %d", idx, id)
		}
	}
}

// refNeedEvent is the event rule spelled out: walk the indices moved past
// and see if event is among them.
func refMoved(old, new uint16) *[65536]bool {
	var moved [65536]bool
	for i := old; i != new; i++ {
		moved[i] = true
	}
	return &moved
}

func TestNeedEventAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pairs := [][2]uint16{{0, 0}, {0, 1}, {65535, 0}, {65535, 1}, {65530, 5}, {1, 0}, {0, 65535}, {32768, 0}}
	for range 60 {
		old := uint16(rng.Uint32())
		pairs = append(pairs, [2]uint16{old, old + uint16(rng.IntN(70000))})
	}
	for _, p := range pairs {
		old, new := p[0], p[1]
		moved := refMoved(old, new)
		for e := range 65536 {
			if got := NeedEvent(uint16(e), new, old); got != moved[e] {
				t.Fatalf("NeedEvent(event=%d, new=%d, old=%d) = %v", e, new, old, got)
			}
		}
	}
}

// pair is a driver and a device queue on the same fixture ring.
type pair struct {
	f *fixture
	d *Driver
	q *Queue
}

func newPair(t testing.TB, n uint16, eventIdx bool) *pair {
	f := newFixture(t, n, eventIdx, true)
	d, err := NewDriver(f.mem, f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(f.mem, f.userCfg(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{f, d, q}
}

func TestNotifyFlags(t *testing.T) {
	p := newPair(t, 8, false)
	hdr := []Buf{{dataBase, 16}}
	st := []Buf{{dataBase + 16, 1}}
	heads := make([]uint16, 8)

	// Kicks: the device starts with notifications on.
	p.d.Add(hdr, st)
	p.d.Publish()
	if !p.d.NeedsKick() {
		t.Fatal("no kick with notifications on")
	}
	if p.d.NeedsKick() {
		t.Fatal("kick without anything new")
	}
	p.q.DisableNotify()
	p.d.Add(hdr, st)
	p.d.Publish()
	if p.d.NeedsKick() {
		t.Fatal("kick while the device polls")
	}
	if !p.q.EnableNotify() {
		t.Fatal("EnableNotify missed pending entries")
	}
	p.d.Add(hdr, st)
	p.d.Publish()
	if !p.d.NeedsKick() {
		t.Fatal("no kick after EnableNotify")
	}

	// Interrupts.
	n, _ := p.q.Pop(heads)
	if n != 3 {
		t.Fatal(n)
	}
	if p.q.EnableNotify() {
		t.Fatal("EnableNotify with nothing pending")
	}
	if p.q.NeedsNotify() {
		t.Fatal("notify with nothing published")
	}
	p.d.DisableInterrupts()
	p.q.Push(heads[0], 1)
	p.q.Publish()
	if p.q.NeedsNotify() {
		t.Fatal("notify with NO_INTERRUPT")
	}
	if !p.d.EnableInterrupts() {
		t.Fatal("EnableInterrupts missed a completion")
	}
	p.q.Push(heads[1], 1)
	p.q.Publish()
	if !p.q.NeedsNotify() {
		t.Fatal("no notify with interrupts on")
	}
	if p.q.NeedsNotify() {
		t.Fatal("second notify for the same entries")
	}
}

func TestNotifyEventIdx(t *testing.T) {
	p := newPair(t, 8, true)
	hdr := []Buf{{dataBase, 16}}
	st := []Buf{{dataBase + 16, 1}}
	heads := make([]uint16, 8)
	used := make([]Used, 8)

	if p.d.EnableInterrupts() { // used_event = 0
		t.Fatal("completions on a fresh ring")
	}
	for range 3 {
		p.d.Add(hdr, st)
	}
	p.d.Publish()
	if !p.d.NeedsKick() { // avail_event 0 is in [0, 3)
		t.Fatal("no kick for avail_event 0")
	}
	if n, _ := p.q.Pop(heads); n != 3 {
		t.Fatal(n)
	}
	p.q.Push(heads[0], 1)
	p.q.Publish()
	if !p.q.NeedsNotify() { // first decision after start: always
		t.Fatal("first notify")
	}
	p.q.Push(heads[1], 1)
	p.q.Publish()
	if p.q.NeedsNotify() { // used_event 0 is not in [1, 2)
		t.Fatal("notify past used_event")
	}
	if n, _ := p.d.Reap(used); n != 2 {
		t.Fatal(n)
	}
	if p.d.EnableInterrupts() { // used_event = 2
		t.Fatal("nothing should be pending")
	}
	p.q.Push(heads[2], 1)
	p.q.Publish()
	if !p.q.NeedsNotify() { // 2 is in [2, 3)
		t.Fatal("no notify at used_event")
	}
	if p.q.NeedsNotify() {
		t.Fatal("repeat notify")
	}

	// Kick suppression: the device asks for a kick at its next entry only.
	if p.q.EnableNotify() {
		t.Fatal("pending after pop")
	}
	p.d.Add(hdr, st)
	p.d.Publish()
	if !p.d.NeedsKick() { // avail_event 3 in [3, 4)
		t.Fatal("no kick at avail_event")
	}
	p.d.Add(hdr, st)
	p.d.Publish()
	if p.d.NeedsKick() { // avail_event 3 not in [4, 5)
		t.Fatal("kick past avail_event")
	}
	p.q.DisableNotify() // no-op with event idx
	if !p.q.EnableNotify() {
		t.Fatal("EnableNotify should see pending entries")
	}

	// A polling driver: used_event behind lastUsed.
	p.d.DisableInterrupts()
	n, _ := p.q.Pop(heads)
	for _, h := range heads[:n] {
		p.q.Push(h, 1)
	}
	p.q.Publish()
	if p.q.NeedsNotify() {
		t.Fatal("notify to a polling driver")
	}
}

// TestDriverDevice runs requests through the driver into the device side
// and back, well past 16-bit index wraparound, checking data both ways.
func TestDriverDevice(t *testing.T) {
	for _, eventIdx := range []bool{false, true} {
		p := newPair(t, 64, eventIdx)
		rng := rand.New(rand.NewPCG(5, 6))
		c := NewChain(8)
		heads := make([]uint16, 32)
		used := make([]Used, 32)
		type req struct {
			tag    uint32
			in     uint64
			active bool
		}
		reqs := make([]req, 64)
		var tag uint32
		done := 0
		for done < 70000 {
			// Driver: add a random number of requests, 1-3 out buffers
			// and 1-2 in buffers each, some crossing into region 1.
			for k := rng.IntN(40); k > 0; k-- {
				nOut, nIn := 1+rng.IntN(3), 1+rng.IntN(2)
				if p.d.NumFree() < nOut+nIn {
					break
				}
				var out, in [3]Buf
				tag++
				slot := uint64(tag % 64)
				base := uint64(reg1 - 0x8000 + slot*0x200) // some buffers straddle reg1
				for i := range nOut {
					out[i] = Buf{base + uint64(i)*16, 16}
					binary.LittleEndian.PutUint32(p.f.at(out[i].Addr, 4), tag+uint32(i))
				}
				for i := range nIn {
					in[i] = Buf{base + 0x100 + uint64(i)*8, 8}
				}
				h, err := p.d.Add(out[:nOut], in[:nIn])
				if err != nil {
					t.Fatal(err)
				}
				if reqs[h].active {
					t.Fatalf("head %d handed out twice", h)
				}
				reqs[h] = req{tag: tag, in: in[0].Addr, active: true}
			}
			p.d.Publish()
			p.d.NeedsKick()
			// Device: pop, check the data, answer, in a shuffled order.
			n, err := p.q.Pop(heads[:rng.IntN(32)+1])
			if err != nil {
				t.Fatal(err)
			}
			rng.Shuffle(n, func(i, j int) { heads[i], heads[j] = heads[j], heads[i] })
			for _, h := range heads[:n] {
				if err := p.q.Walk(h, c); err != nil {
					t.Fatal(c.Describe(err))
				}
				var sum uint32
				var hdr [4]byte
				copyFrom(hdr[:], c.Out())
				sum = binary.LittleEndian.Uint32(hdr[:])
				var ans [8]byte
				binary.LittleEndian.PutUint32(ans[:], sum*3)
				copyTo(c.In(), ans[:])
				if err := p.q.Push(h, 8); err != nil {
					t.Fatal(err)
				}
			}
			p.q.Publish()
			p.q.NeedsNotify()
			// Driver: reap and verify.
			for {
				m, err := p.d.Reap(used)
				if err != nil {
					t.Fatal(err)
				}
				if m == 0 {
					break
				}
				for _, u := range used[:m] {
					r := reqs[u.Head]
					if !r.active || u.Len != 8 {
						t.Fatalf("reaped %+v for %+v", u, r)
					}
					if got := binary.LittleEndian.Uint32(p.f.at(r.in, 4)); got != r.tag*3 {
						t.Fatalf("request %d: answer %d, want %d", r.tag, got, r.tag*3)
					}
					reqs[u.Head].active = false
					done++
				}
			}
		}
		// Every request the device completed was reaped: the driver's free
		// descriptors are those of the requests still in the device.
		if p.q.Outstanding() == 0 && p.d.NumFree() != 64 {
			t.Fatalf("all requests done but %d descriptors free", p.d.NumFree())
		}
	}
}

// copyFrom gathers the start of segs into dst.
func copyFrom(dst []byte, segs [][]byte) {
	for _, s := range segs {
		n := copy(dst, s)
		dst = dst[n:]
		if len(dst) == 0 {
			return
		}
	}
}

// copyTo scatters src into segs.
func copyTo(segs [][]byte, src []byte) {
	for _, s := range segs {
		n := copy(s, src)
		src = src[n:]
		if len(src) == 0 {
			return
		}
	}
}

func TestDriverErrors(t *testing.T) {
	p := newPair(t, 4, false)
	if _, err := p.d.Add(nil, nil); !errors.Is(err, ErrEmptyChain) {
		t.Fatal(err)
	}
	if _, err := p.d.Add(make([]Buf, 3), make([]Buf, 2)); !errors.Is(err, ErrRingFull) {
		t.Fatal(err)
	}
	h, err := p.d.Add(make([]Buf, 2), make([]Buf, 2))
	if err != nil || p.d.NumFree() != 0 {
		t.Fatal(err)
	}
	if _, err := p.d.Add(nil, make([]Buf, 1)); !errors.Is(err, ErrRingFull) {
		t.Fatal(err)
	}
	// A device that returns an id the driver never handed out.
	p.d.Publish()
	binary.LittleEndian.PutUint32(p.f.at(p.f.cfg.Used+4, 4), uint32(h+1))
	binary.LittleEndian.PutUint16(p.f.at(p.f.cfg.Used+2, 2), 1)
	if n, err := p.d.Reap(make([]Used, 4)); n != 0 || !errors.Is(err, ErrNotOutstanding) {
		t.Fatalf("%d %v", n, err)
	}
	binary.LittleEndian.PutUint16(p.f.at(p.f.cfg.Used+2, 2), 5)
	if _, err := p.d.Reap(make([]Used, 4)); !errors.Is(err, ErrUsedIdx) {
		t.Fatal(err)
	}
	// The driver's free list is its own: garbage in the descriptor table
	// does not change what Reap frees.
	binary.LittleEndian.PutUint32(p.f.at(p.f.cfg.Used+4, 4), uint32(h))
	binary.LittleEndian.PutUint16(p.f.at(p.f.cfg.Used+2, 2), 1)
	for i := range 4 {
		p.f.setDesc(p.f.cfg.Desc, i, 0, 0, N, 3)
	}
	if n, err := p.d.Reap(make([]Used, 4)); n != 1 || err != nil || p.d.NumFree() != 4 {
		t.Fatalf("%d %v free %d", n, err, p.d.NumFree())
	}
	if _, err := p.d.Add(make([]Buf, 4), nil); err != nil {
		t.Fatal(err)
	}
}

func TestSetMemory(t *testing.T) {
	p := newPair(t, 8, false)
	p.d.Add([]Buf{{dataBase, 4}}, nil)
	p.d.Publish()
	// The same memory under a new table (as after SET_MEM_TABLE with new
	// fds); then a table that lacks the ring.
	same, err := NewGuestMemory(p.f.mem.Regions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.q.SetMemory(same); err != nil || p.q.Memory() != same {
		t.Fatal(err)
	}
	noRing, _, _ := same.Without(reg0, regSize, userBase+reg0)
	if err := p.q.SetMemory(noRing); !errors.Is(err, ErrRing) || p.q.Memory() != same {
		t.Fatalf("%v", err)
	}
	heads := make([]uint16, 1)
	if n, _ := p.q.Pop(heads); n != 1 {
		t.Fatal("queue broken by a refused table")
	}
}

func TestLayout(t *testing.T) {
	l, err := NewLayout(256, 4096)
	if err != nil || l.AvailOff != 4096 || l.UsedOff != 8192 || l.Len != 8192+6+8*256 {
		t.Fatalf("%+v %v", l, err)
	}
	l, err = NewLayout(1, 4)
	if err != nil || l.AvailOff != 16 || l.UsedOff != 24 || l.Len != 24+14 {
		t.Fatalf("%+v %v", l, err)
	}
	if _, err := NewLayout(3, 4); err == nil {
		t.Fatal("size 3")
	}
	if _, err := NewLayout(4, 2); err == nil {
		t.Fatal("used align 2")
	}
	if !ValidSize(32768) || ValidSize(65536) || ValidSize(0) {
		t.Fatal("ValidSize")
	}
}

// TestDriverChainsShareALine: up to a quarter of the ring,
// three-descriptor chains (the usual virtio-blk request) start at a
// multiple of 4 and use consecutive descriptors, so that each lies in one
// 64-byte line of the table, also after chains completed in another order
// than they were added.
func TestDriverChainsShareALine(t *testing.T) {
	p := newPair(t, 128, true)
	rng := rand.New(rand.NewPCG(7, 8))
	hdr := []Buf{{dataBase, 16}, {dataBase + 64, 4096}}
	st := []Buf{{dataBase + 32, 1}}
	heads := make([]uint16, 32)
	c := NewChain(4)
	// Up to a quarter of the ring: the aligned places (the fourth
	// descriptors of the lines serve longer chains and overflow).
	for round := 0; round < 200; round++ {
		for p.d.NumFree() >= 128-3*32+3 {
			h, err := p.d.Add(hdr, st)
			if err != nil {
				t.Fatal(err)
			}
			if h%4 != 0 {
				t.Fatalf("round %d: chain head %d is not at the start of a 64-byte line", round, h)
			}
			for i, want := 0, h; i < 3; i, want = i+1, want+1 {
				d := p.f.at(p.f.cfg.Desc+16*uint64(want), 16)
				if i < 2 && binary.LittleEndian.Uint16(d[14:]) != want+1 {
					t.Fatalf("round %d: descriptor %d links to %d, want %d", round, want, binary.LittleEndian.Uint16(d[14:]), want+1)
				}
			}
		}
		p.d.Publish()
		n, err := p.q.Pop(heads)
		if err != nil {
			t.Fatal(err)
		}
		rng.Shuffle(n, func(i, j int) { heads[i], heads[j] = heads[j], heads[i] })
		for _, h := range heads[:n][:1+rng.IntN(n)] {
			if err := p.q.Walk(h, c); err != nil {
				t.Fatal(err)
			}
			p.q.Push(h, 1)
		}
		p.q.Publish()
		used := make([]Used, 32)
		if _, err := p.d.Reap(used); err != nil {
			t.Fatal(err)
		}
	}
}
