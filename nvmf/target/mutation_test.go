//go:build linux

package target

import (
	"math/rand"
	"testing"
	"time"
)

// TestConnStreamMutations runs FuzzConnStream's body on 1500 seeded random
// mutations of its seeds (byte flips, truncations, insertions), so every
// test run covers some of what the fuzzer explores.
func TestConnStreamMutations(t *testing.T) {
	seeds := fuzzSeeds()
	z := &connFuzzer{}
	t.Cleanup(z.close)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 1500; i++ {
		s := append([]byte(nil), seeds[rng.Intn(len(seeds))]...)
		for k := 0; k < 1+rng.Intn(4); k++ {
			if len(s) == 0 {
				break
			}
			switch rng.Intn(3) {
			case 0:
				s[rng.Intn(len(s))] = byte(rng.Intn(256))
			case 1:
				s = s[:rng.Intn(len(s))]
			case 2:
				p := rng.Intn(len(s))
				s = append(s[:p], append([]byte{byte(rng.Intn(256))}, s[p:]...)...)
			}
		}
		start := time.Now()
		z.run(t, s)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("input %d took %v: %x", i, d, s[:min(len(s), 96)])
		}
	}
}
