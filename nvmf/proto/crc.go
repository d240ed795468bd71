package proto

import (
	"encoding/binary"
	"hash/crc32"
)

// NVMe/TCP header and data digests are CRC32C (Castagnoli) as in iSCSI
// (NVMe/TCP 1.0 §3.3.1.1, RFC 3385): initial value FFFFFFFFh, final XOR
// FFFFFFFFh, carried on the wire as a 4-byte little-endian field. hash/crc32
// uses the SSE4.2/ARMv8 CRC instructions for this table when the CPU has them.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DigestLen is the size of an HDGST or DDGST field.
const DigestLen = 4

// CRC32C returns the CRC32C of p.
func CRC32C(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// CRC32CUpdate continues a CRC32C: CRC32CUpdate(CRC32C(a), b) == CRC32C(a||b)
// and CRC32CUpdate(0, p) == CRC32C(p). Use it to digest PDU data as it arrives
// in pieces.
func CRC32CUpdate(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// CRC32CVec returns the CRC32C of the concatenation of iov without copying
// or allocating.
func CRC32CVec(iov [][]byte) uint32 {
	var crc uint32
	for _, p := range iov {
		crc = crc32.Update(crc, castagnoli, p)
	}
	return crc
}

// PutDigest stores a digest in its wire form (little endian) in b[:4].
func PutDigest(b []byte, d uint32) { binary.LittleEndian.PutUint32(b, d) }

// GetDigest reads a digest in its wire form from b[:4].
func GetDigest(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// VerifyDataDigest reports whether ddgst (the 4 DDGST bytes received after
// the PDU data) matches the data scattered over iov.
func VerifyDataDigest(iov [][]byte, ddgst []byte) bool {
	return len(ddgst) >= DigestLen && CRC32CVec(iov) == GetDigest(ddgst)
}
