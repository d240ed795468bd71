package virtq

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Guest memory of FuzzChain: regions A and B adjacent, C after a hole.
// The ring (size 8) sits at the start of A; everything, descriptors and
// ring indices included, comes from the fuzzer's bytes.
const (
	fzA, fzB, fzC       = 0x1000, 0x2000, 0x8000
	fzASize, fzBSize    = 0x1000, 0x1000
	fzCSize             = 0x400
	fzQSize             = 8
	fzDesc, fzAvail     = fzA, fzA + 0x80
	fzUsed              = fzA + 0xa0
	fzUser              = 0x7f0000000000
	fzMaxInput          = fzASize + fzBSize + fzCSize
	fzFlagEventIdx      = 1
	fzFlagIndirect      = 2
	fzFlagUserAddresses = 4
)

func fuzzMemory(data []byte) (*GuestMemory, [3][]byte) {
	var host [3][]byte
	host[0] = make([]byte, fzASize)
	host[1] = make([]byte, fzBSize)
	host[2] = make([]byte, fzCSize)
	n := copy(host[0], data)
	n += copy(host[1], data[n:])
	copy(host[2], data[n:])
	m, err := NewGuestMemory(NewRegion(fzA, fzUser+fzA, host[0]), NewRegion(fzB, fzUser+fzB, host[1]), NewRegion(fzC, fzUser+fzC, host[2]))
	if err != nil {
		panic(err)
	}
	return m, host
}

// refWalk is a deliberately simple model of the walk rules: a visited set
// instead of a TTL, and a byte-range check by linear scan. It returns the
// readable and writable byte counts, or ok=false for a malformed chain.
func refWalk(mem *GuestMemory, desc []byte, size uint16, indirectOK bool, head uint16) (out, in uint64, ok bool) {
	covered := func(addr, n uint64) bool {
		for n > 0 {
			found := false
			for _, r := range mem.Regions() {
				if addr >= r.GuestAddr && addr-r.GuestAddr < r.Size() {
					take := min(n, r.Size()-(addr-r.GuestAddr))
					addr, n, found = addr+take, n-take, true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	if head >= size {
		return 0, 0, false
	}
	table, entries := desc, int(size)
	seen := map[int]bool{}
	i, inIndirect, writing := int(head), false, false
	for {
		if seen[i] {
			return 0, 0, false
		}
		seen[i] = true
		d := table[16*i:]
		addr := binary.LittleEndian.Uint64(d)
		n := uint64(binary.LittleEndian.Uint32(d[8:]))
		flags := binary.LittleEndian.Uint16(d[12:])
		next := int(binary.LittleEndian.Uint16(d[14:]))
		if flags&DescFIndirect != 0 {
			if !indirectOK || inIndirect || flags&DescFNext != 0 || n == 0 || n%16 != 0 || n/16 > uint64(size) {
				return 0, 0, false
			}
			t, err := mem.Slice(addr, n)
			if err != nil {
				return 0, 0, false
			}
			table, entries, i, inIndirect = t, int(n/16), 0, true
			seen = map[int]bool{}
			continue
		}
		if flags&DescFWrite != 0 {
			writing = true
		} else if writing {
			return 0, 0, false
		}
		if addr+n < addr || !covered(addr, n) {
			return 0, 0, false
		}
		if writing {
			in += n
		} else {
			out += n
		}
		if flags&DescFNext == 0 {
			return out, in, true
		}
		if next >= entries {
			return 0, 0, false
		}
		i = next
	}
}

// FuzzChain builds guest memory and ring contents from random bytes and
// checks that popping and walking never panic, that every segment lies in
// guest memory, that the walk agrees with refWalk, and that completing the
// requests keeps the ring consistent.
func FuzzChain(f *testing.F) {
	for _, s := range chainSeeds() {
		f.Add(s.data, s.flags, s.head)
	}
	f.Fuzz(func(t *testing.T, data []byte, flags uint8, head uint16) {
		if len(data) > fzMaxInput {
			data = data[:fzMaxInput]
		}
		mem, host := fuzzMemory(data)
		cfg := Config{Size: fzQSize, Desc: fzDesc, Avail: fzAvail, Used: fzUsed,
			EventIdx: flags&fzFlagEventIdx != 0, Indirect: flags&fzFlagIndirect != 0}
		if flags&fzFlagUserAddresses != 0 {
			cfg.Addrs = UserAddrs
			cfg.Desc, cfg.Avail, cfg.Used = cfg.Desc+fzUser, cfg.Avail+fzUser, cfg.Used+fzUser
		}
		// Start at the used index the bytes hold, as a reconnect would.
		base := binary.LittleEndian.Uint16(host[0][fzUsed-fzA+2:])
		q, err := NewQueue(mem, cfg, base)
		if err != nil {
			t.Fatalf("ring setup: %v", err)
		}
		c := NewChain(64)
		walk := func(h uint16) {
			err := q.Walk(h, c)
			refOut, refIn, refOK := refWalk(mem, host[0][:16*fzQSize], fzQSize, cfg.Indirect, h)
			if (err == nil) != refOK {
				t.Fatalf("head %d: walk err %v, reference ok=%v", h, err, refOK)
			}
			var sum uint64
			for i, s := range c.Segs {
				if !mem.Contains(s) {
					t.Fatalf("head %d: segment %d outside guest memory", h, i)
				}
				sum += uint64(len(s))
			}
			if err != nil {
				if c.NumDesc > 2*fzQSize+1 {
					t.Fatalf("walk visited %d descriptors", c.NumDesc)
				}
				return
			}
			if c.OutLen != refOut || c.InLen != refIn || sum != c.OutLen+c.InLen {
				t.Fatalf("head %d: out %d in %d segs %d, reference out %d in %d", h, c.OutLen, c.InLen, sum, refOut, refIn)
			}
			for i := c.NumOut; i < len(c.Segs); i++ {
				if !c.Writable(i) {
					t.Fatal("Writable")
				}
			}
		}
		walk(head)
		heads := make([]uint16, fzQSize)
		for range 3 {
			n, err := q.Pop(heads)
			if err != nil {
				if q.LastAvail() != base {
					t.Fatal("failed Pop moved LastAvail")
				}
				break
			}
			for _, h := range heads[:n] {
				walk(h)
				if err := q.Push(h, uint32(c.InLen)); err != nil && h < fzQSize {
					t.Fatalf("push %d: %v", h, err)
				}
			}
			q.Publish()
			q.NeedsNotify()
			q.EnableNotify()
		}
		if q.Outstanding() < 0 || q.Outstanding() > fzQSize {
			t.Fatalf("outstanding %d", q.Outstanding())
		}
	})
}

type chainSeed struct {
	name  string
	data  []byte
	flags uint8
	head  uint16
}

// chainSeeds are valid ring states: direct and indirect virtio-blk style
// chains, buffers across the A/B boundary and in C, and indices about to
// wrap.
func chainSeeds() []chainSeed {
	mk := func(avail, used uint16, heads []uint16, descs []desc) []byte {
		mem, host := fuzzMemory(nil)
		put := func(gpa uint64, n int) []byte { b, _ := mem.Slice(gpa, uint64(n)); return b }
		for _, d := range descs {
			tbl := d.tbl
			if tbl == 0 {
				tbl = fzDesc
			}
			b := put(tbl+16*uint64(d.i), 16)
			binary.LittleEndian.PutUint64(b, d.addr)
			binary.LittleEndian.PutUint32(b[8:], d.len)
			binary.LittleEndian.PutUint16(b[12:], d.flags)
			binary.LittleEndian.PutUint16(b[14:], d.next)
		}
		idx := avail - uint16(len(heads))
		for _, h := range heads {
			binary.LittleEndian.PutUint16(put(fzAvail+4+2*uint64(idx%fzQSize), 2), h)
			idx++
		}
		binary.LittleEndian.PutUint16(put(fzAvail+2, 2), avail)
		binary.LittleEndian.PutUint16(put(fzUsed+2, 2), used)
		// Trim trailing zeros of C and B to keep the seeds small.
		all := append(append(append([]byte{}, host[0]...), host[1]...), host[2]...)
		end := len(all)
		for end > 0 && all[end-1] == 0 {
			end--
		}
		return all[:end]
	}
	blk := []desc{{0, 0, 0x1400, 16, N, 1}, {0, 1, 0x1800, 512, N | W, 2}, {0, 2, 0x1410, 1, W, 0}}
	ind := []desc{{0, 3, 0x1600, 48, I, 0},
		{0x1600, 0, 0x1400, 16, N, 1}, {0x1600, 1, 0x2000 - 100, 300, N | W, 2}, {0x1600, 2, 0x8010, 1, W, 0}}
	mixed := append([]desc{{0, 5, 0x1400, 16, N, 6}, {0, 6, 0x1700, 32, I, 0},
		{0x1700, 0, 0x8100, 0x100, N | W, 1}, {0x1700, 1, 0x1410, 1, W, 0}}, blk...)
	return []chainSeed{
		{"direct", mk(1, 0, []uint16{0}, blk), 0, 0},
		{"direct_event_idx_user", mk(1, 0, []uint16{0}, blk), fzFlagEventIdx | fzFlagUserAddresses, 0},
		{"indirect", mk(2, 0, []uint16{3, 0}, append(ind, blk...)), fzFlagIndirect, 3},
		{"mixed", mk(3, 0, []uint16{5, 3, 0}, append(mixed, ind...)), fzFlagIndirect | fzFlagEventIdx, 5},
		{"wrap", mk(2, 65534, []uint16{0, 3, 0, 3}, append(ind, blk...)), fzFlagIndirect, 0},
		{"loop", mk(1, 0, []uint16{0}, []desc{{0, 0, 0x1400, 16, N, 1}, {0, 1, 0x1400, 16, N, 0}}), 0, 0},
		{"avail_too_far", mk(9, 0, nil, blk), 0, 0},
	}
}

// TestWriteChainSeeds rewrites testdata/fuzz/FuzzChain from chainSeeds()
// when HYPERPATH_WRITE_SEEDS=1.
func TestWriteChainSeeds(t *testing.T) {
	if os.Getenv("HYPERPATH_WRITE_SEEDS") != "1" {
		t.Skip("set HYPERPATH_WRITE_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzChain")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range chainSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nbyte(%s)\nuint16(%d)\n",
			strconv.Quote(string(s.data)), strconv.QuoteRune(rune(s.flags)), s.head)
		if err := os.WriteFile(filepath.Join(dir, "seed_"+s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChainSeedsWalk makes sure the valid seeds reach the end of a walk,
// so that fuzzing starts from chains that pass every check.
func TestChainSeedsWalk(t *testing.T) {
	for _, s := range chainSeeds() {
		if s.name == "loop" || s.name == "avail_too_far" {
			continue
		}
		mem, _ := fuzzMemory(s.data)
		cfg := Config{Size: fzQSize, Desc: fzDesc, Avail: fzAvail, Used: fzUsed, Indirect: s.flags&fzFlagIndirect != 0}
		q, err := NewQueue(mem, cfg, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := NewChain(64)
		if err := q.Walk(s.head, c); err != nil || c.InLen == 0 || c.OutLen == 0 {
			t.Fatalf("seed %s: %v (out %d in %d)", s.name, err, c.OutLen, c.InLen)
		}
	}
}
