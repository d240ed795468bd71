//go:build linux

package target

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/internal/hugemem"
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
	"hyperpath/reactor"
)

const (
	testNQN  = "nqn.2016-06.io.spdk:cnode1"
	hostNQN  = "nqn.2014-08.org.nvmexpress:uuid:6f1c2a4e-9d3b-4c1f-8e2a-5b7d9c0e1f23"
	otherNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-1111-2222-3333-444444444444"
)

var testHostID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

type env struct {
	t        testing.TB
	reactors []*reactor.Reactor
	reg      *bdev.Registry
	tgt      *Target
	addr     nvmf.ListenAddr
	hostport string
}

type envOpts struct {
	reactors    int
	topts       func(o *nvmf.TransportOpts)
	noSubsys    bool
	noTransport bool
	noMalloc    bool
	allowAny    bool
	blockSize   uint32
	blocks      uint64
}

func testLogger() *slog.Logger {
	if os.Getenv("NVMF_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// newEnv starts reactors, a registry with Malloc0, a target with the TCP
// transport, and (unless noSubsys) subsystem testNQN with Malloc0 as
// namespace 1 listening on 127.0.0.1.
func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.reactors == 0 {
		o.reactors = 2
	}
	if o.blockSize == 0 {
		o.blockSize = 512
	}
	if o.blocks == 0 {
		o.blocks = 32768 // 16 MiB
	}
	e := &env{t: t}
	for i := 0; i < o.reactors; i++ {
		r, err := reactor.New(i, reactor.Options{Core: -1, SpinTime: 200 * time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		e.reactors = append(e.reactors, r)
	}
	done := make(chan struct{}, len(e.reactors))
	for _, r := range e.reactors {
		go func() { r.Run(); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		for _, r := range e.reactors {
			r.Stop()
		}
		for range e.reactors {
			<-done
		}
		for _, r := range e.reactors {
			r.Close()
		}
	})
	e.reg = bdev.NewRegistry(bdev.Options{Reactors: e.reactors})
	if !o.noMalloc {
		e.addMalloc("Malloc0", o.blockSize, o.blocks)
	}
	tgt, err := New(Options{Registry: e.reg, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e.tgt = tgt
	t.Cleanup(func() { tgt.Close() })
	topts := nvmf.DefaultTransportOpts()
	topts.AcceptorPollRateUs = 1000
	if o.topts != nil {
		o.topts(&topts)
	}
	if !o.noTransport {
		if _, err := tgt.CreateTransport("tcp", topts); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	e.addr = nvmf.ListenAddr{TrType: "TCP", AdrFam: "IPv4", TrAddr: "127.0.0.1", TrSvcID: port}
	e.hostport = net.JoinHostPort("127.0.0.1", port)
	if !o.noSubsys {
		s, err := tgt.CreateSubsystem(SubsystemConfig{NQN: testNQN, Serial: "SPDK00000000000001", AllowAnyHost: o.allowAny})
		if err != nil {
			t.Fatal(err)
		}
		if !o.allowAny {
			if err := s.AddHost(hostNQN); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.AddNamespace(NamespaceConfig{BdevName: "Malloc0"}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddListener(e.addr); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) addMalloc(name string, bs uint32, blocks uint64) {
	e.t.Helper()
	d, err := malloc.New(malloc.Options{Name: name, BlockSize: bs, NumBlocks: blocks, Memory: hugemem.SmallPages})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reg.Register(d); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dial(o tcptest.Options) *tcptest.Host {
	e.t.Helper()
	h, err := tcptest.Dial(e.hostport, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { h.Close() })
	return h
}

// admin dials, connects the admin queue of testNQN as hostNQN, enables
// the controller and returns the host and the controller ID.
func (e *env) admin(o tcptest.Options) (*tcptest.Host, uint16) {
	e.t.Helper()
	h := e.dial(o)
	cqe, err := h.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	if err != nil {
		e.t.Fatal(err)
	}
	if !cqe.Status.Success() {
		e.t.Fatalf("admin connect: %v", cqe.Status)
	}
	cntlid, _ := proto.ConnectResp(cqe.DW0)
	if err := h.Enable(); err != nil {
		e.t.Fatal(err)
	}
	return h, cntlid
}

// io dials and connects I/O queue qid of controller cntlid.
func (e *env) io(o tcptest.Options, cntlid, qid uint16) *tcptest.Host {
	e.t.Helper()
	h := e.dial(o)
	cqe, err := h.Connect(qid, 127, 0, cntlid, testNQN, hostNQN, testHostID)
	if err != nil {
		e.t.Fatal(err)
	}
	if !cqe.Status.Success() {
		e.t.Fatalf("io connect qid %d: %v", qid, cqe.Status)
	}
	return h
}

func mustStatus(t testing.TB, what string, cqe proto.CQE, err error, want proto.Status) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if cqe.Status.Code() != want.Code() {
		t.Fatalf("%s: status %v, want %v", what, cqe.Status, want)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed ^ byte(i>>9)
	}
	return b
}

func writeRead(t testing.TB, h *tcptest.Host, slba uint64, data []byte) {
	t.Helper()
	nlb := uint32(len(data) / 512)
	w := tcptest.RW(proto.IOWrite, 1, slba, nlb)
	cqe, err := h.Exec(&w, data, nil)
	mustStatus(t, "write", cqe, err, proto.StatusSuccess)
	got := make([]byte, len(data))
	r := tcptest.RW(proto.IORead, 1, slba, nlb)
	cqe, err = h.Exec(&r, nil, got)
	mustStatus(t, "read", cqe, err, proto.StatusSuccess)
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes at %d: mismatch", len(data), slba)
	}
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
