package proto

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestCRC32C(t *testing.T) {
	// RFC 3720 B.4 test vectors and the usual check value.
	ones := make([]byte, 32)
	for i := range ones {
		ones[i] = 0xff
	}
	inc := make([]byte, 32)
	for i := range inc {
		inc[i] = byte(i)
	}
	for _, tc := range []struct {
		in   []byte
		want uint32
	}{
		{[]byte("123456789"), 0xe3069283},
		{make([]byte, 32), 0x8a9136aa},
		{ones, 0x62a8ab43},
		{inc, 0x46dd794e},
	} {
		if got := CRC32C(tc.in); got != tc.want {
			t.Errorf("CRC32C(% x) = %#x, want %#x", tc.in[:4], got, tc.want)
		}
		if got := crc32cRef(tc.in); got != tc.want {
			t.Errorf("reference CRC32C = %#x, want %#x", got, tc.want)
		}
	}
	// Scattered buffers and incremental updates agree with the reference.
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 31)
	}
	want := crc32cRef(data)
	iov := [][]byte{data[:1], data[1:4096], data[4096:4097], nil, data[4097:]}
	if CRC32CVec(iov) != want {
		t.Fatal("CRC32CVec")
	}
	if CRC32CUpdate(CRC32CUpdate(0, data[:777]), data[777:]) != want {
		t.Fatal("CRC32CUpdate")
	}
	dg := make([]byte, 4)
	PutDigest(dg, want)
	if binary.LittleEndian.Uint32(dg) != want || GetDigest(dg) != want || !VerifyDataDigest(iov, dg) || VerifyDataDigest(iov[:2], dg) || VerifyDataDigest(iov, dg[:3]) {
		t.Fatal("digest helpers")
	}
}

// An ICReq, written byte by byte from NVMe/TCP 1.0 §3.6.2.2 (Figure 20):
// HLEN and PLEN 128, PFV 0 at 8, HPDA 2 at 10, both digests at 11, MAXR2T 3
// at 12.
const goldenICReq = `
00 00 80 00  80 00 00 00   00 00 02 03  03 00 00 00`

// The ICResp answering it (§3.6.2.3, Figure 21): CPDA 0, header digest
// only, MAXH2CDATA 128 KiB.
const goldenICResp = `
01 00 80 00  80 00 00 00   00 00 00 01  00 00 02 00`

func TestICGolden(t *testing.T) {
	b := make([]byte, 200)
	n, err := EncodeICReq(b, &ICReq{HPDA: 2, Digests: DigestHeader | DigestData, MaxR2T: 3})
	mustNoErr(t, err)
	eqBytes(t, "ICReq", b[:n], hexb(t, goldenICReq, 128))
	n, err = EncodeICResp(b, &ICResp{Digests: DigestHeader, MaxH2CData: 128 << 10})
	mustNoErr(t, err)
	eqBytes(t, "ICResp", b[:n], hexb(t, goldenICResp, 128))
	if _, err := EncodeICReq(b, &ICReq{HPDA: 32}); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("HPDA 32: %v", err)
	}
	if _, err := EncodeICReq(b[:127], &ICReq{}); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short: %v", err)
	}

	ctrl := newTestParser(t, RoleController)
	var h PDUHeader
	n, err = ctrl.Parse(hexb(t, goldenICReq, 128), &h)
	mustNoErr(t, err)
	if n != 128 || h.Type != PDUICReq || h.PDA != 2 || h.Digests != DigestHeader|DigestData || h.MaxData != 3 || h.DataLen != 0 {
		t.Fatalf("ICReq header %+v", h)
	}
	host := newTestParser(t, RoleHost)
	n, err = host.Parse(hexb(t, goldenICResp, 128), &h)
	mustNoErr(t, err)
	if n != 128 || h.Type != PDUICResp || h.Digests != DigestHeader || h.MaxData != 128<<10 {
		t.Fatalf("ICResp header %+v", h)
	}
}

func newTestParser(t testing.TB, r Role) *Parser {
	t.Helper()
	p, err := NewParser(ParserOptions{Role: r, MaxInCapsuleData: 8192, MaxH2CData: 64 << 10,
		RequestedDigests: DigestHeader | DigestData, MaxC2HData: 1 << 20})
	mustNoErr(t, err)
	return p
}

func negotiated(t testing.TB, r Role, d Digest, pda uint8) *Parser {
	t.Helper()
	p := newTestParser(t, r)
	mustNoErr(t, p.Negotiated(d, pda))
	return p
}

func TestCapsuleGolden(t *testing.T) {
	// CapsuleResp without digests: CH 05 00 18 00, PLEN 24, then the CQE.
	cqe := CQE{DW0: 0x12345678, SQHead: 7, CID: 0x0a0b, Status: StatusInvalidField.WithDNR()}
	b := make([]byte, 512)
	n, err := EncodeCapsuleResp(b, Framing{}, &cqe)
	mustNoErr(t, err)
	eqBytes(t, "CapsuleResp", b[:n], hexb(t, "05 00 18 00 18 00 00 00  78 56 34 12 00 00 00 00 07 00 00 00 0b 0a 04 80", 0))

	// With a header digest: HDGSTF, PLEN 28, CRC32C of the 24 header bytes.
	n, err = EncodeCapsuleResp(b, Framing{Digests: DigestHeader | DigestData}, &cqe)
	mustNoErr(t, err)
	want := hexb(t, "05 01 18 00 1c 00 00 00  78 56 34 12 00 00 00 00 07 00 00 00 0b 0a 04 80  00 00 00 00", 0)
	binary.LittleEndian.PutUint32(want[24:], crc32cRef(want[:24]))
	eqBytes(t, "CapsuleResp+HDGST", b[:n], want)
	var h PDUHeader
	p := negotiated(t, RoleHost, DigestHeader|DigestData, 0)
	got, err := p.Parse(b[:n], &h)
	mustNoErr(t, err)
	if got != 28 || h.CQE != cqe || h.DataLen != 0 {
		t.Fatalf("parsed %d %+v", got, h)
	}

	// CapsuleCmd with 1024 bytes of in-capsule Connect data, both digests,
	// CPDA 0: HDGST at 72, PDO 76, PLEN 76+1024+4.
	var sqe SQE
	mustNoErr(t, sqe.PutConnect(&ConnectCmd{CID: 1, SGL: InCapsuleSGL(0, 1024), SQSize: 31}))
	n, err = EncodeCapsuleCmd(b, Framing{Digests: DigestHeader | DigestData}, &sqe, 1024)
	mustNoErr(t, err)
	eqBytes(t, "CapsuleCmd CH", b[:8], hexb(t, "04 03 48 4c 50 04 00 00", 0))
	if n != 76 || GetDigest(b[72:]) != crc32cRef(b[:72]) {
		t.Fatalf("n %d digest", n)
	}
	ctrl := negotiated(t, RoleController, DigestHeader|DigestData, 0)
	got, err = ctrl.Parse(b[:n], &h)
	mustNoErr(t, err)
	if got != 76 || h.Type != PDUCapsuleCmd || h.SQE != sqe || h.DataOffset != 76 || h.DataLen != 1024 || !h.DataDigest || h.PadLen() != 0 || h.PLen != 1104 {
		t.Fatalf("parsed %d %+v", got, h)
	}
	// Without data: PDO 0, no DDGSTF, PLEN = HLEN + HDGST.
	n, err = EncodeCapsuleCmd(b, Framing{Digests: DigestHeader | DigestData}, &sqe, 0)
	mustNoErr(t, err)
	eqBytes(t, "CapsuleCmd no data CH", b[:8], hexb(t, "04 01 48 00 4c 00 00 00", 0))
	got, err = ctrl.Parse(b[:n], &h)
	mustNoErr(t, err)
	if got != 76 || h.DataLen != 0 || h.DataDigest {
		t.Fatalf("no data: %+v", h)
	}
}

func TestDataPDUGolden(t *testing.T) {
	b := make([]byte, 256)
	// H2CData, no digests, CPDA 0: PDO = HLEN = 24, PLEN = 24 + 8.
	n, err := EncodeH2CData(b, Framing{}, &DataPDU{CCCID: 0x0102, TTag: 0x0304, DataO: 0x1000, DataL: 8, Last: true})
	mustNoErr(t, err)
	eqBytes(t, "H2CData", b[:n], hexb(t, "06 04 18 18 20 00 00 00  02 01 04 03 00 10 00 00 08 00 00 00 00 00 00 00", 0))

	// NVMe/TCP 1.0 Figure 8: CPDA 0Fh (64-byte alignment), no header digest:
	// 40 bytes of PAD after the 24-byte header.
	n, err = EncodeH2CData(b, Framing{PDA: 0x0f}, &DataPDU{DataL: 4096})
	mustNoErr(t, err)
	if n != 64 || b[3] != 64 || binary.LittleEndian.Uint32(b[4:]) != 64+4096 {
		t.Fatalf("Figure 8: n %d PDO %d", n, b[3])
	}
	// Figure 9: HPDA 03h (16-byte alignment): 8 bytes of PAD.
	n, err = EncodeC2HData(b, Framing{PDA: 3}, &DataPDU{DataL: 512, Last: true, Success: true})
	mustNoErr(t, err)
	if n != 32 || b[1] != byte(FlagLastPDU|FlagSuccess) || b[3] != 32 {
		t.Fatalf("Figure 9: n %d flags %#x PDO %d", n, b[1], b[3])
	}
	host := negotiated(t, RoleHost, 0, 3)
	var h PDUHeader
	got, err := host.Parse(b[:n], &h)
	mustNoErr(t, err)
	if got != 24 || h.PadLen() != 8 || h.DataOffset != 32 || h.DataLen != 512 || !h.Success() || !h.Last() {
		t.Fatalf("C2HData %+v", h)
	}
	if _, err := EncodeC2HData(b, Framing{}, &DataPDU{DataL: 4, Success: true}); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("SUCCESS without LAST: %v", err)
	}
	if _, err := EncodeH2CData(b, Framing{}, &DataPDU{}); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("empty data PDU: %v", err)
	}

	// R2T with header digest.
	n, err = EncodeR2T(b, Framing{Digests: DigestHeader}, &R2T{CCCID: 5, TTag: 6, R2TO: 0xbb8, R2TL: 0x2000})
	mustNoErr(t, err)
	want := hexb(t, "09 01 18 00 1c 00 00 00  05 00 06 00 b8 0b 00 00 00 20 00 00 00 00 00 00  00 00 00 00", 0)
	binary.LittleEndian.PutUint32(want[24:], crc32cRef(want[:24]))
	eqBytes(t, "R2T", b[:n], want)
	host = negotiated(t, RoleHost, DigestHeader, 0)
	got, err = host.Parse(b[:n], &h)
	mustNoErr(t, err)
	if got != 28 || h.Type != PDUR2T || h.CCCID != 5 || h.TTag != 6 || h.Offset != 0xbb8 || h.Length != 0x2000 {
		t.Fatalf("R2T %+v", h)
	}

	// C2HTermReq carrying the offending header.
	hdr := hexb(t, "04 00 48 00 10 00 00 00", 72)
	n, err = EncodeTermReq(b, PDUC2HTermReq, FESInvalidHeaderField, 4, hdr)
	mustNoErr(t, err)
	eqBytes(t, "C2HTermReq", b[:24], hexb(t, "03 00 18 00 60 00 00 00  01 00 04 00 00 00", 24))
	eqBytes(t, "C2HTermReq data", b[24:n], hdr)
	got, err = host.Parse(b[:n], &h)
	mustNoErr(t, err)
	if got != 24 || h.FES != FESInvalidHeaderField || h.FEI != 4 || h.DataLen != 72 || h.DataOffset != 24 {
		t.Fatalf("TermReq %+v", h)
	}
	n, _ = EncodeTermReq(b, PDUH2CTermReq, FESHeaderDigestError, 0xdeadbeef, make([]byte, 300))
	if n != MaxTermReqPLen {
		t.Fatalf("TermReq data must be capped at 128 bytes, PLEN %d", n)
	}
	if _, err := EncodeTermReq(b, PDUR2T, 1, 0, nil); !errors.Is(err, ErrInvalidField) {
		t.Fatal("TermReq type")
	}
}

// pdu builds a PDU header of hlen bytes from a common header and PSH bytes.
func pdu(t PDUType, flags PDUFlags, hlen, pdo uint8, plen uint32, psh ...byte) []byte {
	b := make([]byte, int(hlen))
	putCH(b, t, flags, hlen, pdo, plen)
	copy(b[8:], psh)
	return b
}

func withHDGST(b []byte) []byte {
	d := make([]byte, 4)
	PutDigest(d, crc32cRef(b))
	return append(b, d...)
}

func TestParserErrors(t *testing.T) {
	le32 := func(v uint32) []byte { b := make([]byte, 4); binary.LittleEndian.PutUint32(b, v); return b }
	data := func(cccid, ttag uint16, o, l uint32) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint16(b, cccid)
		binary.LittleEndian.PutUint16(b[2:], ttag)
		binary.LittleEndian.PutUint32(b[4:], o)
		binary.LittleEndian.PutUint32(b[8:], l)
		return b
	}
	icreq := func(pfv uint16, hpda, dgst uint8, plen uint32) []byte {
		return pdu(PDUICReq, 0, 128, 0, plen, byte(pfv), byte(pfv>>8), hpda, dgst)
	}
	icresp := func(cpda, dgst uint8, maxdata uint32) []byte {
		return pdu(PDUICResp, 0, 128, 0, 128, append([]byte{0, 0, cpda, dgst}, le32(maxdata)...)...)
	}
	ctrl := func() *Parser { return negotiated(t, RoleController, 0, 0) }
	ctrlDig := func() *Parser { return negotiated(t, RoleController, DigestHeader|DigestData, 0) }
	host := func() *Parser { return negotiated(t, RoleHost, 0, 0) }
	fresh := func(r Role) func() *Parser { return func() *Parser { return newTestParser(t, r) } }
	badDigest := withHDGST(pdu(PDUCapsuleCmd, FlagHDGST, 72, 0, 76))
	badDigest[72] ^= 1

	for _, tc := range []struct {
		name    string
		p       func() *Parser
		b       []byte
		fes     FES
		fei     uint32
		noReply bool
	}{
		{"unknown type", ctrl, pdu(0x0a, 0, 24, 0, 24), FESInvalidHeaderField, 0, false},
		{"type 08h is reserved", ctrl, pdu(0x08, 0, 24, 0, 24), FESInvalidHeaderField, 0, false},
		{"C2H PDU to a controller", ctrl, pdu(PDUCapsuleResp, 0, 24, 0, 24), FESInvalidHeaderField, 0, false},
		{"H2C PDU to a host", host, pdu(PDUH2CData, 0, 24, 24, 28), FESInvalidHeaderField, 0, false},
		{"ICReq after negotiation", ctrl, icreq(0, 0, 0, 128), FESSequenceError, 0, false},
		{"CapsuleCmd before ICReq", fresh(RoleController), pdu(PDUCapsuleCmd, 0, 72, 0, 72), FESSequenceError, 0, false},
		{"R2T before ICResp", fresh(RoleHost), pdu(PDUR2T, 0, 24, 0, 24), FESSequenceError, 0, false},
		{"HDGSTF without header digests", ctrl, pdu(PDUCapsuleCmd, FlagHDGST, 72, 0, 76), FESInvalidHeaderField, 1, false},
		{"HDGSTF missing", ctrlDig, pdu(PDUCapsuleCmd, 0, 72, 0, 72), FESInvalidHeaderField, 1, false},
		{"DDGSTF without data digests", ctrl, pdu(PDUCapsuleCmd, FlagDDGST, 72, 72, 80), FESInvalidHeaderField, 1, false},
		{"DDGSTF missing on data", ctrlDig, withHDGST(pdu(PDUCapsuleCmd, FlagHDGST, 72, 76, 80)), FESInvalidHeaderField, 1, false},
		{"SUCCESS without LAST_PDU", host, pdu(PDUC2HData, FlagSuccess, 24, 24, 28), FESInvalidHeaderField, 1, false},
		{"CapsuleCmd HLEN", ctrl, pdu(PDUCapsuleCmd, 0, 64, 0, 64), FESInvalidHeaderField, 2, false},
		{"R2T HLEN", host, pdu(PDUR2T, 0, 28, 0, 28), FESInvalidHeaderField, 2, false},
		{"PDO inside the header", ctrl, pdu(PDUCapsuleCmd, 0, 72, 48, 100), FESInvalidHeaderField, 3, false},
		{"PDO inside the header digest", ctrlDig, pdu(PDUCapsuleCmd, FlagHDGST|FlagDDGST, 72, 72, 200), FESInvalidHeaderField, 3, false},
		{"PDO misaligned", ctrl, pdu(PDUCapsuleCmd, 0, 72, 74, 100), FESInvalidHeaderField, 3, false},
		{"PDO beyond PLEN", ctrl, pdu(PDUCapsuleCmd, 0, 72, 200, 100), FESInvalidHeaderField, 3, false},
		{"PDO without data", ctrl, pdu(PDUCapsuleCmd, 0, 72, 8, 72), FESInvalidHeaderField, 3, false},
		{"PLEN shorter than the header", ctrl, pdu(PDUCapsuleCmd, 0, 72, 0, 16), FESInvalidHeaderField, 4, false},
		{"H2CData without data", ctrl, pdu(PDUH2CData, 0, 24, 24, 24), FESInvalidHeaderField, 16, false},
		{"DDGSTF with no room for data", ctrlDig, withHDGST(pdu(PDUCapsuleCmd, FlagHDGST|FlagDDGST, 72, 76, 80)), FESInvalidHeaderField, 4, false},
		{"in-capsule data too large", ctrl, pdu(PDUCapsuleCmd, 0, 72, 72, 72+8193), FESInvalidHeaderField, 4, false},
		{"CapsuleResp with data", host, pdu(PDUCapsuleResp, 0, 24, 0, 40), FESInvalidHeaderField, 4, false},
		{"ICReq PLEN", fresh(RoleController), icreq(0, 0, 0, 132), FESInvalidHeaderField, 4, false},
		{"H2CData beyond MAXH2CDATA", ctrl, pdu(PDUH2CData, 0, 24, 24, 24+65540), FESDataLimitExceeded, 0, false},
		{"C2HData beyond the host limit", host, pdu(PDUC2HData, 0, 24, 24, 24+1<<20+4), FESInvalidHeaderField, 4, false},
		{"header digest mismatch", ctrlDig, badDigest, FESHeaderDigestError, binary.LittleEndian.Uint32(badDigest[72:]), false},
		{"ICReq PFV", fresh(RoleController), icreq(1, 0, 0, 128), FESInvalidHeaderField, 8, false},
		{"ICReq HPDA", fresh(RoleController), icreq(0, 32, 0, 128), FESInvalidHeaderField, 10, false},
		{"ICResp CPDA", fresh(RoleHost), icresp(40, 0, 4096), FESInvalidHeaderField, 10, false},
		{"ICResp digest not requested", func() *Parser {
			p, _ := NewParser(ParserOptions{Role: RoleHost, RequestedDigests: DigestHeader})
			return p
		}, icresp(0, 3, 4096), FESInvalidHeaderField, 11, false},
		{"ICResp MAXH2CDATA small", fresh(RoleHost), icresp(0, 0, 2048), FESInvalidHeaderField, 12, false},
		{"ICResp MAXH2CDATA odd", fresh(RoleHost), icresp(0, 0, 4097), FESInvalidHeaderField, 12, false},
		{"H2CData DATAL mismatch", ctrl, pdu(PDUH2CData, 0, 24, 24, 24+16, data(1, 2, 0, 8)...), FESInvalidHeaderField, 16, false},
		{"C2HData DATAL zero", host, pdu(PDUC2HData, FlagLastPDU, 24, 0, 24, data(1, 0, 0, 0)...), FESInvalidHeaderField, 16, false},
		{"R2T R2TL zero", host, pdu(PDUR2T, 0, 24, 0, 24, data(1, 2, 0, 0)...), FESInvalidHeaderField, 16, false},
		{"TermReq PLEN too long", ctrl, pdu(PDUH2CTermReq, 0, 24, 0, 153), 0, 0, true},
		{"TermReq PLEN too short", host, pdu(PDUC2HTermReq, 0, 24, 0, 23), 0, 0, true},
		{"TermReq HLEN", ctrl, pdu(PDUH2CTermReq, 0, 28, 0, 28), 0, 0, true},
		{"TermReq of the wrong direction", ctrl, pdu(PDUC2HTermReq, 0, 24, 0, 24), FESInvalidHeaderField, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p()
			var h PDUHeader
			n, err := p.Parse(tc.b, &h)
			var pe *PDUError
			if !errors.As(err, &pe) || !errors.Is(err, ErrPDU) {
				t.Fatalf("got n %d err %v, want a PDUError", n, err)
			}
			if n != 0 || h != (PDUHeader{}) {
				t.Fatalf("error with a result: n %d h %+v", n, h)
			}
			if pe.FES != tc.fes || pe.FEI != tc.fei || pe.NoReply != tc.noReply {
				t.Fatalf("FES %v FEI %d NoReply %v (%v), want FES %v FEI %d NoReply %v", pe.FES, pe.FEI, pe.NoReply, err, tc.fes, tc.fei, tc.noReply)
			}
			if pe.Type != PDUType(tc.b[0]) || pe.Error() == "" {
				t.Fatal("type or message")
			}
		})
	}
}

func TestParserIncremental(t *testing.T) {
	// A CapsuleCmd with a header digest and 512 bytes of data, fed one byte
	// at a time: the parser asks for 8 bytes, then for HLEN+HDGST = 76.
	var sqe SQE
	mustNoErr(t, sqe.PutRW(&RWCmd{Opcode: IOWrite, CID: 9, NSID: 1, SGL: InCapsuleSGL(0, 512), NLB: 1}))
	stream := make([]byte, 76+512+4)
	n, err := EncodeCapsuleCmd(stream, Framing{Digests: DigestHeader | DigestData}, &sqe, 512)
	mustNoErr(t, err)
	PutDigest(stream[n+512:], CRC32C(stream[n:n+512]))
	p := negotiated(t, RoleController, DigestHeader|DigestData, 0)
	var h PDUHeader
	for k := 0; k <= 76; k++ {
		need, err := p.Parse(stream[:k], &h)
		mustNoErr(t, err)
		switch {
		case k < 8 && need != 8, k >= 8 && k < 76 && need != 76:
			t.Fatalf("after %d bytes need %d", k, need)
		case k < 76 && h != (PDUHeader{}):
			t.Fatalf("partial header returned a result after %d bytes", k)
		case k == 76 && (need != 76 || h.SQE != sqe || h.DataLen != 512):
			t.Fatalf("complete: need %d %+v", need, h)
		}
	}
	if !VerifyDataDigest([][]byte{stream[h.DataOffset : h.DataOffset+h.DataLen]}, stream[h.DataOffset+h.DataLen:]) {
		t.Fatal("data digest")
	}
	if int(h.PLen) != len(stream) {
		t.Fatalf("PLEN %d", h.PLen)
	}
}

func TestParserInterop(t *testing.T) {
	// What the Linux host sends: PDO = HLEN + HDGST regardless of CPDA 0, and
	// PDO 0 for a command without in-capsule data (NVMe/TCP 1.0 §3.6.2.6).
	p := negotiated(t, RoleController, DigestHeader, 0)
	var h PDUHeader
	b := withHDGST(pdu(PDUCapsuleCmd, FlagHDGST, 72, 76, 76+4096))
	if _, err := p.Parse(b, &h); err != nil || h.DataOffset != 76 || h.DataLen != 4096 {
		t.Fatalf("%v %+v", err, h)
	}
	// A sender that pads more than needed is still aligned and valid.
	p = negotiated(t, RoleController, 0, 0)
	b = pdu(PDUH2CData, FlagLastPDU, 24, 64, 64+8, []byte{1, 0, 2, 0, 0, 0, 0, 0, 8, 0, 0, 0}...)
	if _, err := p.Parse(b, &h); err != nil || h.PadLen() != 40 || h.DataLen != 8 || h.TTag != 2 {
		t.Fatalf("%v %+v", err, h)
	}
	// A PDU with PDO == PLEN carries no data.
	b = pdu(PDUCapsuleCmd, 0, 72, 72, 72)
	if _, err := p.Parse(b, &h); err != nil || h.DataLen != 0 {
		t.Fatalf("%v %+v", err, h)
	}
	// Reserved FLAGS bits are ignored.
	b = pdu(PDUCapsuleCmd, 0x80, 72, 0, 72)
	if _, err := p.Parse(b, &h); err != nil {
		t.Fatal(err)
	}
}

func TestNewParserOptions(t *testing.T) {
	for _, o := range []ParserOptions{
		{},
		{Role: RoleController, MaxH2CData: 4095},
		{Role: RoleController, MaxH2CData: 4098},
		{Role: RoleHost, RequestedDigests: 4},
	} {
		if _, err := NewParser(o); err == nil {
			t.Errorf("NewParser(%+v) accepted", o)
		}
	}
	p := newTestParser(t, RoleHost)
	if p.IsNegotiated() || p.Negotiated(0, 32) == nil || p.Negotiated(8, 0) == nil || p.IsNegotiated() {
		t.Fatal("Negotiated must validate")
	}
	mustNoErr(t, p.Negotiated(DigestData, 31))
	c := negotiated(t, RoleController, 0, 0)
	var h PDUHeader
	big := pdu(PDUCapsuleCmd, 0, 72, 72, 72+4096)
	if _, err := c.Parse(big, &h); err != nil {
		t.Fatal(err)
	}
	c.SetMaxInCapsuleData(1024)
	if _, err := c.Parse(big, &h); !errors.Is(err, ErrPDU) {
		t.Fatalf("limit not applied: %v", err)
	}
	if !p.IsNegotiated() || PDAAlign(31) != 128 || PDAAlign(0) != 4 {
		t.Fatal("negotiated state")
	}
	if PDUType(0x22).String() != "PDU-Type 0x22" || PDUR2T.String() != "R2T" || FES(9).String() != "09h reserved" {
		t.Fatal("String methods")
	}
}
