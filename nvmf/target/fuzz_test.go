//go:build linux

package target

import (
	"errors"
	"net"
	"testing"
	"time"

	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
)

// fuzzSeeds are valid PDU streams (after ICReq) for FuzzConnStream.
func fuzzSeeds() [][]byte {
	f := proto.Framing{}
	var seeds [][]byte
	// Admin Connect with its data in capsule, then Property Get CSTS.
	var c proto.SQE
	c.PutConnect(&proto.ConnectCmd{QID: 0, SQSize: 31})
	data := make([]byte, proto.ConnectDataSize)
	(&proto.ConnectData{HostID: testHostID, CNTLID: proto.CNTLIDDynamic, SubNQN: testNQN, HostNQN: hostNQN}).Encode(data)
	c.SetSGL(proto.InCapsuleSGL(0, uint32(len(data))))
	s := capsule(f, &c, data)
	var pg proto.SQE
	pg.PutPropertyGet(&proto.PropertyCmd{Offset: proto.PropCSTS})
	s = append(s, capsule(f, &pg, nil)...)
	seeds = append(seeds, s)
	// Identify before Connect.
	id := identifySQE()
	seeds = append(seeds, capsule(f, &id, nil))
	// A write that asks for an R2T, then its H2CData.
	w := tcptest.RW(proto.IOWrite, 1, 0, 8)
	w.CID = 5
	w.SetSGL(proto.TCPDataSGL(4096))
	s = capsule(f, &w, nil)
	h2c := make([]byte, 24+4096)
	proto.EncodeH2CData(h2c, f, &proto.DataPDU{CCCID: 5, TTag: 0, DataL: 4096, Last: true})
	seeds = append(seeds, append(s, h2c...))
	// A host TermReq.
	tr := make([]byte, 64)
	n, _ := proto.EncodeTermReq(tr, proto.PDUH2CTermReq, proto.FESInvalidHeaderField, 2, []byte{4, 0, 72, 0})
	seeds = append(seeds, tr[:n])
	return seeds
}

// FuzzConnStream sends arbitrary bytes after a valid ICReq to a live
// target. Whatever arrives, the target must not panic, must answer with
// well-formed PDUs or close, and must keep serving other connections.
func FuzzConnStream(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(runFuzzInput)
}

var (
	fuzzEnv  *env
	fuzzGood *tcptest.Host
)

func runFuzzInput(t *testing.T, data []byte) {
	if fuzzEnv == nil {
		// One target for every input (it must outlive the first input's
		// cleanup); it goes away with the process.
		fuzzEnv = newEnv(nopTB{t}, envOpts{reactors: 1, allowAny: true})
		h, err := tcptest.Dial(fuzzEnv.hostport, tcptest.Options{Timeout: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		fuzzGood = h
		cqe, err := h.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
		if err != nil || !cqe.Status.Success() {
			t.Fatal(cqe.Status, err)
		}
		if err := h.Enable(); err != nil {
			t.Fatal(err)
		}
	}
	e, good := fuzzEnv, fuzzGood
	conn, err := tcptest.DialRaw(e.hostport, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := tcptest.NewHost(conn, tcptest.Options{}); err != nil {
		t.Fatal(err)
	}
	conn.Write(data)
	conn.(*net.TCPConn).CloseWrite()
	out, err := tcptest.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// Only a capsule that waits for more data (an R2T left
		// unanswered, a half PDU) keeps the connection; the EOF from
		// CloseWrite must still end it.
		t.Fatalf("target kept the connection open after EOF (%d bytes in)", len(data))
	}
	for len(out) >= proto.CommonHeaderLen { // every PDU the target sent is well formed
		var ph proto.PDUHeader
		p, _ := proto.NewParser(proto.ParserOptions{Role: proto.RoleHost})
		p.Negotiated(0, 0)
		if proto.PDUType(out[0]) == proto.PDUC2HTermReq {
			break
		}
		n, perr := p.Parse(out, &ph)
		if perr != nil || n > len(out) || int(ph.PLen) > len(out) || ph.PLen == 0 {
			t.Fatalf("target sent a malformed PDU: %v (%x)", perr, out[:min(len(out), 32)])
		}
		out = out[ph.PLen:]
	}
	buf := make([]byte, 4096)
	cqe, err := good.Identify(proto.CNSController, 0, buf)
	if err != nil || !cqe.Status.Success() {
		t.Fatalf("good connection broke: %v %v", cqe.Status, err)
	}
}

// nopTB lets the fuzz target build one env for all inputs: cleanups run at
// process exit instead of after the first input.
type nopTB struct{ *testing.T }

func (nopTB) Cleanup(func()) {}

func (n nopTB) Helper() {}
