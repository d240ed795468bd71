//go:build linux

package target

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/internal/hugemem"
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
	"hyperpath/reactor"
)

// fuzzSeeds are valid PDU streams (after ICReq) for FuzzConnStream.
func fuzzSeeds() [][]byte {
	f := proto.Framing{}
	var seeds [][]byte
	// Admin Connect with its data in capsule, then Property Get CSTS.
	s := adminConnectCapsule()
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

// adminConnectCapsule is a CapsuleCmd (no digests) with an admin queue
// Connect of hostNQN to testNQN for a dynamic controller, its data in
// capsule.
func adminConnectCapsule() []byte {
	var c proto.SQE
	c.PutConnect(&proto.ConnectCmd{QID: 0, SQSize: 31})
	data := make([]byte, proto.ConnectDataSize)
	(&proto.ConnectData{HostID: testHostID, CNTLID: proto.CNTLIDDynamic, SubNQN: testNQN, HostNQN: hostNQN}).Encode(data)
	c.SetSGL(proto.InCapsuleSGL(0, uint32(len(data))))
	return capsule(proto.Framing{}, &c, data)
}

// FuzzConnStream sends arbitrary bytes after a valid ICReq to a live
// target over a real loopback socket. Whatever arrives, the target must not
// panic, must answer with well-formed PDUs (nothing after a C2HTermReq),
// must close once the host's EOF arrives, and must keep serving both an
// established controller and fresh connections.
//
// The harness steps the target's reactor itself (reactor.Poll, as the
// reactor tests do) instead of running it on its own goroutine: after each
// host action it polls until the reactor is idle, then takes what the
// target wrote with non-blocking reads. An input is thus one deterministic
// sequence of polls: its coverage does not depend on how long a spinning
// reactor happened to loop, so the fuzzer neither chases timing noise nor
// tries to minimize it. Where the quick path finds nothing (a target that
// needs more than an idle reactor to answer), the host side blocks on a
// helper goroutine while the harness keeps polling, up to fuzzConnTimeout.
//
// Each input still costs a few system calls per PDU rather than the
// microseconds of a pure decoder, and the Go minimizer's subset-removal
// pass is quadratic in the input length: with its default of 60 s per
// input that adds coverage it would stop the exec count for as long.
// TestMain lowers that default (an explicit -test.fuzzminimizetime wins).
func FuzzConnStream(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	// The target is built on the first input, not here: the fuzzing
	// coordinator runs this function too but never an input.
	z := &connFuzzer{}
	f.Cleanup(z.close)
	f.Fuzz(z.run)
}

const (
	// fuzzConnTimeout bounds every wait of an input: a target that keeps a
	// connection open after the host's EOF, or never answers, fails the
	// input after this long instead of stalling the fuzzer.
	fuzzConnTimeout = 2 * time.Second
	// fuzzFreshEvery is how often (in inputs) a fresh connection also
	// connects an admin queue, checking that controllers created and
	// dropped by the inputs do not pile up.
	fuzzFreshEvery = 16
	// fuzzIdlePolls idle iterations in a row end a settle.
	fuzzIdlePolls = 2
	// fuzzMaxPolls bounds a settle: a reactor busy for longer is a
	// livelock.
	fuzzMaxPolls = 1 << 20
	// fuzzDirectWrite is the most input written without polling the
	// target meanwhile (it fits the loopback socket buffers).
	fuzzDirectWrite = 32 << 10
)

// connFuzzer runs FuzzConnStream's inputs against one target: one reactor
// stepped by the caller, a malloc namespace, the TCP transport, testNQN
// open to any host, and one admin queue that stays connected across
// inputs.
//
// Between inputs nothing runs the reactor: the goroutine running an input
// owns it. Only setup and close, which wait on the target's control plane
// (reactor.Call), poll it from a background goroutine.
type connFuzzer struct {
	r        *reactor.Reactor
	tgt      *Target
	tr       nvmf.Transport
	hostport string
	good     *tcptest.Host
	idBuf    []byte
	rbuf     []byte
	icBuf    [proto.ICLen]byte
	closers  []func()
	inputs   int
}

// setup builds the target on first use. What it builds is released by
// close (the fuzz target's or the test's Cleanup), not by the per-input t.
func (z *connFuzzer) setup(t testing.TB) {
	if z.r != nil {
		return
	}
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	z.r = r
	z.closers = append(z.closers, func() { r.Close() })
	stop := z.pollInBackground()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	d, err := malloc.New(malloc.Options{Name: "Malloc0", BlockSize: 512, NumBlocks: 8192, Memory: hugemem.SmallPages})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(d); err != nil {
		t.Fatal(err)
	}
	tgt, err := New(Options{Registry: reg, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	z.closers = append(z.closers, func() {
		stop := z.pollInBackground()
		tgt.Close()
		stop()
	})
	topts := nvmf.DefaultTransportOpts()
	// The harness takes each connection itself; the acceptor poller would
	// only add timing-dependent iterations.
	topts.AcceptorPollRateUs = 1_000_000
	tr, err := tgt.CreateTransport("tcp", topts)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s, err := tgt.CreateSubsystem(SubsystemConfig{NQN: testNQN, Serial: "SPDK00000000000001", AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNamespace(NamespaceConfig{BdevName: "Malloc0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(nvmf.ListenAddr{TrType: "TCP", AdrFam: "IPv4", TrAddr: "127.0.0.1", TrSvcID: port}); err != nil {
		t.Fatal(err)
	}
	stop()
	stop = nil
	z.tgt, z.tr, z.hostport = tgt, tr, net.JoinHostPort("127.0.0.1", port)
	z.idBuf, z.rbuf = make([]byte, 4096), make([]byte, 64<<10)

	conn := z.accept(t)
	conn.SetDeadline(time.Time{}) // it lives as long as the target; each wait sets its own
	var good *tcptest.Host
	conn.SetReadDeadline(time.Now().Add(fuzzConnTimeout))
	if err := z.pollWhile(func() (err error) {
		good, err = tcptest.NewHost(conn, tcptest.Options{})
		return err
	}); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	z.closers = append(z.closers, func() { good.Close() })
	if err := z.pollWhile(func() error {
		cqe, err := good.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
		if err == nil && !cqe.Status.Success() {
			err = fmt.Errorf("admin Connect: %v", cqe.Status)
		}
		if err == nil {
			err = good.Enable()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Time{})
	z.good = good
}

// close releases what setup built, last first.
func (z *connFuzzer) close() {
	for i := len(z.closers) - 1; i >= 0; i-- {
		z.closers[i]()
	}
	*z = connFuzzer{}
}

// pollInBackground polls the reactor on another goroutine until the
// returned stop is called.
func (z *connFuzzer) pollInBackground() (stop func()) {
	var quit atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !quit.Load() {
			if z.r.Poll(reactor.Now()) == reactor.Idle {
				runtime.Gosched()
			}
		}
	}()
	return func() {
		quit.Store(true)
		<-done
	}
}

// pollWhile runs fn, a host action that blocks on the target, on a helper
// goroutine and polls the reactor until fn returns or fuzzConnTimeout
// passes (fn's socket deadline then ends it).
func (z *connFuzzer) pollWhile(fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	deadline := time.Now().Add(fuzzConnTimeout + time.Second)
	for {
		select {
		case err := <-done:
			return err
		default:
		}
		if time.Now().After(deadline) {
			return <-done
		}
		if z.r.Poll(reactor.Now()) == reactor.Idle {
			runtime.Gosched()
		}
	}
}

// settle polls until the reactor has been idle fuzzIdlePolls times in a
// row. Loopback sockets hand bytes over within the sending system call, so
// after it everything the target will send for what the host sent is
// already in the host's socket.
func (z *connFuzzer) settle(t testing.TB) {
	idle := 0
	for i := 0; i < fuzzMaxPolls; i++ {
		if z.r.Poll(reactor.Now()) == reactor.Busy {
			idle = 0
			continue
		}
		if idle++; idle == fuzzIdlePolls {
			return
		}
	}
	t.Fatalf("reactor still busy after %d iterations", fuzzMaxPolls)
}

// accept dials the listener and has the transport take the connection.
// Precondition: nothing else polls the reactor (the caller stands in for
// the acceptor poller).
func (z *connFuzzer) accept(t testing.TB) net.Conn {
	conn, err := tcptest.DialRaw(z.hostport, fuzzConnTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if n := z.tr.Accept(); n != 1 {
		conn.Close()
		t.Fatalf("transport took %d connections, want 1", n)
	}
	return conn
}

// open makes a fresh connection and exchanges ICReq/ICResp (no digests,
// HPDA 0); the ICResp is checked.
func (z *connFuzzer) open(t testing.TB) net.Conn {
	conn := z.accept(t)
	n, _ := proto.EncodeICReq(z.icBuf[:], &proto.ICReq{})
	if _, err := conn.Write(z.icBuf[:n]); err != nil {
		conn.Close()
		t.Fatalf("ICReq on a fresh connection: %v", err)
	}
	z.settle(t)
	resp, err := z.readFull(conn, proto.ICLen)
	if err == nil {
		err = checkICResp(resp)
	}
	if err != nil {
		conn.Close()
		t.Fatalf("ICReq on a fresh connection: %v", err)
	}
	return conn
}

// readFull returns the next n bytes from conn: those already there, then
// (if the target needs more than a settled reactor) a blocking read while
// the reactor is polled. The result is valid until the next read.
func (z *connFuzzer) readFull(conn net.Conn, n int) ([]byte, error) {
	got, closed, err := z.readNow(conn, z.rbuf[:n])
	if err != nil || got == n {
		return z.rbuf[:got], err
	}
	if closed {
		return z.rbuf[:got], io.ErrUnexpectedEOF
	}
	err = z.pollWhile(func() error {
		_, err := io.ReadFull(conn, z.rbuf[got:n])
		return err
	})
	return z.rbuf[:n], err
}

// readNow reads into b what conn holds, without blocking. closed reports
// that the target closed the connection (EOF or reset).
func (z *connFuzzer) readNow(conn net.Conn, b []byte) (n int, closed bool, err error) {
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, false, err
	}
	for n < len(b) {
		var m int
		var e error
		if err := rc.Read(func(fd uintptr) bool {
			m, e = unix.Read(int(fd), b[n:])
			return true
		}); err != nil {
			return n, false, err
		}
		switch {
		case e == unix.EAGAIN:
			return n, false, nil
		case e == unix.EINTR:
			continue
		case e == unix.ECONNRESET:
			return n, true, nil
		case e != nil:
			return n, false, e
		case m == 0:
			return n, true, nil
		}
		n += m
	}
	return n, false, nil
}

// readToEOF returns everything the target sends until it closes conn.
func (z *connFuzzer) readToEOF(conn net.Conn) ([]byte, error) {
	var out []byte
	for {
		n, closed, err := z.readNow(conn, z.rbuf)
		out = append(out, z.rbuf[:n]...)
		if err != nil || closed {
			return out, err
		}
		if n == len(z.rbuf) {
			continue
		}
		// Nothing more now, and still open: give the target time.
		var rest []byte
		err = z.pollWhile(func() (err error) {
			rest, err = io.ReadAll(conn)
			return err
		})
		return append(out, rest...), err
	}
}

// run is FuzzConnStream's body.
func (z *connFuzzer) run(t *testing.T, data []byte) {
	z.setup(t)
	z.inputs++

	conn := z.open(t)
	defer conn.Close()
	// The target may close (after a C2HTermReq) before it read everything:
	// a failed write is fine, a timed out one is not (it stopped reading
	// without closing).
	var err error
	if len(data) <= fuzzDirectWrite {
		_, err = conn.Write(data)
	} else {
		err = z.pollWhile(func() error { _, err := conn.Write(data); return err })
	}
	if isTimeout(err) {
		t.Fatalf("target neither reads nor closes (%d bytes in): %v", len(data), err)
	}
	conn.(*net.TCPConn).CloseWrite()
	z.settle(t)
	out, err := z.readToEOF(conn)
	if isTimeout(err) {
		// Only the host's EOF could end a capsule that waits for more
		// data (an unanswered R2T, a half PDU), and it must.
		t.Fatalf("target kept the connection open %v after EOF (%d bytes in, %d out)", fuzzConnTimeout, len(data), len(out))
	}
	if err := checkC2HStream(out); err != nil {
		t.Fatalf("%v (%d bytes in)", err, len(data))
	}

	if err := z.identify(t); err != nil {
		t.Fatalf("established admin queue broke: %v", err)
	}
	if z.inputs%fuzzFreshEvery == 0 {
		z.freshAdmin(t)
	}
}

// identify runs Identify Controller on the established admin queue.
func (z *connFuzzer) identify(t testing.TB) error {
	var sqe proto.SQE
	sqe.PutIdentify(&proto.IdentifyCmd{CNS: proto.CNSController})
	if _, err := z.good.Submit(&sqe, nil, z.idBuf); err != nil {
		return err
	}
	z.settle(t)
	var cqe proto.CQE
	reap := func() (err error) {
		cqe, err = z.good.Reap()
		return err
	}
	var err error
	if n, _ := inq(z.good.Conn()); n > 0 {
		err = reap()
	} else {
		z.good.Conn().SetReadDeadline(time.Now().Add(fuzzConnTimeout))
		err = z.pollWhile(reap)
		z.good.Conn().SetReadDeadline(time.Time{})
	}
	if err == nil && !cqe.Status.Success() {
		err = fmt.Errorf("status %v", cqe.Status)
	}
	return err
}

// freshAdmin connects an admin queue on a new connection and drops it.
func (z *connFuzzer) freshAdmin(t testing.TB) {
	conn := z.open(t)
	defer conn.Close()
	if _, err := conn.Write(adminConnectCapsule()); err != nil {
		t.Fatalf("admin Connect on a fresh connection: %v", err)
	}
	z.settle(t)
	resp, err := z.readFull(conn, proto.CapsuleRespHLen)
	if err != nil {
		t.Fatalf("admin Connect on a fresh connection: %v", err)
	}
	var ph proto.PDUHeader
	if err := parseC2H(resp, &ph); err != nil || ph.Type != proto.PDUCapsuleResp || !ph.CQE.Status.Success() {
		t.Fatalf("admin Connect on a fresh connection: %v %v %v", ph.Type, ph.CQE.Status, err)
	}
}

// inq returns how many bytes conn's socket holds unread.
func inq(conn net.Conn) (int, error) {
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var e error
	if err := rc.Control(func(fd uintptr) { n, e = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return 0, err
	}
	return n, e
}

// checkICResp checks the target's ICResp to an ICReq without digests.
func checkICResp(b []byte) error {
	p, err := proto.NewParser(proto.ParserOptions{Role: proto.RoleHost})
	if err != nil {
		return err
	}
	var ph proto.PDUHeader
	if _, err := p.Parse(b, &ph); err != nil {
		return err
	}
	if ph.Type != proto.PDUICResp || ph.Digests != 0 {
		return fmt.Errorf("got %v (digests %v) instead of a plain ICResp", ph.Type, ph.Digests)
	}
	return nil
}

// parseC2H parses one whole controller-to-host PDU of a connection without
// digests, CPDA 0.
func parseC2H(b []byte, ph *proto.PDUHeader) error {
	p, err := proto.NewParser(proto.ParserOptions{Role: proto.RoleHost})
	if err != nil {
		return err
	}
	if err := p.Negotiated(0, 0); err != nil {
		return err
	}
	n, err := p.Parse(b, ph)
	if err == nil && (n > len(b) || int(ph.PLen) > len(b)) {
		err = fmt.Errorf("partial %v: %d of %d bytes", ph.Type, len(b), max(n, int(ph.PLen)))
	}
	return err
}

// checkC2HStream checks that out, everything the target sent after the
// ICResp, is a sequence of whole, valid controller-to-host PDUs of the
// connection's framing (no digests, CPDA 0), and that a C2HTermReq, if
// any, is the last of them (NVMe/TCP 1.0 §3.5.1: the connection ends
// there).
func checkC2HStream(out []byte) error {
	for off := 0; off < len(out); {
		rest := out[off:]
		if len(rest) < proto.CommonHeaderLen {
			return fmt.Errorf("target sent a partial PDU at offset %d: %x", off, rest)
		}
		var ph proto.PDUHeader
		if err := parseC2H(rest, &ph); err != nil {
			return fmt.Errorf("target sent a bad PDU at offset %d: %v (%x)", off, err, rest[:min(len(rest), 32)])
		}
		if ph.PLen < proto.CommonHeaderLen {
			return fmt.Errorf("target sent a PDU of PLEN %d at offset %d", ph.PLen, off)
		}
		off += int(ph.PLen)
		if ph.Type == proto.PDUC2HTermReq && off != len(out) {
			return fmt.Errorf("target sent %d bytes after its C2HTermReq at offset %d", len(out)-off, off-int(ph.PLen))
		}
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
