package proto

import (
	"encoding/binary"
	"errors"
	"testing"
)

func sampleController() IdentifyController {
	return IdentifyController{
		VID: 0x1b36, SSVID: 0x1af4, SN: "HP0001", MN: "Hyperpath Controller", FR: "0.1",
		RAB: 6, IEEE: [3]byte{0x00, 0x54, 0x52}, CMIC: CMICMultiController, MDTS: 5, CNTLID: 1,
		VER: MakeVS(1, 4, 0), OAES: OAESNamespaceAttr, CTRATT: CTRATTHostID128, CNTRLTYPE: CtrlTypeIO,
		FGUID: [16]byte{1, 2, 3}, CRDT: [3]uint16{1, 2, 3}, OACS: 0, ACL: 3, AERL: 3, FRMW: 3, LPA: LPAExtendedData,
		ELPE: 127, NPSS: 0, WCTEMP: 343, CCTEMP: 373, KAS: 10, SQES: 0x66, CQES: 0x44, MAXCMD: 128, NN: 32,
		ONCS: ONCSCompare | ONCSDatasetManagement | ONCSWriteZeroes, FUSES: FUSESCompareAndWrite, FNA: 0,
		VWC: VWCPresent | VWCFlushBroadcastSupp, AWUN: 1, AWUPF: 1, ACWU: 1, OCFS: 0,
		SGLS: SGLSSupported | SGLSKeyedDataBlock | SGLSAddressAsOffset, MNAN: 32,
		SubNQN: "nqn.2016-06.io.spdk:cnode1", IOCCSZ: 260, IORCSZ: 1, ICDOFF: 0, FCATT: 0, MSDBD: 1,
		OFCS: OFCSDisconnect, DCTYPE: 0,
	}
}

func TestIdentifyControllerOffsets(t *testing.T) {
	c := sampleController()
	b := make([]byte, IdentifySize)
	for i := range b {
		b[i] = 0xaa
	}
	mustNoErr(t, c.Encode(b))
	le := binary.LittleEndian
	// Spot checks against the offsets of NVMe Base 2.3 Figure 328.
	checks := []struct {
		name string
		off  int
		want []byte
	}{
		{"VID", 0, []byte{0x36, 0x1b}},
		{"SN", 4, []byte("HP0001              ")},
		{"MN", 24, []byte("Hyperpath Controller                    ")},
		{"FR", 64, []byte("0.1     ")},
		{"RAB/IEEE/CMIC/MDTS/CNTLID", 72, []byte{6, 0x00, 0x54, 0x52, 2, 5, 1, 0}},
		{"VER", 80, []byte{0x00, 0x04, 0x01, 0x00}},
		{"CNTRLTYPE", 111, []byte{1}},
		{"KAS", 320, []byte{10, 0}},
		{"SQES/CQES/MAXCMD/NN", 512, []byte{0x66, 0x44, 128, 0, 32, 0, 0, 0}},
		{"ONCS", 520, []byte{0x0d, 0}},
		{"VWC", 525, []byte{0x07}},
		{"SGLS", 536, []byte{0x05, 0x00, 0x10, 0x00}},
		{"SUBNQN", 768, append([]byte("nqn.2016-06.io.spdk:cnode1"), 0)},
		{"IOCCSZ/IORCSZ/ICDOFF/FCATT/MSDBD/OFCS", 1792, []byte{4, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0}},
	}
	for _, c := range checks {
		eqBytes(t, c.name, b[c.off:c.off+len(c.want)], c.want)
	}
	if le.Uint32(b[3072:]) != 0 || b[2048] != 0 || b[100] != 0 {
		t.Fatal("Encode must zero unlisted fields")
	}
	var d IdentifyController
	mustNoErr(t, d.Decode(b))
	if d != c {
		t.Fatalf("decode:\n%+v\nwant\n%+v", d, c)
	}
	c.SN = "123456789012345678901"
	if err := c.Encode(b); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("long SN: %v", err)
	}
	if err := d.Decode(b[:4095]); !errors.Is(err, ErrShortBuffer) || d.NN != 0 {
		t.Fatalf("short: %v", err)
	}
}

func sampleNamespace() IdentifyNamespace {
	n := IdentifyNamespace{
		NSZE: 1 << 21, NCAP: 1 << 21, NUSE: 1 << 20, NSFEAT: NSFEATThinProvisioning, NLBAF: 1, FLBAS: 1,
		NMIC: NMICShared, DLFEAT: DLFEATReadZeroes | DLFEATWriteZeroesDeall, NOIOB: 256,
		NVMCAP: Uint128{Lo: 1 << 30}, ANAGRPID: 1, NGUID: [16]byte{0xde, 0xad}, EUI64: [8]byte{0xbe, 0xef},
	}
	n.LBAF[0] = LBAFormat{LBADS: 9}
	n.LBAF[1] = LBAFormat{LBADS: 12, RP: 1}
	return n
}

func TestIdentifyNamespace(t *testing.T) {
	n := sampleNamespace()
	b := make([]byte, IdentifySize)
	mustNoErr(t, n.Encode(b))
	le := binary.LittleEndian
	if le.Uint64(b[0:]) != 1<<21 || le.Uint64(b[16:]) != 1<<20 || b[24] != 1 || b[25] != 1 || b[26] != 1 || b[33] != 9 {
		t.Fatal("NSZE/NUSE/NSFEAT/NLBAF/FLBAS/DLFEAT offsets")
	}
	if b[104] != 0xde || b[120] != 0xbe {
		t.Fatal("NGUID/EUI64 offsets")
	}
	// LBAF1 at 132: MS 0, LBADS 12 in bits 23:16, RP 1 in bits 25:24.
	if le.Uint32(b[132:]) != 12<<16|1<<24 || le.Uint32(b[128:]) != 9<<16 {
		t.Fatalf("LBAF words %#x %#x", le.Uint32(b[128:]), le.Uint32(b[132:]))
	}
	var d IdentifyNamespace
	mustNoErr(t, d.Decode(b))
	if d != n || d.FormatIndex() != 1 || d.BlockSize() != 4096 {
		t.Fatalf("decode %+v", d)
	}

	// An inactive namespace is all zeroes and decodes fine.
	mustNoErr(t, d.Decode(make([]byte, IdentifySize)))
	for _, tc := range []struct {
		name  string
		edit  func(b []byte)
		field string
		off   int
	}{
		{"NLBAF", func(b []byte) { b[25] = 64 }, "NLBAF", 25},
		{"FLBAS beyond NLBAF", func(b []byte) { b[26] = 2 }, "FLBAS", 26},
		{"LBADS too small", func(b []byte) { b[132+2] = 8 }, "LBAF.LBADS", 134},
		{"NCAP > NSZE", func(b []byte) { le.PutUint64(b[8:], 1<<22) }, "NCAP", 8},
		{"NUSE > NCAP", func(b []byte) { le.PutUint64(b[16:], 1<<22) }, "NUSE", 16},
	} {
		bad := append([]byte(nil), b...)
		tc.edit(bad)
		var fe *FieldError
		err := d.Decode(bad)
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Offset != tc.off || d != (IdentifyNamespace{}) {
			t.Errorf("%s: %v (decoded %v)", tc.name, err, d.NSZE)
		}
	}
	// FLBAS bits 6:5 extend the index beyond 16 formats.
	n.NLBAF = 20
	n.FLBAS = 0x20 | 2 // index 18
	n.LBAF[18] = LBAFormat{LBADS: 13}
	mustNoErr(t, n.Encode(b))
	mustNoErr(t, d.Decode(b))
	if d.FormatIndex() != 18 || d.BlockSize() != 8192 {
		t.Fatalf("index %d size %d", d.FormatIndex(), d.BlockSize())
	}
}

func TestIdentifyCommand(t *testing.T) {
	var s SQE
	c := IdentifyCmd{CID: 7, NSID: 1, SGL: TCPDataSGL(4096), CNS: CNSNSDescriptorList, CNTID: 0x12, CSI: CSIZNS, UUIDIndex: 3}
	mustNoErr(t, s.PutIdentify(&c))
	if s.Opcode != AdminIdentify || s.CDW10 != 0x00120003 || s.CDW11 != 0x02000000 || s.CDW14 != 3 || s.Dir() != XferCtrlToHost {
		t.Fatalf("identify SQE %+v", s)
	}
	if s.Identify() != c {
		t.Fatalf("view %+v", s.Identify())
	}
}

func TestNSList(t *testing.T) {
	b := make([]byte, IdentifySize)
	ids := []uint32{1, 2, 7, 0xfffffffd}
	mustNoErr(t, EncodeNSList(b, ids))
	eqBytes(t, "list", b[:20], hexb(t, "01000000 02000000 07000000 fdffffff 00000000", 0))
	got, err := DecodeNSList(b, make([]uint32, 0, 1024))
	mustNoErr(t, err)
	if len(got) != 4 || got[3] != 0xfffffffd {
		t.Fatalf("decode %v", got)
	}
	for _, bad := range [][]uint32{{0}, {2, 2}, {3, 1}, {NSIDBroadcast}, make([]uint32, 1025)} {
		if err := EncodeNSList(b, bad); !errors.Is(err, ErrInvalidField) {
			t.Errorf("EncodeNSList(%v): %v", len(bad), err)
		}
	}
	mustNoErr(t, EncodeNSList(b, ids))
	binary.LittleEndian.PutUint32(b[8:], 1) // 1, 2, 1: not increasing
	var fe *FieldError
	if _, err := DecodeNSList(b, nil); !errors.As(err, &fe) || fe.Offset != 8 {
		t.Fatalf("not increasing: %v", err)
	}
	// Changed Attached Namespace List with overflow marker.
	mustNoErr(t, EncodeChangedNSList(b, make([]uint32, 1025)))
	if binary.LittleEndian.Uint32(b) != 0xffffffff || binary.LittleEndian.Uint32(b[4:]) != 0 {
		t.Fatal("overflow marker")
	}
	if _, of, err := DecodeChangedNSList(b, nil); err != nil || !of {
		t.Fatalf("overflow: %v %v", of, err)
	}
	mustNoErr(t, EncodeChangedNSList(b, []uint32{5}))
	if ids, of, err := DecodeChangedNSList(b, nil); err != nil || of || len(ids) != 1 || ids[0] != 5 {
		t.Fatalf("changed list %v %v %v", ids, of, err)
	}
}

func TestNSDescriptors(t *testing.T) {
	d := NSDescriptors{
		EUI64: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, HasEUI64: true,
		UUID: [16]byte{0xf8, 0x1d}, HasUUID: true,
		CSI: CSINVM, HasCSI: true,
	}
	b := make([]byte, IdentifySize)
	mustNoErr(t, d.Encode(b))
	want := hexb(t, `
		01 08 00 00  01 02 03 04 05 06 07 08
		03 10 00 00  f8 1d 00 00 00 00 00 00 00 00 00 00 00 00 00 00
		04 01 00 00  00
		00 00 00 00`, 0)
	eqBytes(t, "descriptors", b[:len(want)], want)
	var got NSDescriptors
	mustNoErr(t, got.Decode(b))
	if got != d {
		t.Fatalf("decode %+v", got)
	}
	// Unknown types are skipped.
	skip := hexb(t, "09 02 00 00 aa bb  02 10 00 00 11 22 33 44 55 66 77 88 99 00 11 22 33 44 55 66", IdentifySize)
	mustNoErr(t, got.Decode(skip))
	if !got.HasNGUID || got.NGUID[0] != 0x11 || got.HasEUI64 {
		t.Fatalf("skip: %+v", got)
	}
	for name, tc := range map[string]struct {
		b     string
		field string
		off   int
	}{
		"bad length": {"01 07 00 00 00 00 00 00 00 00 00", "NIDL", 1},
		"repeated":   {"04 01 00 00 00  04 01 00 00 02", "NIDT", 5},
	} {
		var fe *FieldError
		if err := got.Decode(hexb(t, tc.b, IdentifySize)); !errors.As(err, &fe) || fe.Field != tc.field || fe.Offset != tc.off {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Skip to offset 4085 with unknown descriptors, then put a 20-byte NGUID
	// descriptor there: it would end at 4105.
	over := make([]byte, IdentifySize)
	off := 0
	for i := 0; i < 15; i++ {
		over[off], over[off+1] = 9, 255
		off += 259
	}
	over[off], over[off+1] = 9, 196
	off += 200
	over[off], over[off+1] = NIDTNGUID, 16
	var fe *FieldError
	if err := got.Decode(over); off != 4085 || !errors.As(err, &fe) || fe.Offset != 4086 {
		t.Fatalf("overrun: %v", err)
	}
}
