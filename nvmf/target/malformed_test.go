//go:build linux

package target

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp"
	"hyperpath/nvmf/tcp/tcptest"
)

// termReq reads everything the target sends until it closes, and returns
// the FES and FEI of the C2HTermReq it ends with (ok false when there is
// none).
func termReq(t *testing.T, b []byte) (fes proto.FES, fei uint32, ok bool) {
	t.Helper()
	for len(b) >= proto.CommonHeaderLen {
		plen := int(binary.LittleEndian.Uint32(b[4:]))
		if plen < proto.CommonHeaderLen || plen > len(b) {
			t.Fatalf("garbled PDU stream: PLEN %d of %d bytes", plen, len(b))
		}
		if proto.PDUType(b[0]) == proto.PDUC2HTermReq {
			return proto.FES(binary.LittleEndian.Uint16(b[8:])), binary.LittleEndian.Uint32(b[10:]), true
		}
		b = b[plen:]
	}
	return 0, 0, false
}

func capsule(f proto.Framing, sqe *proto.SQE, data []byte) []byte {
	b := make([]byte, 256+len(data))
	n := tcptest.PutCapsuleHeader(b, f, sqe, len(data))
	n += copy(b[n:], data)
	if len(data) > 0 && f.Digests&proto.DigestData != 0 {
		proto.PutDigest(b[n:], proto.CRC32C(data))
		n += 4
	}
	return b[:n]
}

func identifySQE() proto.SQE {
	var s proto.SQE
	s.PutIdentify(&proto.IdentifyCmd{CNS: proto.CNSController, SGL: proto.TCPDataSGL(4096)})
	return s
}

// TestMalformedPDUs sends broken input on one connection and checks the
// answer (a C2HTermReq with the right FES and FEI, or just a close) while
// another connection keeps working.
func TestMalformedPDUs(t *testing.T) {
	e := newEnv(t, envOpts{})
	good, cntlid := e.admin(tcptest.Options{})
	goodIO := e.io(tcptest.Options{}, cntlid, 1)
	plain := proto.Framing{}
	idf := identifySQE()

	type tc struct {
		name   string
		noIC   bool             // skip ICReq
		digest bool             // negotiate header and data digests
		ioq    bool             // connect as an I/O queue first
		bytes  func() []byte    // what to send
		fes    proto.FES        // expected FES; 0 with noReply
		fei    uint32           // expected FEI (for FES 1 and 6)
		check  func(fei uint32) // optional FEI check
		noTerm bool             // expect a close without TermReq
	}
	cases := []tc{
		{name: "capsule before ICReq", noIC: true, bytes: func() []byte { return capsule(plain, &idf, nil) }, fes: proto.FESSequenceError},
		{name: "second ICReq", bytes: func() []byte {
			b := make([]byte, 128)
			proto.EncodeICReq(b, &proto.ICReq{})
			return b
		}, fes: proto.FESSequenceError},
		{name: "unknown PDU type", bytes: func() []byte {
			return []byte{0x42, 0, 8, 0, 8, 0, 0, 0}
		}, fes: proto.FESInvalidHeaderField, fei: 0},
		{name: "C2H type from host", bytes: func() []byte {
			b := capsule(plain, &idf, nil)
			b[0] = byte(proto.PDUCapsuleResp)
			return b
		}, fes: proto.FESInvalidHeaderField, fei: 0},
		{name: "wrong HLEN", bytes: func() []byte {
			b := capsule(plain, &idf, nil)
			b[2] = 60
			return b
		}, fes: proto.FESInvalidHeaderField, fei: 2},
		{name: "PLEN shorter than header", bytes: func() []byte {
			b := capsule(plain, &idf, nil)
			binary.LittleEndian.PutUint32(b[4:], 40)
			return b
		}, fes: proto.FESInvalidHeaderField, fei: 4},
		{name: "in-capsule data above the admin limit", bytes: func() []byte {
			w := proto.SQE{Opcode: proto.AdminSetFeatures}
			w.SetSGL(proto.InCapsuleSGL(0, 9000))
			return capsule(plain, &w, make([]byte, 9000))
		}, fes: proto.FESInvalidHeaderField, fei: 4},
		{name: "in-capsule data above the I/O limit", ioq: true, bytes: func() []byte {
			w := tcptest.RW(proto.IOWrite, 1, 0, 16)
			w.SetSGL(proto.InCapsuleSGL(0, 8192))
			return capsule(plain, &w, make([]byte, 8192))
		}, fes: proto.FESInvalidHeaderField, fei: 4},
		{name: "header digest mismatch", digest: true, bytes: func() []byte {
			b := capsule(proto.Framing{Digests: proto.DigestHeader | proto.DigestData}, &idf, nil)
			b[72] ^= 0xff
			return b
		}, fes: proto.FESHeaderDigestError},
		{name: "HDGSTF missing with header digests", digest: true, bytes: func() []byte {
			return capsule(plain, &idf, nil)
		}, fes: proto.FESInvalidHeaderField, fei: 1},
		{name: "H2CData with an unknown TTAG", bytes: func() []byte {
			b := make([]byte, 24+512)
			proto.EncodeH2CData(b, plain, &proto.DataPDU{CCCID: 1, TTag: 4000, DataL: 512, Last: true})
			return b
		}, fes: proto.FESInvalidHeaderField, fei: proto.DataPDUOffTTAG},
		{name: "H2CData without R2T", bytes: func() []byte {
			b := make([]byte, 24+512)
			proto.EncodeH2CData(b, plain, &proto.DataPDU{CCCID: 1, TTag: 0, DataL: 512, Last: true})
			return b
		}, fes: proto.FESInvalidHeaderField, fei: proto.DataPDUOffTTAG},
		{name: "H2CData above MAXH2CDATA", bytes: func() []byte {
			n := tcp.MaxH2CData + 4
			b := make([]byte, 24+n)
			proto.EncodeH2CData(b, plain, &proto.DataPDU{CCCID: 1, TTag: 0, DataL: uint32(n), Last: true})
			return b
		}, fes: proto.FESDataLimitExceeded},
		{name: "host TermReq", bytes: func() []byte {
			b := make([]byte, 64)
			n, _ := proto.EncodeTermReq(b, proto.PDUH2CTermReq, proto.FESInvalidHeaderField, 0, nil)
			return b[:n]
		}, noTerm: true},
		{name: "malformed host TermReq", bytes: func() []byte {
			return []byte{byte(proto.PDUH2CTermReq), 0, 30, 0, 30, 0, 0, 0}
		}, noTerm: true},
		{name: "truncated capsule then EOF", bytes: func() []byte {
			return capsule(plain, &idf, nil)[:40]
		}, noTerm: true},
		{name: "truncated common header then EOF", bytes: func() []byte {
			return []byte{byte(proto.PDUCapsuleCmd), 0, 72}
		}, noTerm: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := tcptest.DialRaw(e.hostport, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if !c.noIC {
				h, err := tcptest.NewHost(conn, tcptest.Options{HeaderDigest: c.digest, DataDigest: c.digest})
				if err != nil {
					t.Fatal(err)
				}
				if c.ioq {
					cqe, err := h.Connect(2, 31, 0, cntlid, testNQN, hostNQN, testHostID)
					mustStatus(t, "io connect", cqe, err, proto.StatusSuccess)
				}
			}
			if _, err := conn.Write(c.bytes()); err != nil {
				t.Fatal(err)
			}
			if c.noTerm {
				// Half-close so truncated input ends in EOF.
				conn.(interface{ CloseWrite() error }).CloseWrite()
			}
			b, _ := tcptest.ReadAll(conn) // until the target closes
			fes, fei, ok := termReq(t, b)
			switch {
			case c.noTerm && ok:
				t.Fatalf("unexpected TermReq FES %v", fes)
			case !c.noTerm && !ok:
				t.Fatalf("no TermReq in %d bytes", len(b))
			case !c.noTerm && fes != c.fes:
				t.Fatalf("FES %v, want %v", fes, c.fes)
			case !c.noTerm && (c.fes == proto.FESInvalidHeaderField || c.fes == proto.FESUnsupportedParameter) && fei != c.fei:
				t.Fatalf("FEI %d, want %d", fei, c.fei)
			}
			// The other connections still work.
			buf := make([]byte, 4096)
			cqe, err := good.Identify(proto.CNSController, 0, buf)
			mustStatus(t, "identify on the good connection", cqe, err, proto.StatusSuccess)
			writeRead(t, goodIO, 10, pattern(4096, 3))
		})
	}
}

// TestDataDigestAndSGLErrors: errors that fail one command and keep the
// connection.
func TestDataDigestAndSGLErrors(t *testing.T) {
	e := newEnv(t, envOpts{})
	o := tcptest.Options{HeaderDigest: true, DataDigest: true}
	_, cntlid := e.admin(o)
	conn, err := tcptest.DialRaw(e.hostport, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := tcptest.NewHost(conn, o)
	if err != nil {
		t.Fatal(err)
	}
	cqe, err := h.Connect(1, 31, 0, cntlid, testNQN, hostNQN, testHostID)
	mustStatus(t, "io connect", cqe, err, proto.StatusSuccess)
	f := proto.Framing{Digests: proto.DigestHeader | proto.DigestData}

	// In-capsule write with a bad data digest: Transient Transport Error.
	w := tcptest.RW(proto.IOWrite, 1, 0, 1)
	w.CID = 900
	w.SetSGL(proto.InCapsuleSGL(0, 512))
	b := capsule(f, &w, pattern(512, 1))
	b[len(b)-1] ^= 1
	if err := h.WriteRaw(b); err != nil {
		t.Fatal(err)
	}
	ph, _, err := h.ReadPDU()
	if err != nil || ph.Type != proto.PDUCapsuleResp || ph.CQE.Status.Code() != proto.StatusTransientTransportError || ph.CQE.CID != 900 {
		t.Fatalf("bad in-capsule digest: %v %v %v", ph.Type, ph.CQE.Status, err)
	}

	// SGL problems: the command fails, the connection stays.
	for _, sc := range []struct {
		name string
		sgl  proto.SGL
		data []byte
		want proto.Status
	}{
		{"keyed SGL", proto.KeyedSGL(0x1000, 512, 7, false), nil, proto.StatusSGLTypeInvalid},
		{"in-capsule length mismatch", proto.InCapsuleSGL(0, 1024), pattern(512, 2), proto.StatusDataSGLLengthInvalid},
		{"in-capsule offset", proto.InCapsuleSGL(16, 512), pattern(512, 2), proto.StatusSGLOffsetInvalid},
	} {
		w := tcptest.RW(proto.IOWrite, 1, 0, 1)
		w.CID = 901
		w.SetSGL(sc.sgl)
		if err := h.WriteRaw(capsule(f, &w, sc.data)); err != nil {
			t.Fatal(err)
		}
		ph, _, err := h.ReadPDU()
		if err != nil || ph.Type != proto.PDUCapsuleResp || ph.CQE.Status.Code() != sc.want {
			t.Fatalf("%s: %v %v %v", sc.name, ph.Type, ph.CQE.Status, err)
		}
	}

	// R2T path with a bad digest on the second H2CData PDU.
	w = tcptest.RW(proto.IOWrite, 1, 0, 16)
	w.CID = 902
	w.SetSGL(proto.TCPDataSGL(8192))
	if err := h.WriteRaw(capsule(f, &w, nil)); err != nil {
		t.Fatal(err)
	}
	ph, _, err = h.ReadPDU()
	if err != nil || ph.Type != proto.PDUR2T || ph.Length != 8192 || ph.CCCID != 902 {
		t.Fatalf("R2T: %v %+v %v", ph.Type, ph, err)
	}
	data := pattern(8192, 5)
	for i := 0; i < 2; i++ {
		pdu := make([]byte, 32+4096)
		n, _ := proto.EncodeH2CData(pdu, f, &proto.DataPDU{CCCID: 902, TTag: ph.TTag, DataO: uint32(i * 4096), DataL: 4096, Last: i == 1})
		n += copy(pdu[n:], data[i*4096:(i+1)*4096])
		proto.PutDigest(pdu[n:], proto.CRC32C(data[i*4096:(i+1)*4096]))
		if i == 1 {
			pdu[n] ^= 1
		}
		if err := h.WriteRaw(pdu[:n+4]); err != nil {
			t.Fatal(err)
		}
	}
	ph2, _, err := h.ReadPDU()
	if err != nil || ph2.Type != proto.PDUCapsuleResp || ph2.CQE.Status.Code() != proto.StatusTransientTransportError {
		t.Fatalf("bad H2CData digest: %v %v %v", ph2.Type, ph2.CQE.Status, err)
	}

	// H2CData outside the R2T window: fatal, FES 04h.
	w = tcptest.RW(proto.IOWrite, 1, 0, 8)
	w.CID = 903
	w.SetSGL(proto.TCPDataSGL(4096))
	h.WriteRaw(capsule(f, &w, nil))
	ph, _, err = h.ReadPDU()
	if err != nil || ph.Type != proto.PDUR2T {
		t.Fatalf("R2T: %v %v", ph.Type, err)
	}
	pdu := make([]byte, 32+4096)
	n, _ := proto.EncodeH2CData(pdu, f, &proto.DataPDU{CCCID: 903, TTag: ph.TTag, DataO: 4096, DataL: 4096, Last: true})
	proto.PutDigest(pdu[n+4096:], proto.CRC32C(pdu[n:n+4096]))
	h.WriteRaw(pdu[:n+4100])
	rest, _ := tcptest.ReadAll(conn)
	if fes, _, ok := termReq(t, rest); !ok || fes != proto.FESDataOutOfRange {
		t.Fatalf("H2CData out of range: %v %v", fes, ok)
	}
	// CCCID mismatch on another connection.
	h3 := e.io(tcptest.Options{}, cntlid, 3)
	w = tcptest.RW(proto.IOWrite, 1, 0, 16)
	w.CID = 904
	w.SetSGL(proto.TCPDataSGL(8192))
	h3.WriteRaw(capsule(proto.Framing{}, &w, nil))
	ph, _, err = h3.ReadPDU()
	if err != nil || ph.Type != proto.PDUR2T {
		t.Fatalf("R2T: %v %v", ph.Type, err)
	}
	pdu = make([]byte, 24+512)
	proto.EncodeH2CData(pdu, proto.Framing{}, &proto.DataPDU{CCCID: 905, TTag: ph.TTag, DataL: 512})
	h3.WriteRaw(pdu)
	rest, _ = tcptest.ReadAll(h3.Conn())
	if fes, fei, ok := termReq(t, rest); !ok || fes != proto.FESInvalidHeaderField || fei != proto.DataPDUOffCCCID {
		t.Fatalf("CCCID mismatch: %v %d %v", fes, fei, ok)
	}
	_ = bytes.Equal
}
