//go:build linux

package target

import (
	"net"
	"testing"
	"time"

	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
	"hyperpath/reactor"
)

// Regression tests for two nvmf/tcp connection bugs that the target's
// fuzzing harness ran into (fixed in nvmf/tcp/conn_linux.go).

// TestConnClosesWhenEverySlotAwaitsH2CData: a host sends one more
// H2C-data write capsule than the connection has request slots, then shuts
// down its side. Every slot is held by a write waiting for its H2CData
// (reqRxH2C, an R2T sent), so the extra capsule blocks the receive side
// (conn.rxBlocked) and nothing can ever free a slot: the H2CData and the
// EOF that would end the connection are never read. The connection must
// still end, by a C2HTermReq or by closing.
func TestConnClosesWhenEverySlotAwaitsH2CData(t *testing.T) {
	e := newEnv(t, envOpts{reactors: 1})
	slots := int(max(uint32(nvmf.DefaultTransportOpts().MaxQueueDepth), nvmf.DefaultTransportOpts().MaxAQDepth))
	conn, err := tcptest.DialRaw(e.hostport, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := tcptest.NewHost(conn, tcptest.Options{}); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for i := 0; i <= slots; i++ {
		w := tcptest.RW(proto.IOWrite, 1, 0, 8)
		w.CID = uint16(i + 1)
		w.SetSGL(proto.TCPDataSGL(4096))
		b = append(b, capsule(proto.Framing{}, &w, nil)...)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	out, err := tcptest.ReadAll(conn)
	if isTimeout(err) {
		t.Fatalf("%d write capsules awaiting H2CData and one more, then EOF: the connection is still open after 3 s (%d bytes received: %d R2Ts)",
			slots, len(out), len(out)/24)
	}
	if err := checkC2HStream(out); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptFromAMessageKeepsConnection: Transport.Accept is documented as
// called on the acceptor reactor. Called there from a message (here
// reactor.Call) rather than from the acceptor's timed poller, the new
// connection's addConnMsg runs in the same iteration, whose IterNow is
// earlier than the connection's born time; conn.poll's ICReq timeout check
// computes IterNow()-born in unsigned Ticks, which wraps to a huge value,
// and closes the fresh connection at once as "no ICReq". The same
// wrap-around can hit an acceptor poller's connection handed to another
// reactor whose current iteration began just before born.
func TestAcceptFromAMessageKeepsConnection(t *testing.T) {
	e := newEnv(t, envOpts{reactors: 1, topts: func(o *nvmf.TransportOpts) { o.AcceptorPollRateUs = 1_000_000 }})
	tr := e.tgt.Transports()[0]
	for i := 0; i < 3; i++ {
		conn, err := tcptest.DialRaw(e.hostport, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := reactor.Call(e.reactors[0], func() { n = tr.Accept() }); err != nil {
			conn.Close()
			t.Fatal(err)
		}
		if n != 1 {
			conn.Close()
			t.Fatalf("Accept took %d connections, want 1", n)
		}
		_, err = tcptest.NewHost(conn, tcptest.Options{})
		conn.Close()
		if err != nil {
			t.Fatalf("connection %d accepted from a message: ICReq answered with %v, want an ICResp", i, err)
		}
	}
}
