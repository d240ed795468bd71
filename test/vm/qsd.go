package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// QSDConfig describes a qemu-storage-daemon vhost-user-blk export: the
// reference back end that Hyperpath's vhost target is compared against.
type QSDConfig struct {
	// Blockdev is the --blockdev option without node-name, for example
	// NullCo(1024) or FileBlockdev("/dev/shm/disk.img").
	Blockdev string
	// Socket is the vhost-user socket to listen on (a stale one is removed).
	Socket string
	// NumQueues of the export (0 means 1).
	NumQueues int
}

// NullCo is a null-co block device of sizeMiB that reads zeroes and keeps
// no data: fine for queue and IO-path checks, not for data checks.
func NullCo(sizeMiB int) string {
	return fmt.Sprintf("driver=null-co,size=%d,read-zeroes=on", int64(sizeMiB)<<20)
}

// FileBlockdev is a raw file block device with discard passed down as
// hole punching. Commas in the path are escaped as QEMU's option syntax wants.
func FileBlockdev(path string) string {
	return "driver=file,filename=" + strings.ReplaceAll(path, ",", ",,") + ",discard=unmap"
}

// QSD is a running qemu-storage-daemon. Its methods are safe for concurrent use.
type QSD struct {
	cfg  QSDConfig
	path string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *consoleBuf
	done chan struct{}
}

// StartQSD starts qemu-storage-daemon and waits (up to 10 s) for its
// socket. The caller must Kill it.
func (img *Image) StartQSD(cfg QSDConfig) (*QSD, error) {
	if cfg.Blockdev == "" || cfg.Socket == "" {
		return nil, errors.New("vm: QSDConfig needs Blockdev and Socket")
	}
	q := &QSD{cfg: cfg, path: img.StorageDaemon}
	if err := q.start(); err != nil {
		return nil, err
	}
	return q, nil
}

// StartQSD is img.StartQSD with a t.Cleanup that kills the daemon and
// removes its socket; a start failure fails the test.
func StartQSD(t testing.TB, img *Image, cfg QSDConfig) *QSD {
	t.Helper()
	q, err := img.StartQSD(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q.Kill()
		if t.Failed() {
			t.Logf("qemu-storage-daemon output:\n%s", tail(q.Output(), 2000))
		}
	})
	return q
}

func (q *QSD) start() error {
	os.Remove(q.cfg.Socket)
	export := fmt.Sprintf("type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=%s,writable=on,num-queues=%d",
		strings.ReplaceAll(q.cfg.Socket, ",", ",,"), max(q.cfg.NumQueues, 1))
	cmd := exec.Command(q.path, "--blockdev", q.cfg.Blockdev+",node-name=disk0", "--export", export)
	out := newConsoleBuf(nil)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vm: starting %s: %w", q.path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	q.mu.Lock()
	q.cmd, q.out, q.done = cmd, out, done
	q.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err := os.Stat(q.cfg.Socket); err == nil && st.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("vm: qemu-storage-daemon exited: %s", strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("vm: qemu-storage-daemon made no socket %s in 10 s: %s", q.cfg.Socket, out.String())
		}
	}
}

// PID of the running daemon.
func (q *QSD) PID() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cmd.Process.Pid
}

// Output is what the daemon printed in its current run.
func (q *QSD) Output() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.out.String()
}

// Kill sends SIGKILL to the daemon (by PID), waits for it and removes the
// socket. It is idempotent.
func (q *QSD) Kill() {
	q.mu.Lock()
	cmd, done := q.cmd, q.done
	q.mu.Unlock()
	cmd.Process.Kill()
	<-done
	os.Remove(q.cfg.Socket)
}

// Restart kills the daemon (as kill -9 would) and starts it again on the
// same socket and block device.
func (q *QSD) Restart() error {
	q.Kill()
	return q.start()
}

// String describes the export.
func (q *QSD) String() string {
	return "qemu-storage-daemon " + q.cfg.Blockdev + " on " + q.cfg.Socket + " queues=" + strconv.Itoa(max(q.cfg.NumQueues, 1))
}
