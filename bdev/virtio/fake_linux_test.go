package virtio

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/rpc/rpctest"
	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

// fakeBackend is a scripted vhost-user back end for the failure paths a
// real one does not take: it answers the handshake with configurable
// features and config, maps the front end's memory, and hands the rings to
// a hook once they are enabled. Mock at the OS boundary: the front end
// under test speaks to it over a real socket.
type fakeBackend struct {
	t        *testing.T
	sock     string
	ln       *net.UnixListener
	features uint64
	protocol uint64
	queues   uint64
	config   BlkConfig
	nack     proto.Request // answer this request's ack with 1
	silent   proto.Request // never answer this request
	wrongFor proto.Request // answer this request with a reply to another one
	// ready runs on the back end's goroutine once every ring is enabled.
	ready func(mem *virtq.GuestMemory, rings []virtq.Config, calls []int)
	done  chan struct{}

	mu       sync.Mutex
	conn     *net.UnixConn
	stopOnce sync.Once
}

func newFakeBackend(t *testing.T) *fakeBackend {
	fb := &fakeBackend{t: t, sock: filepath.Join(rpctest.SockDir(t), "fake.sock"),
		features: virtq.FeatureVersion1 | virtq.FeatureEventIdx | proto.FeatureProtocolFeatures |
			FeatureBlkSize | FeatureFlush | FeatureSegMax,
		protocol: proto.ProtocolMQ | proto.ProtocolReplyAck | proto.ProtocolConfig,
		queues:   1,
		config:   BlkConfig{CapacitySectors: 2048, BlkSize: 4096, SegMax: 8, NumQueues: 1},
		done:     make(chan struct{})}
	return fb
}

func (fb *fakeBackend) start() {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: fb.sock, Net: "unix"})
	if err != nil {
		fb.t.Fatal(err)
	}
	fb.ln = ln
	go fb.serve()
	fb.t.Cleanup(fb.stop)
}

// stop closes the listener and the connection, waits for the back end's
// goroutine and removes the socket. Idempotent.
func (fb *fakeBackend) stop() {
	fb.stopOnce.Do(func() {
		fb.ln.Close()
		fb.mu.Lock()
		if fb.conn != nil {
			fb.conn.Close()
		}
		fb.mu.Unlock()
		<-fb.done
		os.Remove(fb.sock)
	})
}

func (fb *fakeBackend) serve() {
	defer close(fb.done)
	c, err := fb.ln.AcceptUnix()
	if err != nil {
		return
	}
	fb.mu.Lock()
	fb.conn = c
	fb.mu.Unlock()
	defer c.Close()
	var (
		m     proto.Msg
		out   proto.Msg
		mem   *virtq.GuestMemory
		rings []virtq.Config
		calls []int
	)
	defer func() {
		for _, fd := range calls {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		if mem != nil {
			mem.Unmap()
		}
	}()
	ring := func(i uint32) *virtq.Config {
		for uint32(len(rings)) <= i {
			rings = append(rings, virtq.Config{Addrs: virtq.UserAddrs, EventIdx: true})
			calls = append(calls, -1)
		}
		return &rings[i]
	}
	enabled := 0
	for {
		if err := proto.ReadRequest(c, &m); err != nil {
			return
		}
		req := m.Hdr.Request
		if req == fb.silent {
			continue
		}
		reply := func(fill func()) {
			r := req
			if req == fb.wrongFor {
				r = proto.GetQueueNum
			}
			out.SetReply(r)
			fill()
			proto.WriteMsg(c, &out, nil)
		}
		switch req {
		case proto.GetFeatures:
			reply(func() { out.PutU64(fb.features) })
			continue
		case proto.GetProtocolFeatures:
			reply(func() { out.PutU64(fb.protocol) })
			continue
		case proto.GetQueueNum:
			reply(func() { out.PutU64(fb.queues) })
			continue
		case proto.GetConfig:
			var cfg proto.Config
			m.Config(&cfg)
			fb.config.Encode(cfg.Data[:])
			reply(func() { out.PutConfig(&cfg) })
			continue
		case proto.SetMemTable:
			var tbl proto.Memory
			if err := m.Memory(&tbl); err != nil {
				return
			}
			var regions []virtq.Region
			for i, r := range tbl.Used() {
				reg, err := virtq.MapRegion(m.TakeFD(i), virtq.RegionDesc{GuestAddr: r.GuestPhysAddr, Size: r.MemorySize,
					UserAddr: r.UserspaceAddr, MmapOffset: r.MmapOffset})
				if err != nil {
					return
				}
				regions = append(regions, reg)
			}
			m.CloseFDs()
			if mem, err = virtq.NewGuestMemory(regions...); err != nil {
				return
			}
		case proto.SetVringNum:
			s, _ := m.VringState()
			ring(s.Index).Size = uint16(s.Num)
		case proto.SetVringAddr:
			a, _ := m.VringAddr()
			r := ring(a.Index)
			r.Desc, r.Avail, r.Used = a.Desc, a.Avail, a.Used
		case proto.SetVringCall:
			f, _ := m.VringFile()
			ring(f.Index())
			calls[f.Index()] = m.TakeFD(0)
		case proto.SetVringEnable:
			enabled++
		}
		m.CloseFDs()
		if m.Hdr.NeedsReply() {
			v := uint64(0)
			if req == fb.nack {
				v = 1
			}
			reply(func() { out.PutU64(v) })
		}
		if req == proto.SetVringEnable && enabled == len(rings) && fb.ready != nil {
			fb.ready(mem, rings, calls)
		}
	}
}

// TestHandshakeFailures checks that every refusal of the handshake fails
// New with an error naming what was wrong, and leaves nothing behind.
func TestHandshakeFailures(t *testing.T) {
	cases := []struct {
		name  string
		setup func(fb *fakeBackend)
		want  string
	}{
		{"no-version-1", func(fb *fakeBackend) { fb.features &^= virtq.FeatureVersion1 }, "VIRTIO_F_VERSION_1"},
		{"no-protocol-features", func(fb *fakeBackend) { fb.features &^= proto.FeatureProtocolFeatures }, "VHOST_USER_F_PROTOCOL_FEATURES"},
		{"no-config", func(fb *fakeBackend) { fb.protocol &^= proto.ProtocolConfig }, "VHOST_USER_PROTOCOL_F_CONFIG"},
		{"bad-blk-size", func(fb *fakeBackend) { fb.config.BlkSize = 1000 }, "blk_size (offset 20) = 1000"},
		{"empty", func(fb *fakeBackend) { fb.config.CapacitySectors = 0 }, "capacity (offset 0) = 0"},
		{"nack-mem-table", func(fb *fakeBackend) { fb.nack = proto.SetMemTable }, "back end refused SET_MEM_TABLE"},
		{"wrong-reply", func(fb *fakeBackend) { fb.wrongFor = proto.SetOwner }, "reply to GET_QUEUE_NUM while waiting for SET_OWNER"},
		{"silent", func(fb *fakeBackend) { fb.silent = proto.GetConfig }, "i/o timeout"},
		{"queue-zero", func(fb *fakeBackend) { fb.queues = 0 }, "GET_QUEUE_NUM answered 0 queues"},
		{"seg-max-zero", func(fb *fakeBackend) { fb.config.SegMax = 0 }, "seg_max (offset 12) = 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fb := newFakeBackend(t)
			c.setup(fb)
			fb.start()
			_, err := New(Options{Name: "F", SocketPath: fb.sock, QueueSize: 16, ConnectTimeout: time.Second})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if c.name != "silent" && !errors.Is(err, ErrHandshake) {
				t.Errorf("%v does not wrap ErrHandshake", err)
			}
		})
	}
	if _, err := New(Options{Name: "F", SocketPath: "/nonexistent/sock"}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing socket: %v", err)
	}
}

// TestBrokenRing: a back end that returns a used entry for a request that
// was never made breaks the ring; the bdev fails its outstanding IO and
// every later one, and says why.
func TestBrokenRing(t *testing.T) {
	fb := newFakeBackend(t)
	fb.ready = func(mem *virtq.GuestMemory, rings []virtq.Config, calls []int) {
		// Wait for the front end's read to show up, then answer with
		// head 9 instead of its head 0.
		q, err := virtq.NewQueue(mem, rings[0], 0)
		if err != nil {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for !q.HasAvail() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		used, _ := mem.UserSlice(rings[0].Used, virtq.UsedRingSize(rings[0].Size))
		binary.LittleEndian.PutUint32(used[4:], 9)
		binary.LittleEndian.PutUint32(used[8:], 1)
		binary.LittleEndian.PutUint16(used[2:], 1)
	}
	fb.start()
	e := newEnv(t)
	d := e.attach(Options{Name: "F", SocketPath: fb.sock, QueueSize: 16})
	if d.info.BlockSize != 4096 || d.info.NumBlocks != 256 || d.info.MaxTransferBlocks != 8*BounceChunkSize/4096 {
		t.Fatalf("info %+v", d.info)
	}
	ch := e.channel("F")
	buf := d.AllocBuffer(4096)
	if st := e.do(ch, bdev.IORead, 3, 1, buf); st != bdev.StatusFailed {
		t.Fatalf("read answered with a bogus head: %v", st)
	}
	e.wait(func() bool { return d.State() == StateFailed })
	if !strings.Contains(d.LastError(), "back end broke queue 0") {
		t.Fatalf("last error %q", d.LastError())
	}
	if st := e.do(ch, bdev.IOWrite, 3, 1, buf); st != bdev.StatusFailed {
		t.Fatalf("write after the ring broke: %v", st)
	}
}

// TestReconnectChecksGeometry: after the back end went away, a new one
// with another capacity is refused (the generic layer and the submitters
// rely on the geometry) and the device keeps retrying until a back end of
// the same geometry answers.
func TestReconnectChecksGeometry(t *testing.T) {
	fb1 := newFakeBackend(t)
	fb1.start()
	e := newEnv(t)
	d := e.attach(Options{Name: "F", SocketPath: fb1.sock, QueueSize: 16, CtrlrLossTimeout: Forever,
		ReconnectDelay: 10 * time.Millisecond, ConnectTimeout: 2 * time.Second})
	fb1.stop()
	e.wait(func() bool { return d.State() == StateReconnecting })

	fb2 := newFakeBackend(t)
	fb2.sock = fb1.sock
	fb2.config.CapacitySectors *= 2
	fb2.start()
	e.wait(func() bool { return strings.Contains(d.LastError(), "the device had 2048 of 4096") })
	if d.State() != StateReconnecting {
		t.Fatalf("state %v after a refused reconnect", d.State())
	}
	fb2.stop()

	fb3 := newFakeBackend(t)
	fb3.sock = fb1.sock
	fb3.start()
	e.wait(func() bool { return d.State() == StateConnected })
	if d.Reconnects() != 1 || d.LastError() != "" {
		t.Fatalf("%d reconnects, last error %q", d.Reconnects(), d.LastError())
	}
}
