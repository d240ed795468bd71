package proto

import (
	"errors"
	"testing"
)

// TestStreamExchange plays a host and a controller over two byte streams:
// connection setup, a write with in-capsule data, a read answered with
// C2HData and a CapsuleResp, a write moved by R2T/H2CData, all with both
// digests and a 16-byte host data alignment. PDUs are packed back to back
// and parsed incrementally, the way a transport reads a socket.
func TestStreamExchange(t *testing.T) {
	var h2c, c2h []byte // the two directions of the connection
	all := DigestHeader | DigestData
	host, err := NewParser(ParserOptions{Role: RoleHost, RequestedDigests: all})
	mustNoErr(t, err)
	ctrl, err := NewParser(ParserOptions{Role: RoleController, MaxInCapsuleData: 8192, MaxH2CData: 8192})
	mustNoErr(t, err)
	send := func(stream *[]byte, build func(b []byte) (int, error), data []byte, digest bool) {
		t.Helper()
		b := make([]byte, 256)
		n, err := build(b)
		mustNoErr(t, err)
		*stream = append(*stream, b[:n]...)
		*stream = append(*stream, data...)
		if digest && len(data) > 0 {
			d := make([]byte, 4)
			PutDigest(d, CRC32C(data))
			*stream = append(*stream, d...)
		}
	}
	// next parses one PDU from the front of stream, giving the parser exactly
	// the bytes it asks for, and returns the header and the data.
	next := func(p *Parser, stream *[]byte) (PDUHeader, []byte) {
		t.Helper()
		var h PDUHeader
		have := 0
		for {
			n, err := p.Parse((*stream)[:have], &h)
			mustNoErr(t, err)
			if n <= have {
				break
			}
			if n > len(*stream) {
				t.Fatalf("stream ends before the %d header bytes the parser needs", n)
			}
			have = n
		}
		pdu := (*stream)[:h.PLen]
		*stream = (*stream)[h.PLen:]
		data := pdu[h.DataOffset : h.DataOffset+h.DataLen]
		if h.DataDigest && !VerifyDataDigest([][]byte{data}, pdu[h.DataOffset+h.DataLen:]) {
			t.Fatalf("%v: data digest mismatch", h.Type)
		}
		return h, data
	}

	// Setup: ICReq with HPDA 3 (16 bytes), ICResp with CPDA 0.
	send(&h2c, func(b []byte) (int, error) { return EncodeICReq(b, &ICReq{HPDA: 3, Digests: all}) }, nil, false)
	req, _ := next(ctrl, &h2c)
	send(&c2h, func(b []byte) (int, error) {
		return EncodeICResp(b, &ICResp{Digests: req.Digests, MaxH2CData: 8192})
	}, nil, false)
	mustNoErr(t, ctrl.Negotiated(req.Digests, 0))
	resp, _ := next(host, &c2h)
	mustNoErr(t, host.Negotiated(resp.Digests, req.PDA))
	toCtrl := Framing{Digests: all, PDA: 0} // the controller's CPDA
	toHost := Framing{Digests: all, PDA: 3} // the host's HPDA

	// A write with 512 bytes in capsule and a read of 12 KiB, back to back.
	payload := make([]byte, 512)
	for i := range payload {
		payload[i] = byte(i)
	}
	var w, r SQE
	mustNoErr(t, w.PutRW(&RWCmd{Opcode: IOWrite, CID: 1, NSID: 1, SGL: InCapsuleSGL(0, 512), NLB: 1}))
	mustNoErr(t, r.PutRW(&RWCmd{Opcode: IORead, CID: 2, NSID: 1, SGL: TCPDataSGL(12288), SLBA: 8, NLB: 24}))
	send(&h2c, func(b []byte) (int, error) { return EncodeCapsuleCmd(b, toCtrl, &w, 512) }, payload, true)
	send(&h2c, func(b []byte) (int, error) { return EncodeCapsuleCmd(b, toCtrl, &r, 0) }, nil, true)

	h, data := next(ctrl, &h2c)
	if h.SQE != w || string(data) != string(payload) {
		t.Fatal("write capsule")
	}
	h, data = next(ctrl, &h2c)
	if h.SQE != r || len(data) != 0 || len(h2c) != 0 {
		t.Fatal("read capsule")
	}

	// The controller completes the write, then returns the read in two
	// C2HData PDUs (the last with SUCCESS, so no CapsuleResp for it).
	send(&c2h, func(b []byte) (int, error) { return EncodeCapsuleResp(b, toHost, &CQE{CID: 1, SQHead: 1}) }, nil, false)
	block := make([]byte, 8192)
	send(&c2h, func(b []byte) (int, error) {
		return EncodeC2HData(b, toHost, &DataPDU{CCCID: 2, DataO: 0, DataL: 8192})
	}, block, true)
	send(&c2h, func(b []byte) (int, error) {
		return EncodeC2HData(b, toHost, &DataPDU{CCCID: 2, DataO: 8192, DataL: 4096, Last: true, Success: true})
	}, block[:4096], true)
	h, _ = next(host, &c2h)
	if h.Type != PDUCapsuleResp || h.CQE.CID != 1 || !h.CQE.Status.Success() {
		t.Fatalf("resp %+v", h)
	}
	h, data = next(host, &c2h)
	if h.Type != PDUC2HData || h.CCCID != 2 || h.Offset != 0 || len(data) != 8192 || h.PadLen() != 4 || h.Last() {
		t.Fatalf("c2h 1 %+v", h)
	}
	h, data = next(host, &c2h)
	if h.Offset != 8192 || len(data) != 4096 || !h.Success() || len(c2h) != 0 {
		t.Fatalf("c2h 2 %+v", h)
	}

	// A 16 KiB write by R2T: the controller solicits 8 KiB, the host answers
	// with one H2CData.
	var big SQE
	mustNoErr(t, big.PutRW(&RWCmd{Opcode: IOWrite, CID: 3, NSID: 1, SGL: TCPDataSGL(16384), NLB: 32}))
	send(&h2c, func(b []byte) (int, error) { return EncodeCapsuleCmd(b, toCtrl, &big, 0) }, nil, false)
	h, _ = next(ctrl, &h2c)
	if sgl := h.SQE.SGL(); sgl.Type != SGLTypeTransportDataBlock || sgl.Len != 16384 {
		t.Fatalf("sgl %+v", sgl)
	}
	send(&c2h, func(b []byte) (int, error) { return EncodeR2T(b, toHost, &R2T{CCCID: 3, TTag: 7, R2TO: 0, R2TL: 8192}) }, nil, false)
	h, _ = next(host, &c2h)
	send(&h2c, func(b []byte) (int, error) {
		return EncodeH2CData(b, toCtrl, &DataPDU{CCCID: h.CCCID, TTag: h.TTag, DataO: h.Offset, DataL: h.Length, Last: true})
	}, block, true)
	h, data = next(ctrl, &h2c)
	if h.Type != PDUH2CData || h.TTag != 7 || len(data) != 8192 || !h.Last() {
		t.Fatalf("h2c %+v", h)
	}

	// The controller refuses something the parser cannot judge (an unknown
	// TTAG): it builds the C2HTermReq from a PDUError and the offending header.
	hdr := make([]byte, 28)
	_, _ = EncodeH2CData(hdr, toCtrl, &DataPDU{CCCID: 3, TTag: 99, DataL: 4})
	pe := NewPDUError(PDUH2CData, FESInvalidHeaderField, DataPDUOffTTAG, "TTAG", "unknown transfer tag")
	if !errors.Is(pe, ErrPDU) {
		t.Fatal("NewPDUError must wrap ErrPDU")
	}
	send(&c2h, func(b []byte) (int, error) { return EncodeTermReq(b, PDUC2HTermReq, pe.FES, pe.FEI, hdr) }, nil, false)
	h, data = next(host, &c2h)
	if h.Type != PDUC2HTermReq || h.FES != FESInvalidHeaderField || h.FEI != DataPDUOffTTAG || string(data) != string(hdr) {
		t.Fatalf("term %+v", h)
	}
}
