package vhost

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/vhost/blk"
	"hyperpath/vhost/virtq"
)

// gateDisk is a RAM disk (possibly a shared mapping of a file, so that its
// contents outlive the process) whose IOs wait while the gate is closed:
// the way to hold requests in flight.
type gateDisk struct {
	info   bdev.Info
	data   []byte
	closed atomic.Bool
	held   atomic.Int64 // IOs waiting at the gate
}

func newGateDisk(name string, data []byte) *gateDisk {
	return &gateDisk{info: bdev.Info{Name: name, BlockSize: 512, NumBlocks: uint64(len(data)) / 512, UUID: bdev.NewUUID()}, data: data}
}

func (d *gateDisk) Info() *bdev.Info { return &d.info }
func (d *gateDisk) Supports(t bdev.IOType) bool {
	return t == bdev.IORead || t == bdev.IOWrite || t == bdev.IOFlush
}
func (d *gateDisk) Destroy() error { return nil }
func (d *gateDisk) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	c := &gateChan{d: d}
	c.poller = r.RegisterPoller("gate_"+d.info.Name, c.poll, 0)
	return c, nil
}

type gateChan struct {
	d      *gateDisk
	q      bdev.IOQueue
	poller *reactor.Poller
}

func (c *gateChan) Submit(io *bdev.IO) {
	c.q.Push(io)
	c.d.held.Add(1)
}

func (c *gateChan) poll(reactor.Ticks) reactor.Status {
	if c.d.closed.Load() || c.q.Len() == 0 {
		return reactor.Idle
	}
	for io := c.q.Pop(); io != nil; io = c.q.Pop() {
		c.d.held.Add(-1)
		off := io.OffsetBlocks * 512
		n := io.NumBlocks * 512
		switch io.Type {
		case bdev.IORead:
			bdev.CopyToIovs(io.Iovs, 0, c.d.data[off:off+n])
		case bdev.IOWrite:
			bdev.CopyFromIovs(c.d.data[off:off+n], io.Iovs, 0)
		}
		io.Complete(bdev.StatusSuccess)
	}
	return reactor.Busy
}

func (c *gateChan) Close() { c.poller.Unregister() }

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDisconnectMidIO: the front-end goes away with writes in flight. The
// session must wait for them (the guest memory stays mapped until then),
// complete them into the ring, and a reconnecting front-end with the same
// inflight area finds nothing left to redo and goes on.
func TestDisconnectMidIO(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	disk := newGateDisk("Gate0", make([]byte, 8<<20))
	if _, err := e.reg.Register(disk); err != nil {
		t.Fatal(err)
	}
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Gate0"})
	f := dialFrontend(t, c.Socket(), feOpts{inflight: true, qsize: 64})
	f.startAll()
	q := f.queues[0]
	disk.closed.Store(true)
	var rs []*freq
	for i := range 16 {
		rs = append(rs, q.request(blk.Header{Type: blk.TypeOut, Sector: uint64(8 * i)}, pattern(4096, uint64(i)), 0))
	}
	q.kickNow()
	waitFor(t, "16 IOs at the gate", func() bool { return disk.held.Load() == 16 })
	f.conn.Close()
	f.conn = nil
	time.Sleep(20 * time.Millisecond)
	if n := len(c.Info().Sessions); n != 1 {
		t.Fatalf("session gone (%d left) while its IO is in flight", n)
	}
	disk.closed.Store(false)
	waitFor(t, "the session to drain and end", func() bool { return len(c.Info().Sessions) == 0 })
	for i, l := range q.wait(rs...) {
		if l != 1 || rs[i].status[0] != blk.StatusOK || !bytes.Equal(disk.data[8*512*i:8*512*i+4096], pattern(4096, uint64(i))) {
			t.Fatalf("write %d: used %d status %d", i, l, rs[i].status[0])
		}
	}
	area, err := virtq.NewInflight(f.inflight.Bytes(), 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	iq, _ := area.Queue(0)
	for h := range uint16(64) {
		if iq.IsInflight(h) {
			t.Fatalf("head %d still marked in flight after the drain", h)
		}
	}
	f.connect(c.Socket())
	f.startQueue(q, q.usedIdx())
	if r, st, _ := q.do(blk.Header{Type: blk.TypeIn, Sector: 8}, nil, 4096); st != blk.StatusOK || !bytes.Equal(r.data, pattern(4096, 1)) {
		t.Fatalf("read after reconnect: %d", st)
	}
}

// The crash test runs the target in a child process (this test binary, in
// TestVhostChildTarget) that it kills with SIGKILL while requests are in
// flight, then starts a new one on the same socket and disk, as QEMU's
// reconnect=1 sees a target restart.
const (
	envChild = "HYPERPATH_VHOST_CHILD"
	envSock  = "HYPERPATH_VHOST_SOCK_DIR"
	envDisk  = "HYPERPATH_VHOST_DISK"
	envHold  = "HYPERPATH_VHOST_HOLD"
)

// TestVhostChildTarget is the child process of TestReconnectAfterTargetCrash;
// it does nothing in a normal run.
func TestVhostChildTarget(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("helper process for TestReconnectAfterTargetCrash")
	}
	fd, err := unix.Open(os.Getenv(envDisk), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	data, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	go r.Run()
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	disk := newGateDisk("Disk0", data)
	disk.closed.Store(os.Getenv(envHold) == "1")
	// SIGUSR1 closes the gate: requests pile up in flight until the parent
	// kills this process.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			disk.closed.Store(true)
			for disk.held.Load() < 4 {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			fmt.Printf("GATE-HELD %d\n", disk.held.Load())
		}
	}()
	if _, err := reg.Register(disk); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	tgt := NewTarget(Options{Registry: reg, Reactors: []*reactor.Reactor{r}, SockDir: os.Getenv(envSock), Logger: log})
	if _, err := tgt.CreateBlkController(BlkControllerOptions{Name: "vhost.0", Bdev: "Disk0"}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("CHILD-READY")
	// Serve until killed, or until the parent goes away.
	io.Copy(io.Discard, os.Stdin)
	tgt.Close()
}

// child is a target process started by startChild.
type child struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer // stdout and stderr
}

func (c *child) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(b)
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// waitOutput waits until the child has printed s.
func (c *child) waitOutput(t testing.TB, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(c.output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("child never printed %q; output:\n%s", s, c.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

func startChild(t *testing.T, dir, disk string, hold bool) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestVhostChildTarget$", "-test.v")}
	h := "0"
	if hold {
		h = "1"
	}
	c.cmd.Env = append(os.Environ(), envChild+"=1", envSock+"="+dir, envDisk+"="+disk, envHold+"="+h)
	stdin, err := c.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout, c.cmd.Stderr = c, c
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		c.kill()
		if t.Failed() {
			t.Logf("child target output:\n%s", c.output())
		}
	})
	c.waitOutput(t, "CHILD-READY", 30*time.Second)
	return c
}

// TestReconnectAfterTargetCrash: a target dies (SIGKILL) with writes
// popped and in flight; a new target on the same socket gets the inflight
// area back (SET_INFLIGHT_FD), resubmits exactly those writes, and the
// front-end sees every request complete once with no error.
func TestReconnectAfterTargetCrash(t *testing.T) {
	if os.Getenv(envChild) == "1" {
		t.Skip("in the child")
	}
	dir, err := os.MkdirTemp("", "vh")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	diskPath := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(diskPath, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "vhost.0")

	child := startChild(t, dir, diskPath, true)
	f := dialFrontend(t, sock, feOpts{inflight: true, qsize: 64})
	f.startAll()
	q := f.queues[0]
	var rs []*freq
	for i := range 12 {
		rs = append(rs, q.request(blk.Header{Type: blk.TypeOut, Sector: uint64(8 * i)}, pattern(4096, uint64(100+i)), 0))
	}
	q.kickNow()
	area, err := virtq.NewInflight(f.inflight.Bytes(), 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	iq, _ := area.Queue(0)
	waitFor(t, "12 heads marked in flight by the target", func() bool {
		n := 0
		for _, r := range rs {
			if iq.IsInflight(r.head) {
				n++
			}
		}
		return n == 12
	})
	child.kill()
	if q.reap() != 0 {
		t.Fatal("the crashed target completed requests it held at the gate")
	}

	child2 := startChild(t, dir, diskPath, false)
	f.connect(sock) // the same inflight area and memory
	f.startQueue(q, q.usedIdx())
	for i, l := range q.wait(rs...) {
		if l != 1 || rs[i].status[0] != blk.StatusOK {
			t.Fatalf("write %d after reconnect: used %d status %d", i, l, rs[i].status[0])
		}
	}
	data, err := os.ReadFile(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if !bytes.Equal(data[8*512*i:8*512*i+4096], pattern(4096, uint64(100+i))) {
			t.Fatalf("write %d not on the disk after recovery", i)
		}
	}
	f.resetBufs()
	if r, st, _ := q.do(blk.Header{Type: blk.TypeIn, Sector: 16}, nil, 4096); st != blk.StatusOK || !bytes.Equal(r.data, pattern(4096, 102)) {
		t.Fatalf("read after recovery: %d", st)
	}
	if !strings.Contains(child2.output(), `resubmitting requests found in flight" ctrlr=vhost.0 session=vhost.0s0 vring=0 count=12`) {
		t.Fatalf("the new target did not report resubmitting 12 requests:\n%s", child2.output())
	}
}
