package perf

import (
	"encoding/binary"
	"math/bits"
)

// xorshift is a job's offset generator (xorshift64*): a few instructions
// per number, no allocation, and reproducible from the seed.
type xorshift struct{ s uint64 }

func newXorshift(seed uint64) xorshift {
	s := splitmix(seed)
	if s == 0 {
		s = 0x9e3779b97f4a7c15
	}
	return xorshift{s: s}
}

func (x *xorshift) next() uint64 {
	s := x.s
	s ^= s >> 12
	s ^= s << 25
	s ^= s >> 27
	x.s = s
	return s * 0x2545f4914f6cdd1d
}

// below returns a number in [0, n) without a division (Lemire's
// multiply-high reduction; the bias is at most n/2^64).
func (x *xorshift) below(n uint64) uint64 {
	hi, _ := bits.Mul64(x.next(), n)
	return hi
}

// splitmix is the SplitMix64 finaliser: a bijective 64-bit mix.
func splitmix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// The verify pattern. Every block of a verify write is self-describing:
//
//	byte 0        8        16       24                      block size
//	     +--------+--------+--------+-----------------------+
//	     |  LBA   |  seed  |  seq   | filler words ...      |
//	     +--------+--------+--------+-----------------------+
//
// All words are little-endian uint64. LBA is the block's absolute address,
// seed is the run's seed (data left by an earlier run never matches), and
// seq counts the writes of the slot that owns the block (a stale read of
// an earlier write of the same block shows an older seq). The filler words
// are a SplitMix64 stream keyed by all three, so a block copied from
// anywhere else miscompares in every word. A trailing partial word (block
// sizes are multiples of 512, so there is none) would be left zero.
const patternHeaderWords = 3

func blockKey(lba, seed, seq uint64) uint64 {
	return splitmix(lba*0x9e3779b97f4a7c15 ^ seed ^ splitmix(seq))
}

// fillPattern writes the pattern of nBlocks blocks starting at lba into buf.
func fillPattern(buf []byte, bs int, lba, seed, seq uint64) {
	for off := 0; off+bs <= len(buf); off += bs {
		b := buf[off : off+bs]
		binary.LittleEndian.PutUint64(b[0:], lba)
		binary.LittleEndian.PutUint64(b[8:], seed)
		binary.LittleEndian.PutUint64(b[16:], seq)
		k := blockKey(lba, seed, seq)
		for w := patternHeaderWords * 8; w+8 <= bs; w += 8 {
			k += 0x9e3779b97f4a7c15
			binary.LittleEndian.PutUint64(b[w:], splitmix(k))
		}
		lba++
	}
}

// patternWord returns word w of the pattern of block lba.
func patternWord(lba, seed, seq uint64, w int) uint64 {
	switch w {
	case 0:
		return lba
	case 1:
		return seed
	case 2:
		return seq
	}
	k := blockKey(lba, seed, seq) + uint64(w-patternHeaderWords+1)*0x9e3779b97f4a7c15
	return splitmix(k)
}

// checkPattern compares buf with the pattern and returns the byte offset
// of the first differing word, or -1 when it matches.
func checkPattern(buf []byte, bs int, lba, seed, seq uint64) int {
	for off := 0; off+bs <= len(buf); off += bs {
		b := buf[off : off+bs]
		if binary.LittleEndian.Uint64(b[0:]) != lba {
			return off
		}
		if binary.LittleEndian.Uint64(b[8:]) != seed {
			return off + 8
		}
		if binary.LittleEndian.Uint64(b[16:]) != seq {
			return off + 16
		}
		k := blockKey(lba, seed, seq)
		for w := patternHeaderWords * 8; w+8 <= bs; w += 8 {
			k += 0x9e3779b97f4a7c15
			if binary.LittleEndian.Uint64(b[w:]) != splitmix(k) {
				return off + w
			}
		}
		lba++
	}
	return -1
}
