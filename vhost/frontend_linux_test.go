package vhost

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/vhost/blk"
	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

// frontend is a minimal vhost-user-blk front-end built from proto and virtq,
// playing QEMU's part: it owns the guest memory (a memfd it maps), puts
// requests in split rings there with virtq.Driver, and talks to the target
// over its socket. Everything runs on the test goroutine.
type frontend struct {
	t     testing.TB
	conn  *net.UnixConn
	msg   proto.Msg
	memfd int
	mp    *virtq.Mapping
	mem   []byte
	uaddr uint64
	gpa   uint64
	gm    *virtq.GuestMemory // guest addresses, for the drivers
	bump  uint64             // next free buffer offset in mem
	lo    uint64             // first buffer offset (after the rings)

	offered   uint64
	features  uint64
	protocol  uint64
	config    blk.Config
	queues    []*fqueue
	inflight  *virtq.Mapping
	inflFD    int
	inflQueue uint16
	inflSize  uint16
	opts      feOpts
}

// fqueue is one virtqueue of the front-end.
type fqueue struct {
	f      *frontend
	idx    int
	size   uint16
	ringAt uint64 // offset of the ring block in mem
	lay    virtq.Layout
	drv    *virtq.Driver
	kick   int
	call   int
	used   []virtq.Used
	done   map[uint16]uint32
}

type feOpts struct {
	memMiB   int
	hugetlb  bool
	queues   int
	qsize    uint16
	eventIdx bool
	inflight bool
	noAck    bool // do not negotiate REPLY_ACK
}

const feGPA = 0x4000_0000

// dialFrontend makes the guest memory, connects, negotiates and lays out
// the rings (not started: startAll / startQueue do that).
func dialFrontend(t testing.TB, sock string, o feOpts) *frontend {
	t.Helper()
	f := newFrontend(t, o)
	f.connect(sock)
	return f
}

// newFrontend makes the guest memory and the driver rings, not connected.
func newFrontend(t testing.TB, o feOpts) *frontend {
	t.Helper()
	if o.memMiB == 0 {
		o.memMiB = 64
	}
	if o.queues == 0 {
		o.queues = 1
	}
	if o.qsize == 0 {
		o.qsize = 128
	}
	f := &frontend{t: t, memfd: -1, inflFD: -1, gpa: feGPA, opts: o}
	t.Cleanup(f.close)
	flags := unix.MFD_CLOEXEC
	if o.hugetlb {
		flags |= unix.MFD_HUGETLB
	}
	var err error
	if f.memfd, err = unix.MemfdCreate("guest", flags); err != nil {
		t.Fatal(err)
	}
	size := uint64(o.memMiB) << 20
	if err := unix.Ftruncate(f.memfd, int64(size)); err != nil {
		t.Fatal(err)
	}
	if f.mp, err = virtq.MapFD(f.memfd, 0, size); err != nil {
		t.Fatal(err)
	}
	f.mem = f.mp.Bytes()
	f.uaddr = virtq.HostAddr(f.mem)
	if f.gm, err = virtq.NewGuestMemory(virtq.NewRegion(f.gpa, f.uaddr, f.mem)); err != nil {
		t.Fatal(err)
	}
	// Rings first, buffers after them.
	off := uint64(0)
	for i := range o.queues {
		lay, err := virtq.NewLayout(o.qsize, 4)
		if err != nil {
			t.Fatal(err)
		}
		q := &fqueue{f: f, idx: i, size: o.qsize, ringAt: off, lay: lay, done: map[uint16]uint32{},
			used: make([]virtq.Used, 256), kick: -1, call: -1}
		off = (off + lay.Len + 4095) &^ 4095
		if q.drv, err = virtq.NewDriver(f.gm, q.cfg(o.eventIdx)); err != nil {
			t.Fatal(err)
		}
		f.queues = append(f.queues, q)
	}
	f.lo, f.bump = off, off
	return f
}

// connect dials the target and sends what QEMU sends before starting
// rings: features, protocol features, owner, config, inflight area (a new
// one the first time, the same one on a reconnect) and the memory table.
func (f *frontend) connect(sock string) {
	t := f.t
	t.Helper()
	if f.conn != nil {
		f.conn.Close()
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	f.protocol = 0
	o := f.opts
	f.offered = f.getU64(proto.GetFeatures)
	if f.offered&proto.FeatureProtocolFeatures == 0 {
		t.Fatalf("target does not offer VHOST_USER_F_PROTOCOL_FEATURES: %#x", f.offered)
	}
	pf := f.getU64(proto.GetProtocolFeatures)
	want := proto.ProtocolMQ | proto.ProtocolConfig | proto.ProtocolInflightSHMFD | proto.ProtocolReplyAck
	if o.noAck {
		want &^= proto.ProtocolReplyAck
	}
	if pf&want != want {
		t.Fatalf("protocol features %#x lack %#x", pf, want)
	}
	f.send(proto.SetProtocolFeatures, func(m *proto.Msg) { m.PutU64(want) })
	f.protocol = want
	if n := f.getU64(proto.GetQueueNum); n < uint64(o.queues) {
		t.Fatalf("target supports %d queues", n)
	}
	f.send(proto.SetOwner, nil)
	f.config = f.getConfig()

	f.features = virtq.FeatureVersion1 | virtq.FeatureIndirectDesc | proto.FeatureProtocolFeatures |
		(f.offered & (blk.FeatureBlkSize | blk.FeatureFlush | blk.FeatureMQ | blk.FeatureSegMax |
			blk.FeatureDiscard | blk.FeatureWriteZeroes | blk.FeatureRO | blk.FeatureTopology))
	if o.eventIdx {
		f.features |= virtq.FeatureEventIdx
	}
	f.send(proto.SetFeatures, func(m *proto.Msg) { m.PutU64(f.features) })
	if o.inflight {
		if f.inflight == nil {
			f.getInflight(uint16(o.queues), o.qsize)
		}
		f.setInflight()
	}
	f.setMemTable()
}

// usedIdx reads the used index of ring q from guest memory: the base QEMU
// restarts a ring from after its back-end died.
func (q *fqueue) usedIdx() uint16 {
	off := q.ringAt + q.lay.UsedOff + 2
	return uint16(q.f.mem[off]) | uint16(q.f.mem[off+1])<<8
}

func (q *fqueue) cfg(eventIdx bool) virtq.Config {
	g := q.f.gpa + q.ringAt
	return virtq.Config{Size: q.size, Desc: g + q.lay.DescOff, Avail: g + q.lay.AvailOff, Used: g + q.lay.UsedOff,
		EventIdx: eventIdx, Indirect: true}
}

func (f *frontend) close() {
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	for _, q := range f.queues {
		q.closeFDs()
	}
	if f.mp != nil {
		f.mp.Unmap()
		f.mp = nil
	}
	if f.inflight != nil {
		f.inflight.Unmap()
		f.inflight = nil
	}
	if f.inflFD >= 0 {
		unix.Close(f.inflFD)
		f.inflFD = -1
	}
	if f.memfd >= 0 {
		unix.Close(f.memfd)
		f.memfd = -1
	}
}

func (q *fqueue) closeFDs() {
	if q.kick >= 0 {
		unix.Close(q.kick)
		q.kick = -1
	}
	if q.call >= 0 {
		unix.Close(q.call)
		q.call = -1
	}
}

// send sends a request and, if it has a reply of its own, reads it into
// f.msg. With REPLY_ACK negotiated every other request asks for an ack,
// which must be 0.
func (f *frontend) send(req proto.Request, fill func(*proto.Msg), fds ...int) {
	f.t.Helper()
	if err := f.trySend(req, fill, fds...); err != nil {
		f.t.Fatalf("%s: %v", req, err)
	}
}

func (f *frontend) trySend(req proto.Request, fill func(*proto.Msg), fds ...int) error {
	var flags proto.Flags
	ack := f.protocol&proto.ProtocolReplyAck != 0 && !proto.HasReply(req)
	if ack {
		flags = proto.FlagNeedReply
	}
	f.msg.SetRequest(req, flags)
	if fill != nil {
		fill(&f.msg)
	}
	if err := proto.WriteMsg(f.conn, &f.msg, fds); err != nil {
		return err
	}
	if !ack && !proto.HasReply(req) {
		return nil
	}
	f.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer f.conn.SetReadDeadline(time.Time{})
	if err := proto.ReadReply(f.conn, &f.msg); err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if f.msg.Hdr.Request != req {
		return fmt.Errorf("reply to %s, want %s", f.msg.Hdr.Request, req)
	}
	if ack {
		v, err := f.msg.U64()
		if err != nil {
			return err
		}
		if v != 0 {
			return fmt.Errorf("nack %d", v)
		}
	}
	return nil
}

func (f *frontend) getU64(req proto.Request) uint64 {
	f.t.Helper()
	f.send(req, nil)
	v, err := f.msg.U64()
	if err != nil {
		f.t.Fatalf("%s reply: %v", req, err)
	}
	return v
}

func (f *frontend) getConfig() blk.Config {
	f.t.Helper()
	f.send(proto.GetConfig, func(m *proto.Msg) {
		m.PutConfig(&proto.Config{Offset: 0, Size: blk.ConfigSize})
	})
	var c proto.Config
	if err := f.msg.Config(&c); err != nil {
		f.t.Fatal(err)
	}
	cfg, err := blk.DecodeConfig(c.Bytes())
	if err != nil {
		f.t.Fatal(err)
	}
	return cfg
}

func (f *frontend) memTable() *proto.Memory {
	mt := &proto.Memory{NRegions: 1}
	mt.Regions[0] = proto.MemRegion{GuestPhysAddr: f.gpa, MemorySize: uint64(len(f.mem)), UserspaceAddr: f.uaddr}
	return mt
}

func (f *frontend) setMemTable() {
	f.t.Helper()
	f.send(proto.SetMemTable, func(m *proto.Msg) { m.PutMemory(f.memTable()) }, f.memfd)
}

func (f *frontend) getInflight(nq, qs uint16) {
	f.t.Helper()
	f.send(proto.GetInflightFD, func(m *proto.Msg) { m.PutInflight(proto.Inflight{NumQueues: nq, QueueSize: qs}) })
	in, err := f.msg.Inflight()
	if err != nil {
		f.t.Fatal(err)
	}
	fd := f.msg.TakeFD(0)
	if fd < 0 {
		f.t.Fatal("GET_INFLIGHT_FD reply without fd")
	}
	if in.MmapSize < virtq.InflightSize(nq, qs) {
		f.t.Fatalf("inflight area %d bytes", in.MmapSize)
	}
	f.inflFD, f.inflQueue, f.inflSize = fd, nq, qs
	if f.inflight, err = virtq.MapFD(fd, in.MmapOffset, in.MmapSize); err != nil {
		f.t.Fatal(err)
	}
}

func (f *frontend) setInflight() {
	f.t.Helper()
	f.send(proto.SetInflightFD, func(m *proto.Msg) {
		m.PutInflight(proto.Inflight{MmapSize: uint64(len(f.inflight.Bytes())), NumQueues: f.inflQueue, QueueSize: f.inflSize})
	}, f.inflFD)
}

// startQueue sends what QEMU sends to start ring q at base.
func (f *frontend) startQueue(q *fqueue, base uint16) {
	f.t.Helper()
	var err error
	q.closeFDs()
	if q.kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		f.t.Fatal(err)
	}
	if q.call, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		f.t.Fatal(err)
	}
	i := uint32(q.idx)
	u := f.uaddr + q.ringAt
	f.send(proto.SetVringNum, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: i, Num: uint32(q.size)}) })
	f.send(proto.SetVringBase, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: i, Num: uint32(base)}) })
	f.send(proto.SetVringAddr, func(m *proto.Msg) {
		m.PutVringAddr(proto.VringAddr{Index: i, Desc: u + q.lay.DescOff, Avail: u + q.lay.AvailOff, Used: u + q.lay.UsedOff})
	})
	f.send(proto.SetVringKick, func(m *proto.Msg) { m.PutVringFile(proto.NewVringFile(uint8(i), false)) }, q.kick)
	f.send(proto.SetVringCall, func(m *proto.Msg) { m.PutVringFile(proto.NewVringFile(uint8(i), false)) }, q.call)
	f.send(proto.SetVringEnable, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: i, Num: 1}) })
}

func (f *frontend) startAll() {
	for _, q := range f.queues {
		f.startQueue(q, 0)
	}
}

// vringBase stops ring q (GET_VRING_BASE) and returns its base.
func (f *frontend) vringBase(q *fqueue) uint16 {
	f.t.Helper()
	f.send(proto.GetVringBase, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: uint32(q.idx)}) })
	st, err := f.msg.VringState()
	if err != nil {
		f.t.Fatal(err)
	}
	return uint16(st.Num)
}

// buf reserves n bytes of guest memory.
func (f *frontend) buf(n int) (uint64, []byte) {
	f.t.Helper()
	off := (f.bump + 63) &^ 63
	if off+uint64(n) > uint64(len(f.mem)) {
		f.t.Fatal("front-end memory exhausted")
	}
	f.bump = off + uint64(n)
	return f.gpa + off, f.mem[off : off+uint64(n)]
}

func (f *frontend) resetBufs() { f.bump = f.lo }

// freq is a request in a front-end ring.
type freq struct {
	head   uint16
	data   []byte
	status []byte
}

// request adds a virtio-blk request to q (see blk's test harness).
func (q *fqueue) request(h blk.Header, outData []byte, inLen int) *freq {
	f := q.f
	f.t.Helper()
	hg, hb := f.buf(blk.HeaderSize)
	var hdr [blk.HeaderSize]byte
	h.Encode(&hdr)
	copy(hb, hdr[:])
	out := []virtq.Buf{{Addr: hg, Len: blk.HeaderSize}}
	if len(outData) > 0 {
		g, b := f.buf(len(outData))
		copy(b, outData)
		out = append(out, virtq.Buf{Addr: g, Len: uint32(len(outData))})
	}
	r := &freq{}
	var in []virtq.Buf
	if inLen > 0 {
		g, b := f.buf(inLen)
		r.data = b
		in = append(in, virtq.Buf{Addr: g, Len: uint32(inLen)})
	}
	sg, sb := f.buf(1)
	sb[0] = 0xff
	r.status = sb
	in = append(in, virtq.Buf{Addr: sg, Len: 1})
	head, err := q.drv.Add(out, in)
	if err != nil {
		f.t.Fatalf("driver add: %v", err)
	}
	r.head = head
	return r
}

// kick publishes and signals the kick eventfd if the device wants it.
func (q *fqueue) kickNow() {
	q.drv.Publish()
	if q.drv.NeedsKick() {
		unix.Write(q.kick, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// reap moves completions into q.done.
func (q *fqueue) reap() int {
	n, err := q.drv.Reap(q.used)
	if err != nil {
		q.f.t.Fatalf("reap: %v", err)
	}
	for _, u := range q.used[:n] {
		if _, dup := q.done[u.Head]; dup {
			q.f.t.Fatalf("head %d completed twice", u.Head)
		}
		q.done[u.Head] = u.Len
	}
	return n
}

// wait waits (polling the used ring) until every r has completed and
// returns the used lengths.
func (q *fqueue) wait(rs ...*freq) []uint32 {
	q.f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	lens := make([]uint32, len(rs))
	for i, r := range rs {
		for {
			if l, ok := q.done[r.head]; ok {
				delete(q.done, r.head)
				lens[i] = l
				break
			}
			if q.reap() == 0 {
				if time.Now().After(deadline) {
					q.f.t.Fatalf("queue %d: request head %d never completed", q.idx, r.head)
				}
				runtime.Gosched()
			}
		}
	}
	return lens
}

func (q *fqueue) do(h blk.Header, outData []byte, inLen int) (*freq, byte, uint32) {
	q.f.t.Helper()
	r := q.request(h, outData, inLen)
	q.kickNow()
	l := q.wait(r)[0]
	return r, r.status[0], l
}

// extraRegion makes a second memfd region (at guest 4 GiB) for ADD_MEM_REG.
func (f *frontend) extraRegion(size int) (fd int, mp *virtq.Mapping, gpa uint64, mem []byte) {
	f.t.Helper()
	fd, err := unix.MemfdCreate("guest2", unix.MFD_CLOEXEC)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.t.Fatal(err)
	}
	if mp, err = virtq.MapFD(fd, 0, uint64(size)); err != nil {
		f.t.Fatal(err)
	}
	return fd, mp, 0x1_0000_0000, mp.Bytes()
}

// requestAt adds a read whose header, data and status are at the given
// guest addresses (the header already written there).
func (q *fqueue) requestAt(hdr, data uint64, dataLen uint32, status uint64) *freq {
	q.f.t.Helper()
	head, err := q.drv.Add([]virtq.Buf{{Addr: hdr, Len: blk.HeaderSize}},
		[]virtq.Buf{{Addr: data, Len: dataLen}, {Addr: status, Len: 1}})
	if err != nil {
		q.f.t.Fatal(err)
	}
	return &freq{head: head}
}
