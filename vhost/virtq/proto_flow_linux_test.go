package virtq_test

import (
	"encoding/binary"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

// TestVhostUserFlow plays both ends of a minimal vhost-user exchange over a
// socketpair: a front-end that owns a memfd and a driver ring, and a
// back-end that maps the memory from SET_MEM_TABLE, starts a Queue from
// SET_VRING_NUM/ADDR/BASE (user addresses) and serves one request. It
// shows how proto and virtq fit together for the session layer.
func TestVhostUserFlow(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "sock")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	front, back := conn(fds[0]), conn(fds[1])

	// Front-end: shared memory and a ring in it.
	const size, gpa, qsize = 1 << 20, 0x100000000, 64
	memfd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(memfd)
	if err := unix.Ftruncate(memfd, size); err != nil {
		t.Fatal(err)
	}
	fm, err := virtq.MapFD(memfd, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	defer fm.Unmap()
	host := fm.Bytes()
	uaddr := virtq.HostAddr(host)
	fmem, err := virtq.NewGuestMemory(virtq.NewRegion(gpa, uaddr, host))
	if err != nil {
		t.Fatal(err)
	}
	lay, _ := virtq.NewLayout(qsize, 4)
	drv, err := virtq.NewDriver(fmem, virtq.Config{Size: qsize, Desc: gpa + lay.DescOff, Avail: gpa + lay.AvailOff, Used: gpa + lay.UsedOff})
	if err != nil {
		t.Fatal(err)
	}

	var m proto.Msg
	send := func(fds ...int) {
		t.Helper()
		if err := proto.WriteMsg(front, &m, fds); err != nil {
			t.Fatal(err)
		}
	}
	mt := proto.Memory{NRegions: 1}
	mt.Regions[0] = proto.MemRegion{GuestPhysAddr: gpa, MemorySize: size, UserspaceAddr: uaddr}
	m.SetRequest(proto.SetMemTable, proto.FlagNeedReply)
	m.PutMemory(&mt)
	send(memfd)
	m.SetRequest(proto.SetVringNum, 0)
	m.PutVringState(proto.VringState{Index: 0, Num: qsize})
	send()
	m.SetRequest(proto.SetVringAddr, 0)
	m.PutVringAddr(proto.VringAddr{Desc: uaddr + lay.DescOff, Avail: uaddr + lay.AvailOff, Used: uaddr + lay.UsedOff})
	send()
	m.SetRequest(proto.SetVringBase, 0)
	m.PutVringState(proto.VringState{Index: 0, Num: 0})
	send()

	// Back-end.
	var in proto.Msg
	var mem *virtq.GuestMemory
	cfg := virtq.Config{Addrs: virtq.UserAddrs}
	var base uint16
	for range 4 {
		if err := proto.ReadRequest(back, &in); err != nil {
			t.Fatal(err)
		}
		switch in.Hdr.Request {
		case proto.SetMemTable:
			var tbl proto.Memory
			if err := in.Memory(&tbl); err != nil {
				t.Fatal(err)
			}
			var regions []virtq.Region
			for i, r := range tbl.Used() {
				fd := in.TakeFD(i)
				reg, err := virtq.MapRegion(fd, virtq.RegionDesc{GuestAddr: r.GuestPhysAddr, Size: r.MemorySize, UserAddr: r.UserspaceAddr, MmapOffset: r.MmapOffset})
				unix.Close(fd)
				if err != nil {
					t.Fatal(err)
				}
				regions = append(regions, reg)
			}
			if mem, err = virtq.NewGuestMemory(regions...); err != nil {
				t.Fatal(err)
			}
			var ack proto.Msg
			ack.SetReply(in.Hdr.Request)
			ack.PutU64(0)
			if err := proto.WriteMsg(back, &ack, nil); err != nil {
				t.Fatal(err)
			}
		case proto.SetVringNum:
			s, _ := in.VringState()
			cfg.Size = uint16(s.Num)
		case proto.SetVringAddr:
			a, _ := in.VringAddr()
			cfg.Desc, cfg.Avail, cfg.Used = a.Desc, a.Avail, a.Used
		case proto.SetVringBase:
			s, _ := in.VringState()
			base = uint16(s.Num)
		}
	}
	defer mem.Unmap()
	if err := proto.ReadReply(front, &m); err != nil {
		t.Fatal(err)
	}
	if v, err := m.U64(); err != nil || v != 0 || m.Hdr.Request != proto.SetMemTable {
		t.Fatalf("ack %v %d %v", m.Hdr, v, err)
	}
	q, err := virtq.NewQueue(mem, cfg, base)
	if err != nil {
		t.Fatal(err)
	}

	// One request: the back-end sees the front-end's bytes through its
	// own mapping and answers into the front-end's buffer.
	copy(host[0x1000:], "ping")
	if _, err := drv.Add([]virtq.Buf{{Addr: gpa + 0x1000, Len: 4}}, []virtq.Buf{{Addr: gpa + 0x2000, Len: 4}}); err != nil {
		t.Fatal(err)
	}
	drv.Publish()
	heads := make([]uint16, 8)
	c := virtq.NewChain(4)
	if n, err := q.Pop(heads); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if err := q.Walk(heads[0], c); err != nil {
		t.Fatal(err)
	}
	if string(c.Out()[0]) != "ping" {
		t.Fatalf("back-end read %q", c.Out()[0])
	}
	copy(c.In()[0], "pong")
	q.Push(heads[0], 4)
	q.Publish()
	used := make([]virtq.Used, 1)
	if n, err := drv.Reap(used); n != 1 || err != nil || used[0].Len != 4 {
		t.Fatal(n, err, used)
	}
	if string(host[0x2000:0x2004]) != "pong" || binary.LittleEndian.Uint16(host[lay.UsedOff+2:]) != 1 {
		t.Fatal("answer not in front-end memory")
	}
}
