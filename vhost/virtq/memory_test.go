package virtq

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestNewGuestMemoryValidation(t *testing.T) {
	a := make([]byte, 0x1000)
	b := make([]byte, 0x1000)
	tests := []struct {
		name string
		rs   []Region
		ok   bool
	}{
		{"empty table", nil, true},
		{"adjacent", []Region{NewRegion(0, 0x10000, a), NewRegion(0x1000, 0x11000, b)}, true},
		{"guest overlap", []Region{NewRegion(0, 0x10000, a), NewRegion(0xfff, 0x20000, b)}, false},
		{"same guest", []Region{NewRegion(0x5000, 0x10000, a), NewRegion(0x5000, 0x20000, b)}, false},
		{"user overlap", []Region{NewRegion(0, 0x10000, a), NewRegion(0x8000, 0x10800, b)}, false},
		{"empty region", []Region{NewRegion(0, 0, nil)}, false},
		{"guest wraps", []Region{NewRegion(^uint64(0)-0xfff+1, 0, a)}, false},
		{"guest ends at 2^64", []Region{NewRegion(^uint64(0)-0xfff, 0, a)}, false},
		{"guest just below top", []Region{NewRegion(^uint64(0)-0x1fff, 0, a)}, true},
		{"user wraps", []Region{NewRegion(0, ^uint64(0)-0x10, a)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewGuestMemory(tt.rs...)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrRegion) || m != nil) {
				t.Fatalf("err %v m %v", err, m)
			}
		})
	}
	if _, err := NewGuestMemory(make([]Region, MaxRegions+1)...); !errors.Is(err, ErrRegion) {
		t.Fatal(err)
	}
}

func TestTranslate(t *testing.T) {
	f := newFixture(t, 16, false, false)
	type seg struct {
		region int
		off    int
		len    int
	}
	tests := []struct {
		name    string
		gpa, n  uint64
		cap     int
		want    []seg
		wantErr error
	}{
		{"inside", reg0 + 10, 100, 4, []seg{{0, 10, 100}}, nil},
		{"whole region", reg0, regSize, 4, []seg{{0, 0, regSize}}, nil},
		{"region end", reg1 - 1, 1, 4, []seg{{0, regSize - 1, 1}}, nil},
		{"crosses adjacent regions", reg1 - 16, 48, 4, []seg{{0, regSize - 16, 16}, {1, 0, 32}}, nil},
		{"spans two whole regions", reg0, 2 * regSize, 4, []seg{{0, 0, regSize}, {1, 0, regSize}}, nil},
		{"third region", reg2 + 0x800, 0x800, 4, []seg{{2, 0x800, 0x800}}, nil},
		{"zero length anywhere", 0x42, 0, 0, nil, nil},
		{"before memory", reg0 - 1, 2, 4, nil, ErrAddr},
		{"into hole", reg1 + regSize - 8, 16, 4, nil, ErrAddr},
		{"in hole", reg1 + regSize + 100, 1, 4, nil, ErrAddr},
		{"past last region", reg2 + reg2Size - 1, 2, 4, nil, ErrAddr},
		{"wraps", ^uint64(0) - 4, 10, 4, nil, ErrAddr},
		{"no room", reg0, 8, 0, nil, ErrIovecFull},
		{"room for one of two", reg1 - 8, 16, 1, nil, ErrIovecFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iov := make([][]byte, 1, 1+tt.cap)
			iov[0] = []byte("sentinel")
			out, err := f.mem.Translate(iov, tt.gpa, tt.n)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if len(out) != 1 {
					t.Fatalf("error returned %d segments, want iov unchanged", len(out))
				}
				return
			}
			if len(out) != 1+len(tt.want) || string(out[0]) != "sentinel" {
				t.Fatalf("got %d segments, want %d", len(out)-1, len(tt.want))
			}
			for i, w := range tt.want {
				s := out[1+i]
				if len(s) != w.len || cap(s) != w.len || &s[0] != &f.host[w.region][w.off] {
					t.Fatalf("segment %d: len %d cap %d, want region %d off %#x len %d", i, len(s), cap(s), w.region, w.off, w.len)
				}
				if !f.mem.Contains(s) {
					t.Fatalf("segment %d not contained", i)
				}
			}
		})
	}
}

func TestSliceAndUserAddrs(t *testing.T) {
	f := newFixture(t, 16, false, false)
	b, err := f.mem.Slice(reg0+8, 8)
	if err != nil || &b[0] != &f.host[0][8] || cap(b) != 8 {
		t.Fatal(err)
	}
	if _, err := f.mem.Slice(reg1-4, 8); !errors.Is(err, ErrAddr) {
		t.Fatalf("Slice across regions: %v", err)
	}
	if b, err := f.mem.Slice(reg1, 0); err != nil || len(b) != 0 {
		t.Fatalf("empty slice at region start: %v", err)
	}
	u, err := f.mem.UserSlice(userBase+reg1+16, 4)
	if err != nil || &u[0] != &f.host[1][16] {
		t.Fatal(err)
	}
	if g, err := f.mem.UserToGuest(userBase + reg2 + 3); err != nil || g != reg2+3 {
		t.Fatal(g, err)
	}
	if _, err := f.mem.UserToGuest(reg0); !errors.Is(err, ErrAddr) {
		t.Fatal(err)
	}
	var nilMem *GuestMemory
	if _, err := nilMem.Translate(nil, 0, 1); !errors.Is(err, ErrAddr) {
		t.Fatal(err)
	}
	if nilMem.Contains([]byte{1}) || !nilMem.Contains(nil) {
		t.Fatal("Contains on nil table")
	}
	outside := make([]byte, 16)
	if f.mem.Contains(outside) {
		t.Fatal("heap slice reported inside guest memory")
	}
	if !f.mem.Contains(f.host[0][regSize-4 : regSize-4]) {
		t.Fatal("empty slice with capacity inside")
	}
	// Length or capacity running past the region is not contained.
	backing := make([]byte, 64)
	m, _ := NewGuestMemory(NewRegion(0x1000, 0x9000, backing[:32]))
	if m.Contains(backing[28:36]) || m.Contains(backing[28:30]) || !m.Contains(backing[28:30:32]) {
		t.Fatal("Contains must check length and capacity against the region")
	}
	if g, err := m.GuestAddrOf(backing[28:30]); err != nil || g != 0x101c {
		t.Fatal(g, err)
	}
	if _, err := m.GuestAddrOf(backing[28:36]); !errors.Is(err, ErrAddr) {
		t.Fatal("GuestAddrOf across the region end")
	}
	if _, err := m.GuestAddrOf(backing[40:41]); !errors.Is(err, ErrAddr) {
		t.Fatal("GuestAddrOf outside")
	}
	if u, err := m.GuestToUser(0x1004); err != nil || u != 0x9004 {
		t.Fatal(u, err)
	}
	if _, err := m.GuestToUser(0x1020); !errors.Is(err, ErrAddr) {
		t.Fatal("GuestToUser past the end")
	}
	if HostAddr(backing[3:]) != HostAddr(backing)+3 {
		t.Fatal("HostAddr")
	}
}

func TestWithWithout(t *testing.T) {
	f := newFixture(t, 16, false, false)
	extra := make([]byte, 0x1000)
	m2, err := f.mem.With(NewRegion(0x900000, 0x7e0000000000, extra))
	if err != nil || len(m2.Regions()) != 4 || len(f.mem.Regions()) != 3 {
		t.Fatal(err)
	}
	if _, err := m2.Slice(0x900010, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := f.mem.Slice(0x900010, 4); !errors.Is(err, ErrAddr) {
		t.Fatal("old table changed")
	}
	if _, err := m2.With(NewRegion(0x900800, 0x7d0000000000, extra)); !errors.Is(err, ErrRegion) {
		t.Fatal("overlapping add accepted")
	}
	m3, removed, err := m2.Without(reg1, regSize, userBase+reg1)
	if err != nil || &removed.Host[0] != &f.host[1][0] || len(m3.Regions()) != 3 {
		t.Fatal(err)
	}
	if _, err := m3.Slice(reg1, 1); !errors.Is(err, ErrAddr) {
		t.Fatal("removed region still translates")
	}
	if _, _, err := m3.Without(reg1, regSize, userBase+reg1); !errors.Is(err, ErrRegion) {
		t.Fatal("removed twice")
	}
	if _, _, err := m2.Without(reg0, regSize, 0); !errors.Is(err, ErrRegion) {
		t.Fatal("wrong user address matched")
	}
}

// TestFindMatchesLinear checks the binary search used for big tables
// against a plain scan.
func TestFindMatchesLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		m, gpa := randomTable(t, rng, 4096, 40, 3, 32)
		for probe := range gpa + 8 {
			want := -1
			for i, r := range m.regions {
				if probe >= r.GuestAddr && probe < r.GuestAddr+r.Size() {
					want = i
				}
			}
			if got := m.find(probe); got != want {
				t.Fatalf("round %d: find(%d) = %d, want %d", round, probe, got, want)
			}
		}
	}
}

// TestTranslateHintedMatchesTranslate: whatever the hint (stale, out of
// range, negative), translateHinted returns what Translate returns, and
// leaves the hint on the region the address was found in.
func TestTranslateHintedMatchesTranslate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 40 {
		m, gpa := randomTable(t, rng, 256, 12, 2, 16)
		nr := len(m.regions)
		for range 2000 {
			addr := uint64(rng.IntN(int(gpa) + 16))
			n := uint64(rng.IntN(80))
			if rng.IntN(50) == 0 {
				addr = ^uint64(0) - uint64(rng.IntN(8)) // wraps
			}
			capacity := rng.IntN(4)
			hint := rng.IntN(nr+4) - 2
			wantIov, wantErr := m.Translate(make([][]byte, 0, capacity), addr, n)
			h := hint
			gotIov, gotErr := m.translateHinted(&h, make([][]byte, 0, capacity), addr, n)
			if gotErr != wantErr || len(gotIov) != len(wantIov) {
				t.Fatalf("round %d: translateHinted(hint %d, 0x%x, %d) = %d segs, %v; Translate: %d segs, %v",
					round, hint, addr, n, len(gotIov), gotErr, len(wantIov), wantErr)
			}
			for i := range gotIov {
				if len(gotIov[i]) != len(wantIov[i]) || cap(gotIov[i]) != cap(wantIov[i]) ||
					(len(gotIov[i]) > 0 && &gotIov[i][0] != &wantIov[i][0]) {
					t.Fatalf("round %d: segment %d differs for 0x%x+%d (hint %d)", round, i, addr, n, hint)
				}
			}
			if wantErr == nil && n > 0 && h != m.find(addr) {
				t.Fatalf("round %d: hint %d after 0x%x, want %d", round, h, addr, m.find(addr))
			}
		}
	}
	var nilMem *GuestMemory
	h := 0
	if _, err := nilMem.translateHinted(&h, make([][]byte, 0, 1), 0, 1); err != ErrAddr {
		t.Fatalf("nil table: %v, want ErrAddr", err)
	}
}

// randomTable builds a table of 1..maxRegions regions of 1-64 bytes from a
// guest address below start, with holes of (0..holeMul-1)*(0..holeMax-1)
// bytes between them (often none: adjacent regions); it returns the table
// and the end of the last region.
func randomTable(t *testing.T, rng *rand.Rand, start, maxRegions, holeMul, holeMax int) (*GuestMemory, uint64) {
	t.Helper()
	var rs []Region
	gpa := uint64(rng.IntN(start))
	for i := range 1 + rng.IntN(maxRegions) {
		size := uint64(1 + rng.IntN(64))
		rs = append(rs, NewRegion(gpa, uint64(i)<<20, make([]byte, size)))
		gpa += size + uint64(rng.IntN(holeMul))*uint64(rng.IntN(holeMax))
	}
	m, err := NewGuestMemory(rs...)
	if err != nil {
		t.Fatal(err)
	}
	return m, gpa
}
