package proto

import (
	"encoding/hex"
	"strings"
	"testing"
)

// hexb parses a hand-written byte listing such as "00 01 ff" (whitespace
// and newlines are ignored) and pads it with zeroes to size when size > 0.
func hexb(t testing.TB, s string, size int) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex listing: %v", err)
	}
	if size > 0 {
		if len(b) > size {
			t.Fatalf("listing has %d bytes, more than %d", len(b), size)
		}
		b = append(b, make([]byte, size-len(b))...)
	}
	return b
}

// crc32cRef is a deliberately simple bit-at-a-time CRC32C (reflected
// polynomial 82F63B78h, init and final XOR FFFFFFFFh, RFC 3385) used to
// check the table driven one.
func crc32cRef(p []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range p {
		crc ^= uint32(c)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82f63b78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func mustNoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eqBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if string(got) != string(want) {
		t.Fatalf("%s:\n got  %x\n want %x", what, got, want)
	}
}
