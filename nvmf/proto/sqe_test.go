package proto

import (
	"errors"
	"testing"
)

// A Read of 8 blocks at LBA 0x1_00000002 with FUA, CID 0x0102, NSID 1, and
// an NVMe/TCP command data buffer SGL of 4096 bytes, written byte by byte
// from NVMe Base 2.3 §4.1.1 and NVMe/TCP 1.0 §3.3.2 (Figure 14).
const goldenReadSQE = `
02 40 02 01  01 00 00 00   00 00 00 00  00 00 00 00
00 00 00 00  00 00 00 00
00 00 00 00  00 00 00 00   00 10 00 00  00 00 00 5a
02 00 00 00  01 00 00 00   07 00 00 40  00 00 00 00
00 00 00 00  00 00 00 00`

func TestSQEGoldenRead(t *testing.T) {
	want := hexb(t, goldenReadSQE, SQESize)
	var s SQE
	mustNoErr(t, s.PutRW(&RWCmd{Opcode: IORead, CID: 0x0102, NSID: 1, SGL: TCPDataSGL(4096),
		SLBA: 0x1_00000002, NLB: 8, FUA: true}))
	got := make([]byte, SQESize)
	mustNoErr(t, s.Encode(got))
	eqBytes(t, "read SQE", got, want)

	var d SQE
	mustNoErr(t, d.Decode(want))
	if d != s {
		t.Fatalf("decode: %+v, want %+v", d, s)
	}
	rw := d.RW()
	if rw.Opcode != IORead || rw.SLBA != 0x1_00000002 || rw.NLB != 8 || !rw.FUA || rw.LR || rw.CID != 0x0102 || rw.NSID != 1 {
		t.Fatalf("RW view: %+v", rw)
	}
	if sgl := d.SGL(); sgl != TCPDataSGL(4096) || sgl.ID() != 0x5a {
		t.Fatalf("SGL: %+v", sgl)
	}
	if d.PSDT() != PSDTSGL || d.Fuse() != FuseNone || d.Dir() != XferCtrlToHost {
		t.Fatalf("PSDT %d FUSE %d Dir %d", d.PSDT(), d.Fuse(), d.Dir())
	}
}

func TestSQERoundTripKeepsEveryByte(t *testing.T) {
	b := make([]byte, SQESize)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	var s SQE
	mustNoErr(t, s.Decode(b))
	out := make([]byte, SQESize)
	mustNoErr(t, s.Encode(out))
	eqBytes(t, "round trip", out, b)
}

func TestSQEShortBuffer(t *testing.T) {
	s := SQE{Opcode: 1, CID: 9}
	err := s.Decode(make([]byte, 63))
	if !errors.Is(err, ErrShortBuffer) || s != (SQE{}) {
		t.Fatalf("err %v, s %+v", err, s)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Need != 64 || fe.Have != 63 {
		t.Fatalf("FieldError %+v", fe)
	}
	if err := s.Encode(make([]byte, 10)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("encode short: %v", err)
	}
}

func TestSGLGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		sgl  SGL
		want string
	}{
		// Keyed data block: address, 24-bit length, 32-bit key, ID 40h (§4.3.2).
		{"keyed", KeyedSGL(0x1122334455667788, 0x012345, 0xdeadbeef, false),
			"88 77 66 55 44 33 22 11  45 23 01  ef be ad de  40"},
		{"keyed-invalidate", KeyedSGL(0x1000, 4096, 7, true),
			"00 10 00 00 00 00 00 00  00 10 00  07 00 00 00  4f"},
		// In-capsule data: data block with the Offset subtype, ID 01h.
		{"in-capsule", InCapsuleSGL(0, 1024),
			"00 00 00 00 00 00 00 00  00 04 00 00  00 00 00  01"},
		// NVMe/TCP command data buffer: transport data block, subtype Ah (5Ah).
		{"tcp", TCPDataSGL(0x20000),
			"00 00 00 00 00 00 00 00  00 00 02 00  00 00 00  5a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := hexb(t, tc.want, SGLSize)
			got := make([]byte, SGLSize)
			mustNoErr(t, tc.sgl.Encode(got))
			eqBytes(t, tc.name, got, want)
			var d SGL
			mustNoErr(t, d.Decode(want))
			if d != tc.sgl {
				t.Fatalf("decode %+v, want %+v", d, tc.sgl)
			}
		})
	}
	bad := KeyedSGL(0, MaxKeyedSGLLen+1, 0, false)
	if err := bad.Encode(make([]byte, 16)); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("keyed length overflow: %v", err)
	}
	var s SQE
	if err := s.SetSGL(bad); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("SetSGL overflow: %v", err)
	}
}

func TestRWViewRoundTrip(t *testing.T) {
	cases := []RWCmd{
		{Opcode: IOWrite, CID: 1, NSID: 2, SGL: InCapsuleSGL(0, 512), SLBA: 0, NLB: 1},
		{Opcode: IORead, CID: 0xffff, NSID: 0xfffffffd, SGL: KeyedSGL(1, 2, 3, true), SLBA: ^uint64(0), NLB: MaxNLB, LR: true, DSM: 7},
		{Opcode: IOWriteZeroes, CID: 5, NSID: 1, SLBA: 100, NLB: 300, Deallocate: true, FUA: true},
	}
	for _, c := range cases {
		var s SQE
		mustNoErr(t, s.PutRW(&c))
		if got := s.RW(); got != c {
			t.Fatalf("RW round trip: %+v, want %+v", got, c)
		}
	}
	var s SQE
	for _, n := range []uint32{0, MaxNLB + 1} {
		if err := s.PutRW(&RWCmd{Opcode: IORead, NLB: n}); !errors.Is(err, ErrInvalidField) {
			t.Fatalf("NLB %d: %v", n, err)
		}
	}
	s.PutFlush(3, NSIDBroadcast)
	if s.Opcode != IOFlush || s.CID != 3 || s.NSID != NSIDBroadcast || s.Dir() != XferNone {
		t.Fatalf("flush %+v", s)
	}
}

func TestDSM(t *testing.T) {
	var s SQE
	mustNoErr(t, s.PutDSM(&DSMCmd{CID: 4, NSID: 1, SGL: InCapsuleSGL(0, 32), Ranges: 2, Attrs: DSMAttrDeallocate}))
	if s.Opcode != IODatasetManagement || s.CDW10 != 1 || s.CDW11 != 4 {
		t.Fatalf("DSM SQE %+v", s)
	}
	if c := s.DSM(); c.Ranges != 2 || c.Attrs != DSMAttrDeallocate || c.CID != 4 {
		t.Fatalf("DSM view %+v", c)
	}
	if err := s.PutDSM(&DSMCmd{Ranges: 257}); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("257 ranges: %v", err)
	}
	// Two ranges by hand: context attributes, length in blocks, starting LBA.
	raw := hexb(t, `
		00 00 00 00  08 00 00 00  00 10 00 00 00 00 00 00
		01 00 00 00  ff ff ff ff  ff ff ff ff ff ff ff 7f`, 0)
	rs, err := DecodeDSMRanges(raw, 2, make([]DSMRange, 0, 4))
	mustNoErr(t, err)
	want := []DSMRange{{NLB: 8, SLBA: 0x1000}, {ContextAttrs: 1, NLB: 0xffffffff, SLBA: 0x7fffffffffffffff}}
	if len(rs) != 2 || rs[0] != want[0] || rs[1] != want[1] {
		t.Fatalf("ranges %+v", rs)
	}
	out := make([]byte, 32)
	for i := range rs {
		mustNoErr(t, rs[i].Encode(out[16*i:]))
	}
	eqBytes(t, "ranges", out, raw)
	if _, err := DecodeDSMRanges(raw, 3, nil); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("3 ranges from 32 bytes: %v", err)
	}
	if _, err := DecodeDSMRanges(raw, 0, nil); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("0 ranges: %v", err)
	}
}
