//go:build linux

package tcp

import (
	"bytes"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
	"hyperpath/reactor"
)

// fillHandler executes commands at once: a read returns bytes derived from
// its SLBA, a write's data is recorded (CRC by SLBA).
type fillHandler struct {
	mu     sync.Mutex
	writes map[uint64]uint32
}

func (h *fillHandler) Exec(r *nvmf.Request) {
	rw := r.SQE.RW()
	switch r.Xfer {
	case proto.XferCtrlToHost:
		fillBlock(r.Data, rw.SLBA)
	case proto.XferHostToCtrl:
		h.mu.Lock()
		h.writes[rw.SLBA] = crc32.ChecksumIEEE(r.Data)
		h.mu.Unlock()
	}
	r.QPair.Complete(r)
}

func (*fillHandler) QPairDisconnected(nvmf.QPair) {}

func fillBlock(b []byte, slba uint64) {
	for i := range b {
		b[i] = byte(slba*7 + uint64(i)/13)
	}
}

// pipeEnv is a transport with one adaptive reactor and one poll group.
type pipeEnv struct {
	tr   *Transport
	h    *fillHandler
	r    *reactor.Reactor
	pg   *PollGroup
	addr string
}

func newPipeEnv(t *testing.T) *pipeEnv {
	t.Helper()
	h := &fillHandler{writes: map[uint64]uint32{}}
	tr, err := New(Options{Opts: nvmf.DefaultTransportOpts(), Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	if err := tr.Listen(nvmf.ListenAddr{TrType: "TCP", AdrFam: "IPv4", TrAddr: "127.0.0.1", TrSvcID: port}); err != nil {
		t.Fatal(err)
	}
	core := 0
	if avail, err := reactor.AvailableCores(); err == nil && len(avail) > 0 {
		core = avail[len(avail)-1]
	}
	g, err := reactor.NewGroup(reactor.GroupOptions{Cores: []int{core}})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	e := &pipeEnv{tr: tr, h: h, r: g.Main(), addr: net.JoinHostPort("127.0.0.1", port)}
	var pgErr error
	if err := reactor.Call(e.r, func() {
		var p nvmf.PollGroup
		if p, pgErr = tr.NewPollGroup(e.r); pgErr != nil {
			return
		}
		e.pg = p.(*PollGroup)
		e.r.RegisterPollerOpts("tcp", e.pg.Poll, reactor.PollerOptions{Arm: e.pg.Arm})
		e.r.RegisterPoller("accept", func(reactor.Ticks) reactor.Status {
			if tr.Accept() > 0 {
				return reactor.Busy
			}
			return reactor.Idle
		}, 1000)
	}); err != nil {
		t.Fatal(err)
	}
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	t.Cleanup(func() {
		reactor.Call(e.r, func() { e.pg.Close() })
		if err := g.Stop(); err != nil {
			t.Error(err)
		}
		g.Close()
	})
	return e
}

// stats returns the counters of the group's only connection.
func (e *pipeEnv) stats(t *testing.T) connStats {
	t.Helper()
	var st connStats
	n := 0
	if err := reactor.Call(e.r, func() {
		for _, c := range e.pg.conns {
			if c != nil {
				st = c.stats
				n++
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	return st
}

// heldConn holds what the host writes until release, so that a burst of
// commands reaches the socket in one write (or in the chunks given).
type heldConn struct {
	net.Conn
	hold bool
	buf  bytes.Buffer
}

func (c *heldConn) Write(b []byte) (int, error) {
	if c.hold {
		return c.buf.Write(b)
	}
	return c.Conn.Write(b)
}

// release writes the held bytes in chunks of the given sizes (cycled), or
// at once when none are given.
func (c *heldConn) release(t *testing.T, chunks ...int) {
	t.Helper()
	b := c.buf.Bytes()
	for i := 0; len(b) > 0; i++ {
		n := len(b)
		if len(chunks) > 0 {
			n = min(n, chunks[i%len(chunks)])
		}
		if _, err := c.Conn.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
		if len(chunks) > 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	c.buf.Reset()
	c.hold = false
}

func dialHeld(t *testing.T, e *pipeEnv) (*tcptest.Host, *heldConn) {
	t.Helper()
	raw, err := tcptest.DialRaw(e.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hc := &heldConn{Conn: raw}
	h, err := tcptest.NewHost(hc, tcptest.Options{Timeout: 10 * time.Second})
	if err != nil {
		raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, hc
}

// burst submits n reads (or, with writeLen > 0, in-capsule writes) while
// the connection holds them, releases them in the given chunks, and checks
// every completion and every byte.
func burst(t *testing.T, e *pipeEnv, h *tcptest.Host, hc *heldConn, n, writeLen int, chunks ...int) {
	t.Helper()
	const blk = 4096
	reads := make([][]byte, n)
	writes := make([][]byte, n)
	hc.hold = true
	for i := 0; i < n; i++ {
		slba := uint64(1000 + i)
		if writeLen > 0 {
			sqe := tcptest.RW(proto.IOWrite, 1, slba, 1)
			writes[i] = make([]byte, writeLen)
			fillBlock(writes[i], slba+5)
			if _, err := h.Submit(&sqe, writes[i], nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		sqe := tcptest.RW(proto.IORead, 1, slba, 1)
		reads[i] = make([]byte, blk)
		if _, err := h.Submit(&sqe, nil, reads[i]); err != nil {
			t.Fatal(err)
		}
	}
	hc.release(t, chunks...)
	for i := 0; i < n; i++ {
		cqe, err := h.Reap()
		if err != nil {
			t.Fatalf("completion %d of %d: %v", i, n, err)
		}
		if !cqe.Status.Success() {
			t.Fatalf("CID %d: status %v", cqe.CID, cqe.Status)
		}
	}
	want := make([]byte, blk)
	for i := 0; i < n; i++ {
		slba := uint64(1000 + i)
		if writeLen > 0 {
			e.h.mu.Lock()
			got, ok := e.h.writes[slba]
			e.h.mu.Unlock()
			if !ok || got != crc32.ChecksumIEEE(writes[i]) {
				t.Fatalf("write to LBA %d: data CRC %#x (recorded %v), want %#x", slba, got, ok, crc32.ChecksumIEEE(writes[i]))
			}
			continue
		}
		fillBlock(want, slba)
		if !bytes.Equal(reads[i], want) {
			t.Fatalf("read of LBA %d returned other bytes", slba)
		}
	}
}

// TestPipeBatchesCommands: a burst of 64 read commands that arrives in one
// write is taken with a few readv calls, not one per command, and every
// read completes with its data (on an adaptive reactor: commands left in
// the pipe when a poll's budget ends must keep the reactor awake).
func TestPipeBatchesCommands(t *testing.T) {
	e := newPipeEnv(t)
	h, hc := dialHeld(t, e)
	before := e.stats(t)
	burst(t, e, h, hc, 64, 0)
	st := e.stats(t)
	reads := st.Reads - before.Reads
	cmds := st.PDUsReceived - before.PDUsReceived
	if cmds != 64 {
		t.Fatalf("%d command PDUs received, want 64", cmds)
	}
	// 64 x 72 bytes fit the pipe; allow for the burst landing in a few
	// pieces.
	if reads > 8 {
		t.Errorf("%d readv calls for 64 commands in one write, want at most 8", reads)
	}
	if st.CopiedBytes != before.CopiedBytes {
		t.Errorf("%d payload bytes copied for reads", st.CopiedBytes-before.CopiedBytes)
	}
	t.Logf("64 commands: %d readv calls, %d bytes from the pipe", reads, st.PipeBytes-before.PipeBytes)
}

// TestPipeInCapsuleData: in-capsule write data that arrived behind an
// earlier command is copied out of the pipe (and counted); the data
// reaches the handler intact.
func TestPipeInCapsuleData(t *testing.T) {
	e := newPipeEnv(t)
	h, hc := dialHeld(t, e)
	before := e.stats(t)
	burst(t, e, h, hc, 16, 1024)
	st := e.stats(t)
	copied := st.CopiedBytes - before.CopiedBytes
	if copied == 0 || copied > 16*1024 {
		t.Errorf("%d payload bytes copied from the pipe, want (0, %d]", copied, 16*1024)
	}
}

// TestPipeFragmentedStream: the same bursts delivered in odd-sized pieces
// (PDUs split anywhere, several PDUs per piece) are parsed the same.
func TestPipeFragmentedStream(t *testing.T) {
	e := newPipeEnv(t)
	h, hc := dialHeld(t, e)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 6; round++ {
		chunks := make([]int, 7)
		for i := range chunks {
			chunks[i] = 1 + rng.IntN(300)
		}
		burst(t, e, h, hc, 24, 0, chunks...)
		burst(t, e, h, hc, 8, 700, chunks...)
	}
	burst(t, e, h, hc, 4, 0, 1) // byte by byte
}
