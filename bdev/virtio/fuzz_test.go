package virtio

import (
	"testing"
)

// FuzzDecodeConfig feeds arbitrary configuration spaces and feature sets
// to DecodeConfig: it must never panic, must return the zero value with an
// error, and a config it accepts must survive Encode and a second decode
// unchanged. Seeds in testdata/fuzz/FuzzDecodeConfig are what
// qemu-storage-daemon 7.2 answers for a 1 GiB null-co export with two
// queues, and variants.
func FuzzDecodeConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, features uint64) {
		c, err := DecodeConfig(b, features)
		if err != nil {
			if c != (BlkConfig{}) {
				t.Fatalf("error %v with a non-zero result %+v", err, c)
			}
			return
		}
		if c.CapacitySectors == 0 || c.BlkSize < SectorSize || c.BlkSize&(c.BlkSize-1) != 0 || c.NumQueues == 0 {
			t.Fatalf("accepted an unusable config %+v", c)
		}
		if features&FeatureSegMax != 0 && c.SegMax == 0 {
			t.Fatalf("accepted seg_max 0: %+v", c)
		}
		enc := make([]byte, ConfigSize)
		c.Encode(enc)
		c2, err := DecodeConfig(enc, features)
		if err != nil || c2 != c {
			t.Fatalf("round trip: %+v -> %+v, %v", c, c2, err)
		}
	})
}
