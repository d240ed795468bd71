package vhost

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"hyperpath/reactor"
	"hyperpath/vhost/blk"
	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 11))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestSessionReadWrite(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	disk := e.malloc("Malloc0", 512, 64<<20/512)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	if c.Socket() != filepath.Join(e.dir, "vhost.0") {
		t.Fatalf("socket %s", c.Socket())
	}
	for _, eventIdx := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_idx=%v", eventIdx), func(t *testing.T) {
			f := dialFrontend(t, c.Socket(), feOpts{eventIdx: eventIdx, qsize: 256})
			if f.config.Capacity != 64<<20/512 || f.config.BlkSize != 512 || f.config.NumQueues != MaxQueues {
				t.Fatalf("config %+v", f.config)
			}
			f.startAll()
			q := f.queues[0]
			for _, size := range []int{512, 4096, 65536, 512 << 10} {
				for _, qd := range []int{1, 4, 32} {
					if size*qd > 24<<20 {
						continue
					}
					var rs []*freq
					for i := range qd {
						rs = append(rs, q.request(blk.Header{Type: blk.TypeOut, Sector: uint64(i * size / 512)}, pattern(size, uint64(size+i)), 0))
					}
					q.kickNow()
					for i, l := range q.wait(rs...) {
						if rs[i].status[0] != blk.StatusOK || l != 1 {
							t.Fatalf("%dB qd%d write %d: status %d used %d", size, qd, i, rs[i].status[0], l)
						}
					}
					for i := range qd {
						if !bytes.Equal(disk.Memory()[i*size:(i+1)*size], pattern(size, uint64(size+i))) {
							t.Fatalf("%dB qd%d: write %d not on the disk", size, qd, i)
						}
					}
					f.resetBufs()
					rs = rs[:0]
					for i := range qd {
						rs = append(rs, q.request(blk.Header{Type: blk.TypeIn, Sector: uint64(i * size / 512)}, nil, size))
					}
					q.kickNow()
					for i, l := range q.wait(rs...) {
						if rs[i].status[0] != blk.StatusOK || l != uint32(size+1) || !bytes.Equal(rs[i].data, pattern(size, uint64(size+i))) {
							t.Fatalf("%dB qd%d read %d: status %d used %d", size, qd, i, rs[i].status[0], l)
						}
					}
					f.resetBufs()
				}
			}
		})
	}
}

func TestSessionRequestTypes(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	disk := e.malloc("Malloc1", 4096, 1024)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.1", Bdev: "Malloc1"})
	f := dialFrontend(t, c.Socket(), feOpts{})
	want := blk.FeatureFlush | blk.FeatureDiscard | blk.FeatureWriteZeroes | blk.FeatureMQ | blk.FeatureBlkSize
	if f.offered&want != want || f.offered&blk.FeatureRO != 0 {
		t.Fatalf("features %#x", f.offered)
	}
	f.startAll()
	q := f.queues[0]
	if _, st, _ := q.do(blk.Header{Type: blk.TypeFlush}, nil, 0); st != blk.StatusOK {
		t.Fatalf("flush %d", st)
	}
	r, st, l := q.do(blk.Header{Type: blk.TypeGetID}, nil, blk.IDBytes)
	if st != blk.StatusOK || l != 21 || string(bytes.TrimRight(r.data, "\x00")) != "Malloc1" {
		t.Fatalf("GET_ID %d %d %q", st, l, r.data)
	}
	for i := range disk.Memory() {
		disk.Memory()[i] = 1
	}
	var seg [blk.SegmentSize]byte
	blk.Segment{Sector: 8, NumSectors: 16}.Encode(&seg)
	if _, st, _ := q.do(blk.Header{Type: blk.TypeDiscard}, seg[:], 0); st != blk.StatusOK {
		t.Fatalf("discard %d", st)
	}
	blk.Segment{Sector: 64, NumSectors: 8, Flags: blk.SegmentFlagUnmap}.Encode(&seg)
	if _, st, _ := q.do(blk.Header{Type: blk.TypeWriteZeroes}, seg[:], 0); st != blk.StatusOK {
		t.Fatalf("write zeroes %d", st)
	}
	m := disk.Memory()
	if m[4096] != 0 || m[3*4096-1] != 0 || m[3*4096] != 1 || m[8*4096] != 0 || m[9*4096-1] != 0 || m[9*4096] != 1 {
		t.Fatal("discard / write zeroes did not zero exactly their ranges")
	}
	if _, st, _ := q.do(blk.Header{Type: 77}, nil, 0); st != blk.StatusUnsupp {
		t.Fatalf("unknown type %d", st)
	}
	if _, st, _ := q.do(blk.Header{Type: blk.TypeIn, Sector: 1}, nil, 4096); st != blk.StatusIOErr {
		t.Fatalf("misaligned read on a 4K disk: %d", st)
	}
	if _, st, _ := q.do(blk.Header{Type: blk.TypeIn}, nil, 4096); st != blk.StatusOK {
		t.Fatalf("read after errors: %d", st)
	}
}

func TestReadOnlyController(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	disk := e.malloc("Malloc0", 512, 2048)
	copy(disk.Memory(), "original")
	c := e.ctrl(BlkControllerOptions{Name: "ro", Bdev: "Malloc0", ReadOnly: true})
	f := dialFrontend(t, c.Socket(), feOpts{})
	if f.offered&blk.FeatureRO == 0 {
		t.Fatal("RO not offered")
	}
	f.startAll()
	q := f.queues[0]
	if _, st, _ := q.do(blk.Header{Type: blk.TypeOut}, make([]byte, 512), 0); st != blk.StatusIOErr {
		t.Fatalf("write on read-only controller: %d", st)
	}
	if r, st, _ := q.do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusOK || string(r.data[:8]) != "original" {
		t.Fatalf("read: %d", st)
	}
}

// TestMultiQueue runs IO on 4 queues spread over 2 reactors at once.
func TestMultiQueue(t *testing.T) {
	e := newTEnv(t, tenvOpts{reactors: 2})
	disk := e.malloc("Malloc0", 512, 32<<20/512)
	c := e.ctrl(BlkControllerOptions{Name: "mq", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{queues: 4, qsize: 64})
	f.startAll()
	const perQ, size = 16, 8192
	var all [][]*freq
	for qi, q := range f.queues {
		var rs []*freq
		for i := range perQ {
			sector := uint64((qi*perQ + i) * size / 512)
			rs = append(rs, q.request(blk.Header{Type: blk.TypeOut, Sector: sector}, pattern(size, uint64(qi*100+i)), 0))
		}
		all = append(all, rs)
	}
	for _, q := range f.queues {
		q.kickNow()
	}
	for qi, q := range f.queues {
		for i, l := range q.wait(all[qi]...) {
			if l != 1 || all[qi][i].status[0] != blk.StatusOK {
				t.Fatalf("queue %d write %d failed", qi, i)
			}
		}
	}
	for qi := range f.queues {
		for i := range perQ {
			off := (qi*perQ + i) * size
			if !bytes.Equal(disk.Memory()[off:off+size], pattern(size, uint64(qi*100+i))) {
				t.Fatalf("queue %d write %d lost", qi, i)
			}
		}
	}
	// Every reactor polls some of the queues.
	for _, r := range e.rs {
		n := 0
		callOn(r, func() {
			r.Pollers(func(p *reactor.Poller, _ bool) {
				if len(p.Name()) > 10 && p.Name()[:10] == "vhost_blk_" {
					n++
				}
			})
		})
		if n != 2 {
			t.Fatalf("reactor %d runs %d vhost queues, want 2", r.ID(), n)
		}
	}
	info := c.Info()
	if len(info.Sessions) != 1 || !info.Sessions[0].Started || info.Sessions[0].MaxQueues != 4 || info.Sessions[0].Inflight != 0 {
		t.Fatalf("info %+v", info)
	}
}

// TestMalformedMessageClosesSession: garbage from one front-end closes its
// connection only.
func TestMalformedMessageClosesSession(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 2048)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	good := dialFrontend(t, c.Socket(), feOpts{})
	good.startAll()

	for _, bad := range []struct {
		name string
		raw  []byte
	}{
		{"bad version", []byte{1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}},
		{"oversized payload", []byte{5, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0}},
		{"SET_VRING_NUM for queue 200", append([]byte{8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0}, 200, 0, 0, 0, 128, 0, 0, 0)},
		{"SET_VRING_NUM size 3", append([]byte{8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0}, 0, 0, 0, 0, 3, 0, 0, 0)},
		{"SET_MEM_TABLE without fd", append([]byte{5, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0}, make([]byte, 40)...)},
	} {
		t.Run(bad.name, func(t *testing.T) {
			conn, err := net.Dial("unix", c.Socket())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(bad.raw); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var b [64]byte
			n, err := conn.Read(b[:])
			var ne net.Error
			if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("connection still open after %s: read %d bytes, %v", bad.name, n, err)
			}
		})
	}
	if _, st, _ := good.queues[0].do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusOK {
		t.Fatalf("the other session stopped working: %d", st)
	}
	// And new connections are still served.
	f2 := dialFrontend(t, c.Socket(), feOpts{})
	f2.startAll()
	if _, st, _ := f2.queues[0].do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusOK {
		t.Fatalf("new session after malformed ones: %d", st)
	}
}

func TestUnsupportedRequestIsRefusedNotFatal(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 2048)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{})
	// SET_LOG_FD (dirty logging was not offered) and SET_CONFIG of a
	// read-only field: nacked, the session goes on.
	if err := f.trySend(proto.SetConfig, func(m *proto.Msg) { m.PutConfig(&proto.Config{Offset: 0, Size: 8}) }); err == nil {
		t.Fatal("SET_CONFIG of capacity accepted")
	}
	if err := f.trySend(proto.SendRARP, func(m *proto.Msg) { m.PutU64(0) }); err == nil {
		t.Fatal("SEND_RARP accepted")
	}
	f.startAll()
	if _, st, _ := f.queues[0].do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusOK {
		t.Fatalf("IO after refused requests: %d", st)
	}
	// GET_CONFIG beyond the config space answers an empty payload.
	f.msg.SetRequest(proto.GetConfig, 0)
	f.msg.PutConfig(&proto.Config{Offset: 250, Size: 16})
	if err := proto.WriteMsg(f.conn, &f.msg, nil); err != nil {
		t.Fatal(err)
	}
	if err := proto.ReadReply(f.conn, &f.msg); err != nil || f.msg.Hdr.Size != 0 {
		t.Fatalf("GET_CONFIG out of range: %v, payload %d bytes", err, f.msg.Hdr.Size)
	}
}

// TestGetVringBaseStopsAndRestarts: GET_VRING_BASE waits for in-flight IO
// and reports where the ring stopped; a restart from that base goes on.
func TestGetVringBaseStopsAndRestarts(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 8192)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{qsize: 64})
	f.startAll()
	q := f.queues[0]
	var rs []*freq
	for i := range 20 {
		rs = append(rs, q.request(blk.Header{Type: blk.TypeOut, Sector: uint64(i)}, pattern(512, uint64(i)), 0))
	}
	q.kickNow()
	base := f.vringBase(q)
	// Everything the target popped completed before the reply.
	if q.reap(); len(q.done) != int(base) {
		t.Fatalf("base %d but %d completions", base, len(q.done))
	}
	// No more processing while stopped.
	extra := q.request(blk.Header{Type: blk.TypeIn}, nil, 512)
	q.kickNow()
	time.Sleep(20 * time.Millisecond)
	if q.reap(); len(q.done) != int(base) {
		t.Fatalf("stopped ring processed requests: %d done, base %d", len(q.done), base)
	}
	f.startQueue(q, base)
	q.kickNow()
	q.wait(append(rs, extra)...)
}

// TestSetVringEnableZeroStops pauses a ring with SET_VRING_ENABLE 0.
func TestSetVringEnableZeroStops(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 8192)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{})
	f.startAll()
	q := f.queues[0]
	q.do(blk.Header{Type: blk.TypeIn}, nil, 512)
	f.send(proto.SetVringEnable, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: 0, Num: 0}) })
	r := q.request(blk.Header{Type: blk.TypeIn}, nil, 512)
	q.kickNow()
	time.Sleep(20 * time.Millisecond)
	if q.reap() != 0 {
		t.Fatal("disabled ring processed a request")
	}
	f.send(proto.SetVringEnable, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: 0, Num: 1}) })
	q.kickNow()
	if l := q.wait(r)[0]; l != 513 {
		t.Fatalf("used %d", l)
	}
}

// TestHotRemove unregisters the bdev under a running session.
func TestHotRemove(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 8192)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{})
	f.startAll()
	q := f.queues[0]
	if _, st, _ := q.do(blk.Header{Type: blk.TypeIn}, nil, 4096); st != blk.StatusOK {
		t.Fatal(st)
	}
	gone := make(chan error, 1)
	if err := e.reg.Unregister("Malloc0", func(err error) { gone <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("bdev never destroyed: the controller did not close its descriptor")
	}
	for range 3 {
		if _, st, l := q.do(blk.Header{Type: blk.TypeIn}, nil, 4096); st != blk.StatusIOErr || l != 1 {
			t.Fatalf("read after hot remove: status %d used %d", st, l)
		}
	}
	if info := c.Info(); info.Bdev != "" {
		t.Fatalf("info still names bdev %q", info.Bdev)
	}
	if entries := e.tgt.configEntries(); len(entries) != 0 {
		t.Fatalf("save_config recreates a controller without bdev: %+v", entries)
	}
	// A new connection still works at the protocol level.
	f2 := dialFrontend(t, c.Socket(), feOpts{})
	f2.startAll()
	if _, st, _ := f2.queues[0].do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusIOErr {
		t.Fatalf("new session after hot remove: %d", st)
	}
}

// TestMemTableChanges adds a region, uses it, and replaces the table, all
// with IO in flight.
func TestMemTableChanges(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	disk := e.malloc("Malloc0", 512, 16384)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{})
	f.startAll()
	q := f.queues[0]

	// A second region: another memfd at another guest address.
	fd2, mp2, gpa2, mem2 := f.extraRegion(4 << 20)
	defer mp2.Unmap()
	defer syscall.Close(fd2)
	uaddr2 := virtq.HostAddr(mem2)
	reg := proto.MemRegion{GuestPhysAddr: gpa2, MemorySize: uint64(len(mem2)), UserspaceAddr: uaddr2}
	// In-flight writes while the table changes.
	var rs []*freq
	for i := range 32 {
		rs = append(rs, q.request(blk.Header{Type: blk.TypeOut, Sector: uint64(8 * i)}, pattern(4096, uint64(i)), 0))
	}
	q.kickNow()
	f.send(proto.AddMemReg, func(m *proto.Msg) { m.PutMemRegion(reg) }, fd2)
	q.wait(rs...)
	// Data in the new region.
	var hdr [blk.HeaderSize]byte
	blk.Header{Type: blk.TypeIn, Sector: 8}.Encode(&hdr)
	copy(mem2[0:], hdr[:])
	r := q.requestAt(gpa2, gpa2+512, 4096, gpa2+8192)
	q.kickNow()
	if l := q.wait(r)[0]; l != 4097 || mem2[8192] != blk.StatusOK || !bytes.Equal(mem2[512:512+4096], pattern(4096, 1)) {
		t.Fatalf("read into the added region: used %d status %d", l, mem2[8192])
	}
	// SET_MEM_TABLE with the same main region again (QEMU does this on
	// memory hotplug), with IO in flight; then remove the extra region.
	f.resetBufs()
	rs = rs[:0]
	for i := range 32 {
		rs = append(rs, q.request(blk.Header{Type: blk.TypeIn, Sector: uint64(8 * i)}, nil, 4096))
	}
	q.kickNow()
	f.setMemTable()
	for i, l := range q.wait(rs...) {
		if l != 4097 || !bytes.Equal(rs[i].data, disk.Memory()[i*4096:(i+1)*4096]) {
			t.Fatalf("read %d across SET_MEM_TABLE: used %d", i, l)
		}
	}
	// The SET_MEM_TABLE above dropped the extra region already; REM_MEM_REG
	// of a region that is not there is an error that closes the session.
	if err := f.trySend(proto.RemMemReg, func(m *proto.Msg) { m.PutMemRegion(reg) }); err == nil {
		t.Fatal("REM_MEM_REG of an unknown region accepted")
	}
}

// TestDeleteController covers delete with and without a connection.
func TestDeleteController(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 2048)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{})
	if err := e.tgt.DeleteController("vhost.0"); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("delete with a connection: %v", err)
	}
	f.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := e.tgt.DeleteController("vhost.0")
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(c.Socket()); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	// The bdev is free again.
	if err := e.reg.Unregister("Malloc0", nil); err != nil {
		t.Fatal(err)
	}
}

func TestCreateErrors(t *testing.T) {
	e := newTEnv(t, tenvOpts{reactors: 2})
	e.malloc("Malloc0", 512, 2048)
	e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	long := string(bytes.Repeat([]byte("x"), 120))
	for _, c := range []struct {
		o    BlkControllerOptions
		want error
	}{
		{BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"}, syscall.EEXIST},
		{BlkControllerOptions{Name: "vhost.1", Bdev: "Nope"}, syscall.ENODEV},
		{BlkControllerOptions{Name: "vhost.1", Bdev: "Malloc0", CPUMask: "0x4"}, syscall.EINVAL},
		{BlkControllerOptions{Name: "vhost.1", Bdev: "Malloc0", CPUMask: "zz"}, syscall.EINVAL},
		{BlkControllerOptions{Name: "a/b", Bdev: "Malloc0"}, syscall.EINVAL},
		{BlkControllerOptions{Name: long, Bdev: "Malloc0"}, syscall.EINVAL},
		{BlkControllerOptions{Name: "vhost.1", Bdev: "Malloc0", Transport: "vfio_user"}, syscall.EINVAL},
		{BlkControllerOptions{Name: "vhost.1", Bdev: "Malloc0", PackedRing: true}, ErrPackedRing},
	} {
		if _, err := e.tgt.CreateBlkController(c.o); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.o, err, c.want)
		}
	}
	// A regular file where the socket should go is not replaced.
	p := filepath.Join(e.dir, "file")
	os.WriteFile(p, nil, 0o600)
	if _, err := e.tgt.CreateBlkController(BlkControllerOptions{Name: "file", Bdev: "Malloc0"}); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("over a regular file: %v", err)
	}
	os.Remove(p)
	// A stale socket is.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(e.dir, "stale"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	c := e.ctrl(BlkControllerOptions{Name: "stale", Bdev: "Malloc0", CPUMask: "0x3"})
	if got := c.Info().CPUMask; got != "3" {
		t.Fatalf("cpumask %s", got)
	}
	c = e.ctrl(BlkControllerOptions{Name: "one", Bdev: "Malloc0", CPUMask: "[1]"})
	if got := c.Info().CPUMask; got != "2" {
		t.Fatalf("cpumask %s", got)
	}
}

// TestResetDeviceStatusAndNoAck: SET/GET_STATUS round trip, RESET_DEVICE
// stops the rings and forgets their setup, and a front-end that did not
// negotiate REPLY_ACK (requests answered only when they have a reply of
// their own) is served the same.
func TestResetDeviceStatusAndNoAck(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 4096)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{noAck: true})
	f.startAll()
	q := f.queues[0]
	if _, st, _ := q.do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusOK {
		t.Fatal(st)
	}
	// STATUS and RESET_DEVICE were not negotiated by this front-end's
	// SET_PROTOCOL_FEATURES above; negotiate them now.
	f.send(proto.SetProtocolFeatures, func(m *proto.Msg) {
		m.PutU64(proto.ProtocolMQ | proto.ProtocolConfig | proto.ProtocolStatus | proto.ProtocolResetDevice)
	})
	f.send(proto.SetStatus, func(m *proto.Msg) { m.PutU64(0x0f) })
	if st := f.getU64(proto.GetStatus); st != 0x0f {
		t.Fatalf("GET_STATUS = %#x", st)
	}
	f.send(proto.ResetDevice, nil)
	if st := f.getU64(proto.GetStatus); st != 0 {
		t.Fatalf("GET_STATUS after reset = %#x", st)
	}
	waitFor(t, "rings stopped by RESET_DEVICE", func() bool { return !c.Info().Sessions[0].Started })
	// Set up again from scratch and go on from where the ring is.
	f.send(proto.SetFeatures, func(m *proto.Msg) { m.PutU64(f.features) })
	f.startQueue(q, q.usedIdx())
	if _, st, _ := q.do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusOK {
		t.Fatalf("IO after RESET_DEVICE and a new setup: %d", st)
	}
}

// TestAddMemRegFromEmpty builds the memory table with ADD_MEM_REG only, as
// QEMU does once CONFIGURE_MEM_SLOTS is negotiated.
func TestAddMemRegFromEmpty(t *testing.T) {
	e := newTEnv(t, tenvOpts{})
	e.malloc("Malloc0", 512, 4096)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := newFrontend(t, feOpts{})
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: c.Socket(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	f.offered = f.getU64(proto.GetFeatures)
	f.protocol = proto.ProtocolReplyAck | proto.ProtocolConfigureMemSlots | proto.ProtocolMQ
	f.msg.SetRequest(proto.SetProtocolFeatures, 0)
	f.msg.PutU64(f.protocol)
	if err := proto.WriteMsg(f.conn, &f.msg, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.getU64(proto.GetMaxMemSlots); n != MaxMemSlots {
		t.Fatalf("GET_MAX_MEM_SLOTS = %d", n)
	}
	f.features = virtq.FeatureVersion1 | proto.FeatureProtocolFeatures
	f.send(proto.SetFeatures, func(m *proto.Msg) { m.PutU64(f.features) })
	reg := proto.MemRegion{GuestPhysAddr: f.gpa, MemorySize: uint64(len(f.mem)), UserspaceAddr: f.uaddr}
	f.send(proto.AddMemReg, func(m *proto.Msg) { m.PutMemRegion(reg) }, f.memfd)
	f.startAll()
	if _, st, _ := f.queues[0].do(blk.Header{Type: blk.TypeIn}, nil, 512); st != blk.StatusOK {
		t.Fatal(st)
	}
	// Removing the only region while the ring runs is refused (and that
	// is fatal for the session).
	if err := f.trySend(proto.RemMemReg, func(m *proto.Msg) { m.PutMemRegion(reg) }); err == nil {
		t.Fatal("REM_MEM_REG of the ring's region accepted while it runs")
	}
}
