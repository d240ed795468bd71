package proto

import (
	"errors"
	"strings"
	"testing"
)

// A Connect for the admin queue: CID 1, in-capsule SGL of 1024 bytes,
// SQSIZE 31, KATO 120000 ms (NVMe Base 2.3 §6.3, Figure 579).
const goldenConnectSQE = `
7f 40 01 00  01 00 00 00   00 00 00 00  00 00 00 00
00 00 00 00  00 00 00 00
00 00 00 00  00 00 00 00   00 04 00 00  00 00 00 01
00 00 00 00  1f 00 04 00   c0 d4 01 00`

func TestConnectGolden(t *testing.T) {
	want := hexb(t, goldenConnectSQE, SQESize)
	c := ConnectCmd{CID: 1, SGL: InCapsuleSGL(0, ConnectDataSize), SQSize: 31, CAttr: CAttrDisableSQFlow, KATO: 120000}
	var s SQE
	mustNoErr(t, s.PutConnect(&c))
	got := make([]byte, SQESize)
	mustNoErr(t, s.Encode(got))
	eqBytes(t, "Connect SQE", got, want)
	var d SQE
	mustNoErr(t, d.Decode(want))
	if d.Opcode != OpFabrics || d.FCType() != FCTypeConnect || d.Dir() != XferHostToCtrl {
		t.Fatalf("opcode %#x fctype %#x dir %d", d.Opcode, d.FCType(), d.Dir())
	}
	if v := d.Connect(); v != c {
		t.Fatalf("Connect view %+v, want %+v", v, c)
	}
	if want[ConnectOffSQSize] != 31 || want[ConnectOffCAttr] != CAttrDisableSQFlow || want[ConnectOffKATO] != 0xc0 {
		t.Fatal("offset constants disagree with the golden bytes")
	}
}

func TestConnectData(t *testing.T) {
	hostID := [16]byte{0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6}
	d := ConnectData{
		HostID:  hostID,
		CNTLID:  CNTLIDDynamic,
		SubNQN:  "nqn.2016-06.io.spdk:cnode1",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
	}
	b := make([]byte, ConnectDataSize)
	for i := range b {
		b[i] = 0xee // Encode must clear reserved bytes
	}
	mustNoErr(t, d.Encode(b))
	eqBytes(t, "HOSTID", b[0:16], hostID[:])
	eqBytes(t, "CNTLID", b[16:18], []byte{0xff, 0xff})
	eqBytes(t, "reserved 18..255", b[18:256], make([]byte, 238))
	eqBytes(t, "SUBNQN", b[256:256+len(d.SubNQN)+1], append([]byte(d.SubNQN), 0))
	eqBytes(t, "HOSTNQN", b[512:512+len(d.HostNQN)+1], append([]byte(d.HostNQN), 0))
	eqBytes(t, "reserved 768..1023", b[768:], make([]byte, 256))

	var got ConnectData
	mustNoErr(t, got.Decode(b))
	if got != d {
		t.Fatalf("decode %+v", got)
	}
	if !ValidNQN(got.SubNQN) || !ValidNQN(got.HostNQN) {
		t.Fatal("ValidNQN rejects good NQNs")
	}

	// An unterminated NQN names its offset, ready for the IPO of Connect
	// Invalid Parameters.
	for _, off := range []int{ConnectDataOffSubNQN, ConnectDataOffHostNQN} {
		bad := append([]byte(nil), b...)
		for i := off; i < off+256; i++ {
			bad[i] = 'a'
		}
		var fe *FieldError
		if err := got.Decode(bad); !errors.As(err, &fe) || fe.Offset != off || !errors.Is(err, ErrInvalidField) {
			t.Fatalf("unterminated NQN at %d: %v", off, err)
		}
		if got != (ConnectData{}) {
			t.Fatal("failed decode left data behind")
		}
		if dw0 := ConnectInvalidParamDW0(true, uint16(fe.Offset)); dw0 != 1<<16|uint32(off) {
			t.Fatalf("DW0 %#x", dw0)
		}
	}
	if err := got.Decode(b[:1023]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short: %v", err)
	}
	long := d
	long.HostNQN = "nqn." + strings.Repeat("x", 252)
	if err := long.Encode(b); !errors.Is(err, ErrInvalidField) {
		t.Fatalf("256-byte NQN: %v", err)
	}
	for _, s := range []string{"", "nqn", "iqn.2014-08.x", "nqn." + strings.Repeat("y", 220), "nqn.a\x00b", "nqn.\xff"} {
		if ValidNQN(s) {
			t.Errorf("ValidNQN(%q) = true", s)
		}
	}
}

func TestConnectResponse(t *testing.T) {
	dw0 := ConnectRespDW0(0x0005, AuthReqATR)
	if dw0 != 0x0002_0005 {
		t.Fatalf("DW0 %#x", dw0)
	}
	if c, a := ConnectResp(dw0); c != 5 || a != AuthReqATR {
		t.Fatal("ConnectResp")
	}
	inData, off := ConnectInvalidParam(ConnectInvalidParamDW0(false, ConnectOffSQSize))
	if inData || off != 44 {
		t.Fatal("ConnectInvalidParam")
	}
}

func TestPropertyCommands(t *testing.T) {
	// Property Get of CAP (8 bytes): ATTRIB 1 at byte 40, OFST 0 at 44.
	var s SQE
	s.PutPropertyGet(&PropertyCmd{CID: 9, Attrib: PropSize8, Offset: PropCAP})
	b := make([]byte, SQESize)
	mustNoErr(t, s.Encode(b))
	want := hexb(t, "7f 00 09 00  04 00 00 00", 40)
	want = append(want, hexb(t, "01 00 00 00  00 00 00 00", 24)...)
	eqBytes(t, "Property Get SQE", b, want)

	// Property Set of CC with EN: ATTRIB 0, OFST 14h, VALUE at 48.
	cc := CCFields{EN: true, IOSQES: 6, IOCQES: 4}.CC()
	s.PutPropertySet(&PropertyCmd{CID: 10, Attrib: PropSize4, Offset: PropCC, Value: uint64(cc)})
	mustNoErr(t, s.Encode(b))
	want = hexb(t, "7f 00 0a 00  00 00 00 00", 40)
	want = append(want, hexb(t, "00 00 00 00  14 00 00 00  01 00 46 00", 24)...)
	eqBytes(t, "Property Set SQE", b, want)
	p := s.Property()
	if p.Offset != PropCC || p.Size() != 4 || CC(p.Value) != cc || !CC(p.Value).EN() || CC(p.Value).IOSQES() != 6 {
		t.Fatalf("Property view %+v", p)
	}
	if (&PropertyCmd{Attrib: 2}).Size() != 0 {
		t.Fatal("reserved ATTRIB must have size 0")
	}
	var c CQE
	PutPropertyGetValue(&c, 0x0123456789abcdef)
	if c.DW0 != 0x89abcdef || c.DW1 != 0x01234567 || PropertyGetValue(&c) != 0x0123456789abcdef {
		t.Fatal("property value in DW0/DW1")
	}
	for off, n := range map[uint32]int{PropCAP: 8, PropVS: 4, PropCC: 4, PropCSTS: 4, PropNSSR: 4, 0x04: 0, PropASQ: 0} {
		if PropertySize(off) != n {
			t.Errorf("PropertySize(%#x) = %d, want %d", off, PropertySize(off), n)
		}
	}
}

func TestPropertyFields(t *testing.T) {
	cap := CAPFields{MQES: 127, CQR: true, TO: 15, CSS: CAPCSSNVM, MPSMIN: 0, MPSMAX: 4, NSSRS: true, DSTRD: 1, AMS: 1, CRMS: 3}.CAP()
	// MQES 7Fh, CQR bit 16, AMS bit 17, TO 0Fh in 31:24, DSTRD 1 in 35:32,
	// NSSRS bit 36, CSS 1 at bit 37, MPSMAX 4 in 55:52, CRMS 3 in 60:59.
	if want := CAP(0x007f | 1<<16 | 1<<17 | 0x0f<<24 | 1<<32 | 1<<36 | 1<<37 | 4<<52 | 3<<59); cap != want {
		t.Fatalf("CAP %#x, want %#x", uint64(cap), uint64(want))
	}
	if cap.MQES() != 127 || !cap.CQR() || cap.AMS() != 1 || cap.TO() != 15 || cap.DSTRD() != 1 || !cap.NSSRS() ||
		cap.CSS() != CAPCSSNVM || cap.MPSMIN() != 0 || cap.MPSMAX() != 4 || cap.CRMS() != 3 {
		t.Fatal("CAP accessors")
	}
	cc := CCFields{EN: true, CSS: CCCSSNVM, MPS: 0, AMS: 0, SHN: ShutdownNormal, IOSQES: 6, IOCQES: 4, CRIME: true}.CC()
	if cc != 0x01464001 || !cc.EN() || cc.SHN() != ShutdownNormal || cc.IOSQES() != 6 || cc.IOCQES() != 4 || !cc.CRIME() || cc.MPS() != 0 {
		t.Fatalf("CC %#x", uint32(cc))
	}
	st := MakeCSTS(true, false, ShutdownStatusComplete)
	if st != 0x9 || !st.RDY() || st.CFS() || st.SHST() != ShutdownStatusComplete || st.PP() || st.NSSRO() {
		t.Fatalf("CSTS %#x", uint32(st))
	}
	v := MakeVS(1, 4, 0)
	if v != 0x00010400 || v.Major() != 1 || v.Minor() != 4 || v.Tertiary() != 0 {
		t.Fatalf("VS %#x", uint32(v))
	}
	if NSSRReset != 0x4e564d65 {
		t.Fatal("NSSR")
	}
}

func TestDisconnectAndAuth(t *testing.T) {
	var s SQE
	s.PutDisconnect(&DisconnectCmd{CID: 3})
	if s.Opcode != OpFabrics || s.FCType() != FCTypeDisconnect || s.Disconnect() != (DisconnectCmd{CID: 3}) || s.Dir() != XferNone {
		t.Fatalf("disconnect %+v", s)
	}
	a := AuthCmd{CID: 4, SGL: InCapsuleSGL(0, 100), SPSP0: 1, SPSP1: 2, SECP: SECPNVMeAuth, Len: 100}
	mustNoErr(t, s.PutAuth(&a, true))
	b := make([]byte, SQESize)
	mustNoErr(t, s.Encode(b))
	if s.FCType() != FCTypeAuthSend || b[41] != 1 || b[42] != 2 || b[43] != 0xe9 || b[44] != 100 {
		t.Fatalf("auth send bytes % x", b[40:48])
	}
	if s.Auth() != a {
		t.Fatalf("auth view %+v", s.Auth())
	}
	mustNoErr(t, s.PutAuth(&a, false))
	if s.FCType() != FCTypeAuthReceive || s.Dir() != XferCtrlToHost {
		t.Fatal("auth receive")
	}
}
