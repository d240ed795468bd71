package virtio

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/rpc/rpctest"
)

// qsdProc is a qemu-storage-daemon exporting one vhost-user-blk socket.
type qsdProc struct {
	cmd  *exec.Cmd
	sock string
	log  *bytes.Buffer
}

// qsdConfig describes the export: a null-co disk of NullBytes, or the file
// File.
type qsdConfig struct {
	NullBytes int64
	File      string
	Queues    int
	Sock      string // default: a new socket in a short temporary directory
}

// startQSD starts qemu-storage-daemon, waits for its socket and kills it
// (by PID) when the test ends. It skips the test when the binary is not
// installed.
func startQSD(t testing.TB, c qsdConfig) *qsdProc {
	t.Helper()
	bin, err := exec.LookPath("qemu-storage-daemon")
	if err != nil {
		t.Skip("qemu-storage-daemon not installed (Debian package qemu-system-common): no real vhost-user-blk back end to test against")
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.Sock == "" {
		c.Sock = filepath.Join(rpctest.SockDir(t), "vub.sock")
	}
	blockdev := "driver=null-co,node-name=disk0,read-zeroes=on,size=" + strconv.FormatInt(c.NullBytes, 10)
	if c.File != "" {
		blockdev = "driver=file,node-name=disk0,discard=unmap,filename=" + c.File
	}
	p := &qsdProc{sock: c.Sock, log: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, "--blockdev", blockdev,
		"--export", fmt.Sprintf("type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=%s,writable=on,num-queues=%d", c.Sock, c.Queues))
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start qemu-storage-daemon: %v", err)
	}
	t.Cleanup(p.kill)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The socket file appears at bind, before listen: wait until a
		// connection is accepted (QSD drops it and listens again).
		if conn, err := net.Dial("unix", c.Sock); err == nil {
			conn.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu-storage-daemon did not create %s: %s", c.Sock, p.log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill ends the daemon with SIGKILL by its PID and reaps it. Idempotent.
func (p *qsdProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
}

// shmFile creates a file of size bytes filled with fill in /dev/shm (a
// tmpfs both processes see), removed when the test ends.
func shmFile(t testing.TB, size int, fill byte) string {
	t.Helper()
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = t.TempDir()
	}
	f, err := os.CreateTemp(dir, "hp-virtio-*.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	for off := 0; off < size; off += len(chunk) {
		if _, err := f.Write(chunk[:min(len(chunk), size-off)]); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	return f.Name()
}

// env is one reactor stepped by the test goroutine with Poll, and a
// registry on it.
type env struct {
	t   testing.TB
	r   *reactor.Reactor
	reg *bdev.Registry
}

func newEnv(t testing.TB) *env {
	t.Helper()
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	reg.RegisterModule(Module{})
	return &env{t: t, r: r, reg: reg}
}

// attach creates and registers a Disk, unregistered when the test ends.
func (e *env) attach(o Options) *Disk {
	e.t.Helper()
	if err := Attach(e.reg, o); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.reg.Unregister(o.Name, nil) })
	b, err := e.reg.Get(o.Name)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.Device().(*Disk)
}

// channel opens name and gets its channel on the env's reactor; both are
// released at the end of the test, after outstanding IO drained.
func (e *env) channel(name string) *bdev.IOChannel {
	e.t.Helper()
	desc, err := e.reg.Open(name, true, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ch, err := desc.GetChannel(e.r)
	if err != nil {
		desc.Close()
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		e.drain(ch)
		ch.PutChannel()
		e.drain(ch)
		desc.Close()
	})
	return ch
}

func (e *env) drain(ch *bdev.IOChannel) {
	deadline := time.Now().Add(10 * time.Second)
	for ch.Outstanding() > 0 && time.Now().Before(deadline) {
		e.r.Poll(reactor.Now())
	}
}

// do submits one IO and polls until it completes.
func (e *env) do(ch *bdev.IOChannel, typ bdev.IOType, off, n uint64, iovs ...[]byte) bdev.Status {
	e.t.Helper()
	io := ch.Alloc()
	if io == nil {
		e.t.Fatal("IO pool empty")
	}
	io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, off, n, iovs
	st := bdev.StatusPending
	ch.Submit(io, func(io *bdev.IO) { st = io.Status })
	e.wait(func() bool { return st != bdev.StatusPending })
	return st
}

// wait polls until cond holds (10 s at most).
func (e *env) wait(cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatal("timed out polling")
		}
		e.r.Poll(reactor.Now())
	}
}

func pattern(b []byte, seed byte) {
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
	}
}

// fileAt reads n bytes of path at off.
func fileAt(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}
