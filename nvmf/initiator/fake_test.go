package initiator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf/proto"
)

// fakeCtrl is a scripted controller: each test writes the exact PDUs it
// answers with, to drive the host's state machine through one path.
type fakeCtrl struct {
	t      *testing.T
	c      net.Conn
	p      *proto.Parser
	toHost proto.Framing
	h      proto.PDUHeader
	hdr    []byte // raw header of the last PDU read
	data   []byte // data of the last PDU read
}

// startFake listens on loopback and runs script on the first connection.
func startFake(t *testing.T, script func(f *fakeCtrl)) (host, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		p, _ := proto.NewParser(proto.ParserOptions{Role: proto.RoleController, MaxInCapsuleData: 65536, MaxH2CData: 65536})
		script(&fakeCtrl{t: t, c: c, p: p})
	}()
	h, pt, _ := net.SplitHostPort(ln.Addr().String())
	return h, pt
}

// read reads one PDU; it returns false at EOF or on a parse error.
func (f *fakeCtrl) read() bool {
	buf := make([]byte, 0, 256)
	for {
		n, err := f.p.Parse(buf, &f.h)
		if err != nil {
			f.t.Errorf("fake: host sent a bad PDU: %v", err)
			return false
		}
		if n <= len(buf) {
			break
		}
		more := make([]byte, n-len(buf))
		if _, err := io.ReadFull(f.c, more); err != nil {
			return false
		}
		buf = append(buf, more...)
	}
	f.hdr = buf
	body := make([]byte, int(f.h.PLen)-f.h.HeaderLen)
	if f.h.Type == proto.PDUH2CTermReq {
		body = make([]byte, int(f.h.PLen)-f.h.HeaderLen)
	}
	if _, err := io.ReadFull(f.c, body); err != nil {
		return false
	}
	if f.h.DataLen > 0 {
		off := f.h.DataOffset - f.h.HeaderLen
		f.data = body[off : off+f.h.DataLen]
		if f.h.DataDigest && !proto.VerifyDataDigest([][]byte{f.data}, body[off+f.h.DataLen:]) {
			f.t.Error("fake: bad data digest from host")
		}
	} else {
		f.data = nil
	}
	return true
}

func (f *fakeCtrl) send(b []byte) {
	if _, err := f.c.Write(b); err != nil {
		f.t.Errorf("fake write: %v", err)
	}
}

// ic answers the ICReq with the given digests and CPDA.
func (f *fakeCtrl) ic(dg proto.Digest, cpda uint8) bool {
	if !f.read() || f.h.Type != proto.PDUICReq {
		f.t.Error("fake: no ICReq")
		return false
	}
	b := make([]byte, 128)
	n, _ := proto.EncodeICResp(b, &proto.ICResp{CPDA: cpda, Digests: dg, MaxH2CData: 8192})
	f.send(b[:n])
	f.toHost = proto.Framing{Digests: dg, PDA: f.h.PDA}
	if err := f.p.Negotiated(dg, cpda); err != nil {
		f.t.Error(err)
		return false
	}
	return true
}

func (f *fakeCtrl) resp(cid uint16, st proto.Status, dw0 uint32) {
	b := make([]byte, 64)
	n, _ := proto.EncodeCapsuleResp(b, f.toHost, &proto.CQE{CID: cid, Status: st, DW0: dw0})
	f.send(b[:n])
}

// connect answers the Fabrics Connect with cntlid 1.
func (f *fakeCtrl) connect() bool {
	if !f.read() || f.h.Type != proto.PDUCapsuleCmd || f.h.SQE.FCType() != proto.FCTypeConnect {
		f.t.Error("fake: no Connect")
		return false
	}
	f.resp(f.h.SQE.CID, proto.StatusSuccess, proto.ConnectRespDW0(1, 0))
	return true
}

// expectTerm reads the host's H2CTermReq and checks FES (and FEI unless
// fei < 0).
func (f *fakeCtrl) expectTerm(fes proto.FES, fei int64) {
	if !f.read() {
		f.t.Error("fake: no H2CTermReq")
		return
	}
	if f.h.Type != proto.PDUH2CTermReq || f.h.FES != fes || (fei >= 0 && f.h.FEI != uint32(fei)) {
		f.t.Errorf("fake: got %v FES %v FEI %d, want H2CTermReq FES %v FEI %d", f.h.Type, f.h.FES, f.h.FEI, fes, fei)
	}
}

func fakeOpts(h, p string) *Options {
	o := &Options{TRAddr: h, TRSvcID: p, SubNQN: "nqn.2016-06.io.hyperpath:fake", Logger: quietLog, ConnectTimeout: 5 * time.Second}
	if err := o.normalize(false); err != nil {
		panic(err)
	}
	return o
}

// syncRun submits c on a sync-mode queue pair and drives it until it
// completes; it returns the status, or the connection error.
func syncRun(t *testing.T, q *QPair, c Cmd) (proto.Status, error) {
	t.Helper()
	var res syncResult
	c.Done, c.Ctx = syncDone, &res
	if err := q.Submit(&c); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for !res.done && q.c != nil {
		q.flush()
		if q.c != nil {
			q.receive()
		}
		if res.done || q.c == nil {
			break
		}
		ev := int16(unix.POLLIN)
		if q.txN > 0 {
			ev |= unix.POLLOUT
		}
		if err := waitFd(context.Background(), q.c.fd, ev, deadline); err != nil {
			return 0, err
		}
	}
	if q.c == nil {
		return res.cqe.Status, q.lastErr
	}
	return res.cqe.Status, nil
}

func TestFakeNegotiationAndPadding(t *testing.T) {
	// The host asks for both digests; the controller grants only DDGST and
	// asks for 16-byte alignment of H2C data (CPDA 3).
	got := make(chan proto.PDUHeader, 1)
	h, p := startFake(t, func(f *fakeCtrl) {
		if !f.ic(proto.DigestData, 3) || !f.read() {
			return
		}
		got <- f.h
		if len(f.data) != proto.ConnectDataSize {
			f.t.Errorf("Connect data %d bytes", len(f.data))
		}
		var cd proto.ConnectData
		if err := cd.Decode(f.data); err != nil || cd.HostNQN == "" || cd.CNTLID != proto.CNTLIDDynamic {
			f.t.Errorf("connect data %+v %v", cd, err)
		}
		// Refuse the host.
		f.resp(f.h.SQE.CID, proto.StatusConnectInvalidHost, 0)
	})
	o := fakeOpts(h, p)
	o.HeaderDigest, o.DataDigest = true, true
	_, _, err := openQueue(context.Background(), o, 0, 32, proto.CNTLIDDynamic, 10000, proto.MaxAdminInCapsule)
	var se *StatusError
	if !errors.As(err, &se) || se.Status.Code() != proto.StatusConnectInvalidHost {
		t.Fatalf("got %v", err)
	}
	hd := <-got
	if hd.Flags&proto.FlagHDGST != 0 || hd.Flags&proto.FlagDDGST == 0 {
		t.Errorf("capsule flags %#x: want DDGST only", hd.Flags)
	}
	if hd.PDO != 80 {
		t.Errorf("capsule PDO %d, want 72 rounded up to 16", hd.PDO)
	}
	if c := hd.SQE.Connect(); c.KATO != 10000 || c.SQSize != 31 || c.QID != 0 {
		t.Errorf("connect %+v", c)
	}
}

func TestFakeICRespErrors(t *testing.T) {
	t.Run("termreq", func(t *testing.T) {
		h, p := startFake(t, func(f *fakeCtrl) {
			f.read()
			b := make([]byte, 256)
			n, _ := proto.EncodeTermReq(b, proto.PDUC2HTermReq, proto.FESUnsupportedParameter, proto.ICOffPFV, f.hdr)
			f.send(b[:n])
		})
		_, err := dialConn(context.Background(), fakeOpts(h, p), time.Now().Add(5*time.Second))
		var te *TermReqError
		if !errors.As(err, &te) || te.FES != proto.FESUnsupportedParameter || te.FEI != proto.ICOffPFV || !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unrequested-digest", func(t *testing.T) {
		h, p := startFake(t, func(f *fakeCtrl) {
			f.read()
			b := make([]byte, 128)
			n, _ := proto.EncodeICResp(b, &proto.ICResp{Digests: proto.DigestHeader, MaxH2CData: 8192})
			f.send(b[:n])
		})
		if _, err := dialConn(context.Background(), fakeOpts(h, p), time.Now().Add(5*time.Second)); !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		h, p := startFake(t, func(f *fakeCtrl) { f.read() })
		if _, err := dialConn(context.Background(), fakeOpts(h, p), time.Now().Add(5*time.Second)); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("silent", func(t *testing.T) {
		h, p := startFake(t, func(f *fakeCtrl) { f.read(); time.Sleep(time.Second) })
		if _, err := dialConn(context.Background(), fakeOpts(h, p), time.Now().Add(200*time.Millisecond)); !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v", err)
		}
	})
}

// fakeIOQueue connects an I/O queue (qid 1) to a fake that runs script
// after the Connect; icMax is the in-capsule limit.
func fakeIOQueue(t *testing.T, dg proto.Digest, icMax uint32, script func(f *fakeCtrl)) *QPair {
	t.Helper()
	h, p := startFake(t, func(f *fakeCtrl) {
		if f.ic(dg, 0) && f.connect() {
			script(f)
		}
	})
	o := fakeOpts(h, p)
	o.HeaderDigest, o.DataDigest = dg&proto.DigestHeader != 0, dg&proto.DigestData != 0
	q, id, err := openQueue(context.Background(), o, 1, 8, 1, 0, icMax)
	if err != nil || id != 1 {
		t.Fatalf("connect: %v id %d", err, id)
	}
	t.Cleanup(q.closeSync)
	return q
}

func TestFakeR2TFlow(t *testing.T) {
	data := make([]byte, 10000)
	pattern(data, 3)
	recvCh := make(chan []byte, 1)
	q := fakeIOQueue(t, proto.DigestData, 0, func(f *fakeCtrl) {
		recv := make([]byte, len(data))
		defer func() { recvCh <- recv }()
		if !f.read() || f.h.Type != proto.PDUCapsuleCmd || f.h.DataLen != 0 {
			f.t.Error("no write capsule without data")
			return
		}
		cid := f.h.SQE.CID
		if sgl := f.h.SQE.SGL(); sgl.Type != proto.SGLTypeTransportDataBlock || sgl.Len != 10000 {
			f.t.Errorf("SGL %+v", sgl)
		}
		// Two R2Ts; the first one larger than MAXH2CDATA (8192), so the
		// host must split it.
		b := make([]byte, 64)
		for _, w := range [][2]uint32{{0, 9000}, {9000, 1000}} {
			n, _ := proto.EncodeR2T(b, f.toHost, &proto.R2T{CCCID: cid, TTag: 5, R2TO: w[0], R2TL: w[1]})
			f.send(b[:n])
			for got := uint32(0); got < w[1]; {
				if !f.read() || f.h.Type != proto.PDUH2CData || f.h.TTag != 5 || f.h.Offset != w[0]+got {
					f.t.Errorf("H2CData %+v", f.h)
					return
				}
				if f.h.DataLen > 8192 {
					f.t.Errorf("H2CData of %d bytes beyond MAXH2CDATA", f.h.DataLen)
				}
				copy(recv[f.h.Offset:], f.data)
				got += uint32(f.h.DataLen)
				if f.h.Last() != (got == w[1]) {
					f.t.Errorf("LAST_PDU %v at %d of %d", f.h.Last(), got, w[1])
				}
			}
		}
		f.resp(cid, proto.StatusSuccess, 0)
	})
	st, err := syncRun(t, q, Cmd{Op: OpWrite, NSID: 1, NLB: 20, Iovs: split(data, 5), LenBytes: 10000})
	if err != nil || !st.Success() {
		t.Fatalf("write: %v %v", st, err)
	}
	if !bytes.Equal(<-recvCh, data) {
		t.Fatal("controller received other data")
	}
}

func TestFakeProtocolErrors(t *testing.T) {
	read4k := func() Cmd {
		return Cmd{Op: OpRead, NSID: 1, NLB: 8, Iovs: [][]byte{make([]byte, 4096)}, LenBytes: 4096}
	}
	write := func(n int) Cmd {
		return Cmd{Op: OpWrite, NSID: 1, NLB: uint32(n / 512), Iovs: [][]byte{make([]byte, n)}, LenBytes: uint32(n)}
	}
	type tc struct {
		name   string
		dg     proto.Digest
		cmd    Cmd
		script func(f *fakeCtrl, cid uint16)
		fes    proto.FES
		fei    int64
	}
	b := make([]byte, 8192)
	for _, c := range []tc{
		{name: "resp-unknown-cid", cmd: read4k(), fes: proto.FESInvalidHeaderField, fei: 20,
			script: func(f *fakeCtrl, cid uint16) { f.resp(cid+3, proto.StatusSuccess, 0) }},
		{name: "c2h-unknown-cid", cmd: read4k(), fes: proto.FESInvalidHeaderField, fei: proto.DataPDUOffCCCID,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cid + 1, DataL: 512})
				f.send(b[:n+512])
			}},
		{name: "c2h-out-of-order", cmd: read4k(), fes: proto.FESDataOutOfRange, fei: -1,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cid, DataO: 512, DataL: 512})
				f.send(b[:n+512])
			}},
		{name: "c2h-beyond-command", cmd: read4k(), fes: proto.FESDataOutOfRange, fei: -1,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cid, DataL: 8192})
				f.send(b[:n])
			}},
		{name: "c2h-for-write", cmd: write(1024), fes: proto.FESInvalidHeaderField, fei: proto.DataPDUOffCCCID,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cid, DataL: 512})
				f.send(b[:n+512])
			}},
		{name: "success-before-all-data", cmd: read4k(), fes: proto.FESInvalidHeaderField, fei: 1,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cid, DataL: 512, Last: true, Success: true})
				f.send(b[:n+512])
			}},
		{name: "r2t-for-in-capsule-write", cmd: write(1024), fes: proto.FESInvalidHeaderField, fei: proto.DataPDUOffCCCID,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeR2T(b, f.toHost, &proto.R2T{CCCID: cid, R2TL: 512})
				f.send(b[:n])
			}},
		{name: "r2t-beyond-command", cmd: write(8192), fes: proto.FESDataOutOfRange, fei: -1,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeR2T(b, f.toHost, &proto.R2T{CCCID: cid, R2TO: 4096, R2TL: 8192})
				f.send(b[:n])
			}},
		{name: "r2t-for-read", cmd: read4k(), fes: proto.FESInvalidHeaderField, fei: proto.DataPDUOffCCCID,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeR2T(b, f.toHost, &proto.R2T{CCCID: cid, R2TL: 512})
				f.send(b[:n])
			}},
		{name: "header-digest", dg: proto.DigestHeader, cmd: read4k(), fes: proto.FESHeaderDigestError, fei: -1,
			script: func(f *fakeCtrl, cid uint16) {
				n, _ := proto.EncodeCapsuleResp(b, f.toHost, &proto.CQE{CID: cid})
				b[n-1] ^= 0xff
				f.send(b[:n])
			}},
		{name: "h2c-pdu-type", cmd: read4k(), fes: proto.FESInvalidHeaderField, fei: 0,
			script: func(f *fakeCtrl, cid uint16) {
				// An H2C PDU type from the controller.
				n, _ := proto.EncodeH2CData(b, f.toHost, &proto.DataPDU{CCCID: cid, DataL: 4})
				f.send(b[:n+4])
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := fakeIOQueue(t, c.dg, 2048, func(f *fakeCtrl) {
				if !f.read() || f.h.Type != proto.PDUCapsuleCmd {
					f.t.Error("no command")
					return
				}
				c.script(f, f.h.SQE.CID)
				f.expectTerm(c.fes, c.fei)
			})
			st, err := syncRun(t, q, c.cmd)
			if !errors.Is(err, ErrProtocol) || st.Code() != proto.StatusHostPathingError {
				t.Fatalf("got %v %v, want a protocol error", st, err)
			}
		})
	}
}

func TestFakeTermReqAndDisconnect(t *testing.T) {
	t.Run("termreq", func(t *testing.T) {
		q := fakeIOQueue(t, 0, 2048, func(f *fakeCtrl) {
			f.read()
			b := make([]byte, 256)
			n, _ := proto.EncodeTermReq(b, proto.PDUC2HTermReq, proto.FESSequenceError, 0, f.hdr)
			f.send(b[:n])
		})
		_, err := syncRun(t, q, Cmd{Op: OpFlush, NSID: 1})
		var te *TermReqError
		if !errors.As(err, &te) || te.FES != proto.FESSequenceError {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("eof", func(t *testing.T) {
		q := fakeIOQueue(t, 0, 2048, func(f *fakeCtrl) { f.read() })
		if _, err := syncRun(t, q, Cmd{Op: OpFlush, NSID: 1}); !errors.Is(err, ErrConnClosed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("split-reads", func(t *testing.T) {
		// Every byte of the answer in its own segment: the receive state
		// machine must reassemble header, padding, data and digests.
		data := make([]byte, 1024)
		pattern(data, 11)
		q := fakeIOQueue(t, proto.DigestHeader|proto.DigestData, 2048, func(f *fakeCtrl) {
			f.read()
			cid := f.h.SQE.CID
			b := make([]byte, 4096)
			n, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cid, DataL: 1024})
			n += copy(b[n:], data)
			proto.PutDigest(b[n:], proto.CRC32C(data))
			n += 4
			m, _ := proto.EncodeCapsuleResp(b[n:], f.toHost, &proto.CQE{CID: cid})
			n += m
			for i := 0; i < n; i++ {
				f.send(b[i : i+1])
				if i%97 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			f.read()
		})
		got := make([]byte, 1024)
		st, err := syncRun(t, q, Cmd{Op: OpRead, NSID: 1, NLB: 2, Iovs: split(got, 3), LenBytes: 1024})
		if err != nil || !st.Success() || !bytes.Equal(got, data) {
			t.Fatalf("%v %v equal=%v", st, err, bytes.Equal(got, data))
		}
	})
}

// TestSpeculativeRead: with one read outstanding the receiver reads the
// C2HData header, the data (straight into the buffer), the digest and the
// next header in one readv; when the controller sends something else
// (split data, an error), the bytes are put back in order and the result
// is still right.
func TestSpeculativeRead(t *testing.T) {
	data := make([]byte, 4096)
	pattern(data, 21)
	for _, c := range []struct {
		name      string
		dg        proto.Digest
		pieces    []uint32 // C2HData sizes
		success   bool     // SUCCESS on the last C2HData instead of a CapsuleResp
		status    proto.Status
		maxReads  uint64
		wantCopy  bool
		separated bool // each PDU in its own write, with a pause; the host reads at once
	}{
		{name: "whole-success", pieces: []uint32{4096}, success: true, maxReads: 1},
		{name: "whole-success-digests", dg: proto.DigestHeader | proto.DigestData, pieces: []uint32{4096}, success: true, maxReads: 1},
		{name: "whole-resp", dg: proto.DigestData, pieces: []uint32{4096}, maxReads: 2},
		{name: "split", dg: proto.DigestData, pieces: []uint32{1024, 2048, 1024}, maxReads: 4, wantCopy: true},
		{name: "split-separated", pieces: []uint32{2048, 2048}, maxReads: 8, separated: true, wantCopy: true},
		{name: "error", dg: proto.DigestHeader, status: proto.StatusLBAOutOfRange, maxReads: 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := fakeIOQueue(t, c.dg, 2048, func(f *fakeCtrl) {
				if !f.read() {
					return
				}
				cid := f.h.SQE.CID
				var out []byte
				b := make([]byte, 256)
				send := func() {
					if c.separated {
						f.send(out)
						out = out[:0]
						time.Sleep(20 * time.Millisecond)
					}
				}
				off := uint32(0)
				for i, n := range c.pieces {
					last := i == len(c.pieces)-1
					h, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cid, DataO: off, DataL: n, Last: last, Success: last && c.success})
					out = append(out, b[:h]...)
					out = append(out, data[off:off+n]...)
					if c.dg&proto.DigestData != 0 {
						var d [4]byte
						proto.PutDigest(d[:], proto.CRC32C(data[off:off+n]))
						out = append(out, d[:]...)
					}
					off += n
					send()
				}
				if !c.success {
					n, _ := proto.EncodeCapsuleResp(b, f.toHost, &proto.CQE{CID: cid, Status: c.status})
					out = append(out, b[:n]...)
				}
				if len(out) > 0 {
					f.send(out)
				}
				f.read() // until the host closes
			})
			// Let the answer arrive completely before the host reads, so
			// that the read counts are deterministic.
			got := make([]byte, 4096)
			var res syncResult
			cmd := Cmd{Op: OpRead, NSID: 1, NLB: 8, Iovs: split(got, 3), LenBytes: 4096, Done: syncDone, Ctx: &res}
			if err := q.Submit(&cmd); err != nil {
				t.Fatal(err)
			}
			q.flush()
			if !c.separated {
				time.Sleep(100 * time.Millisecond)
			}
			before := q.stats
			deadline := time.Now().Add(5 * time.Second)
			for !res.done && q.c != nil && time.Now().Before(deadline) {
				q.receive()
				if !res.done {
					time.Sleep(time.Millisecond)
				}
			}
			if !res.done {
				t.Fatalf("read not completed (err %v)", q.lastErr)
			}
			if res.cqe.Status.Code() != c.status.Code() {
				t.Fatalf("status %v, want %v", res.cqe.Status, c.status)
			}
			if c.status.Success() && !bytes.Equal(got, data) {
				t.Fatal("data differs")
			}
			reads := q.stats.Reads - before.Reads
			if !c.separated && reads > c.maxReads {
				t.Errorf("%d readv calls, want at most %d", reads, c.maxReads)
			}
			if copied := q.stats.Copied - before.Copied; (copied > 0) != c.wantCopy {
				t.Errorf("%d bytes copied (want copies: %v)", copied, c.wantCopy)
			}
		})
	}
}
