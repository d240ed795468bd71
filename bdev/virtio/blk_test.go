package virtio

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// qsdConfigHex is the configuration space qemu-storage-daemon 7.2 answered
// a 60-byte GET_CONFIG with, for a 1 GiB null-co export with two queues,
// and the features it offered.
const (
	qsdConfigHex = "0000200000000000" + "00000000" + "7e000000" + "00000000" + "00020000" + "00000100" + "01000000" +
		"00000200" + "00800000" + "01000000" + "01000000" + "00800000" + "01000000" + "00000000"
	qsdFeatures = 0x175007e46
)

func TestDecodeConfig(t *testing.T) {
	b, _ := hex.DecodeString(qsdConfigHex)
	c, err := DecodeConfig(b, qsdFeatures)
	if err != nil {
		t.Fatal(err)
	}
	want := BlkConfig{CapacitySectors: 1 << 21, SegMax: 126, BlkSize: 512, MinIOSize: 1, OptIOSize: 1, NumQueues: 2,
		MaxDiscardSectors: 32768, MaxDiscardSeg: 1, DiscardAlignSectors: 1, MaxWriteZeroesSectors: 32768, MaxWriteZeroesSeg: 1}
	if c != want {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	// The same bytes without features keep only what needs none.
	c, err = DecodeConfig(b, 0)
	if err != nil || c != (BlkConfig{CapacitySectors: 1 << 21, BlkSize: 512, NumQueues: 1}) {
		t.Fatalf("no features: %+v %v", c, err)
	}
	bad := []struct {
		off  int
		val  []byte
		feat uint64
		want string
	}{
		{20, []byte{0, 3, 0, 0}, FeatureBlkSize, "blk_size (offset 20) = 768"},
		{20, []byte{0, 0, 2, 0}, FeatureBlkSize, "blk_size (offset 20) = 131072"},
		{8, []byte{0, 1, 0, 0}, FeatureSizeMax, "size_max (offset 8) = 256"},
		{34, []byte{0, 0}, FeatureMQ, "num_queues (offset 34) = 0"},
		{36, []byte{0, 0, 0, 0}, FeatureDiscard, "max_discard_sectors (offset 36) = 0"},
		{52, []byte{0, 0, 0, 0}, FeatureWriteZeroes, "max_write_zeroes_seg (offset 52) = 0"},
		{24, []byte{17}, FeatureTopology, "physical_block_exp (offset 24) = 17"},
		{0, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}, 0, "capacity (offset 0)"},
	}
	for _, c := range bad {
		bb := append([]byte(nil), b...)
		copy(bb[c.off:], c.val)
		if _, err := DecodeConfig(bb, c.feat); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v", c.want, err)
		}
	}
	if _, err := DecodeConfig(b[:59], 0); err == nil {
		t.Error("59 bytes accepted")
	}
}

// TestArenaAgainstReference runs random alloc/free sequences on the
// buffer arena and on a byte map of the area, checking that buffers never
// overlap, stay inside the area, are page aligned, and that the arena
// finds room whenever a first-fit scan of the reference does.
func TestArenaAgainstReference(t *testing.T) {
	const pages = 64
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		a := newArena(pages * arenaAlign)
		owner := make([]int, pages) // page -> buffer id+1, 0 free
		live := map[int][2]uint64{} // id -> off, len
		next := 1
		for step := range 400 {
			if len(live) > 0 && rng.IntN(3) == 0 {
				var id int
				for id = range live {
					break
				}
				off, n := live[id][0], live[id][1]
				if !a.release(off) {
					t.Fatalf("round %d step %d: release of live buffer at %d refused", round, step, off)
				}
				for p := off / arenaAlign; p < (off+n)/arenaAlign; p++ {
					owner[p] = 0
				}
				delete(live, id)
				continue
			}
			size := uint64(rng.IntN(8*arenaAlign) + 1)
			np := int((size + arenaAlign - 1) / arenaAlign)
			fits := false
			for p, run := 0, 0; p < pages; p++ {
				if owner[p] == 0 {
					run++
				} else {
					run = 0
				}
				if run >= np {
					fits = true
					break
				}
			}
			off, ok := a.alloc(size)
			if ok != fits {
				t.Fatalf("round %d step %d: alloc(%d) = %v, reference says %v", round, step, size, ok, fits)
			}
			if !ok {
				continue
			}
			if off%arenaAlign != 0 || off+uint64(np)*arenaAlign > pages*arenaAlign {
				t.Fatalf("alloc(%d) at %d", size, off)
			}
			for p := off / arenaAlign; p < off/arenaAlign+uint64(np); p++ {
				if owner[p] != 0 {
					t.Fatalf("alloc(%d) at %d overlaps buffer %d", size, off, owner[p])
				}
				owner[p] = next
			}
			live[next] = [2]uint64{off, uint64(np) * arenaAlign}
			next++
		}
		var sum uint64
		for _, l := range live {
			sum += l[1]
		}
		if a.inUse() != sum {
			t.Fatalf("inUse %d, reference %d", a.inUse(), sum)
		}
		if a.release(pages*arenaAlign + arenaAlign) {
			t.Fatal("release of an offset never handed out")
		}
	}
}
