//go:build linux

package target

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
)

func TestConnectIdentify(t *testing.T) {
	e := newEnv(t, envOpts{})
	h, cntlid := e.admin(tcptest.Options{})
	if cntlid != 1 {
		t.Errorf("first cntlid %d, want 1 (min_cntlid)", cntlid)
	}
	v, cqe, err := h.PropGet(proto.PropCAP)
	mustStatus(t, "get CAP", cqe, err, proto.StatusSuccess)
	if c := proto.CAP(v); c.MQES() != 127 || !c.CQR() || c.CSS()&proto.CAPCSSNVM == 0 {
		t.Errorf("CAP %#x: MQES %d CQR %v CSS %#x", v, c.MQES(), c.CQR(), c.CSS())
	}
	v, cqe, err = h.PropGet(proto.PropVS)
	mustStatus(t, "get VS", cqe, err, proto.StatusSuccess)
	if proto.VS(v) != proto.MakeVS(1, 3, 0) {
		t.Errorf("VS %#x", v)
	}

	buf := make([]byte, 4096)
	cqe, err = h.Identify(proto.CNSController, 0, buf)
	mustStatus(t, "identify controller", cqe, err, proto.StatusSuccess)
	var ic proto.IdentifyController
	if err := ic.Decode(buf); err != nil {
		t.Fatal(err)
	}
	if ic.SN != "SPDK00000000000001" || ic.MN != DefaultModel || ic.SubNQN != testNQN || ic.CNTLID != cntlid ||
		ic.CNTRLTYPE != proto.CtrlTypeIO || ic.NN != DefaultMaxNamespaces || ic.IOCCSZ != (64+4096)/16 ||
		ic.MDTS != 5 || ic.ICDOFF != 0 || ic.MSDBD != 1 || ic.OAES&proto.OAESNamespaceAttr == 0 {
		t.Errorf("identify controller: %+v", ic)
	}

	cqe, err = h.Identify(proto.CNSNamespace, 1, buf)
	mustStatus(t, "identify ns", cqe, err, proto.StatusSuccess)
	var in proto.IdentifyNamespace
	if err := in.Decode(buf); err != nil {
		t.Fatal(err)
	}
	if in.NSZE != 32768 || in.BlockSize() != 512 || in.NGUID == ([16]byte{}) {
		t.Errorf("identify ns: NSZE %d bs %d NGUID %x", in.NSZE, in.BlockSize(), in.NGUID)
	}
	cqe, err = h.Identify(proto.CNSNamespace, 2, buf)
	mustStatus(t, "identify inactive ns", cqe, err, proto.StatusSuccess)
	if !bytes.Equal(buf, make([]byte, 4096)) {
		t.Error("inactive namespace is not all zeroes")
	}
	cqe, err = h.Identify(proto.CNSNamespace, 1000, buf)
	mustStatus(t, "identify ns above NN", cqe, err, proto.StatusInvalidNamespace)

	cqe, err = h.Identify(proto.CNSActiveNSList, 0, buf)
	mustStatus(t, "active ns list", cqe, err, proto.StatusSuccess)
	ids, err := proto.DecodeNSList(buf, nil)
	if err != nil || len(ids) != 1 || ids[0] != 1 {
		t.Errorf("active ns list %v %v", ids, err)
	}
	cqe, err = h.Identify(proto.CNSNSDescriptorList, 1, buf)
	mustStatus(t, "ns descriptors", cqe, err, proto.StatusSuccess)
	var d proto.NSDescriptors
	if err := d.Decode(buf); err != nil || !d.HasNGUID || !d.HasUUID || d.NGUID != in.NGUID {
		t.Errorf("ns descriptors %+v %v", d, err)
	}
	cqe, err = h.Identify(0x55, 0, buf)
	mustStatus(t, "identify bad cns", cqe, err, proto.StatusInvalidField)

	// Features.
	var sqe proto.SQE
	sqe.PutSetFeatures(&proto.FeaturesCmd{FID: proto.FeatNumberOfQueues, CDW11: proto.NumQueues(3, 3)})
	cqe, err = h.Exec(&sqe, nil, nil)
	mustStatus(t, "set number of queues", cqe, err, proto.StatusSuccess)
	if nsq, ncq := proto.ParseNumQueues(cqe.DW0); nsq != 126 || ncq != 126 {
		t.Errorf("number of queues %d %d", nsq, ncq)
	}
	sqe = proto.SQE{}
	sqe.PutGetFeatures(&proto.FeaturesCmd{FID: proto.FeatKeepAliveTimer})
	cqe, err = h.Exec(&sqe, nil, nil)
	mustStatus(t, "get kato", cqe, err, proto.StatusSuccess)
	sqe = proto.SQE{}
	sqe.PutGetFeatures(&proto.FeaturesCmd{FID: proto.FeatHostIdentifier, CDW11: 1})
	hid := make([]byte, 16)
	cqe, err = h.Exec(&sqe, nil, hid)
	mustStatus(t, "get host id", cqe, err, proto.StatusSuccess)
	if !bytes.Equal(hid, testHostID[:]) {
		t.Errorf("host id %x", hid)
	}
	sqe = proto.SQE{Opcode: proto.AdminKeepAlive}
	cqe, err = h.Exec(&sqe, nil, nil)
	mustStatus(t, "keep alive", cqe, err, proto.StatusSuccess)
	sqe = proto.SQE{Opcode: 0xc1}
	cqe, err = h.Exec(&sqe, nil, nil)
	mustStatus(t, "vendor opcode", cqe, err, proto.StatusInvalidOpcode)

	// Logs.
	lp := make([]byte, 512)
	for _, lid := range []uint8{proto.LIDHealth, proto.LIDFirmwareSlot, proto.LIDErrorInfo} {
		cqe, err = h.GetLogPage(lid, proto.NSIDBroadcast, 0, lp)
		mustStatus(t, "get log page", cqe, err, proto.StatusSuccess)
	}
	cqe, err = h.GetLogPage(0x42, 0, 0, lp)
	mustStatus(t, "get bad log page", cqe, err, proto.StatusInvalidLogPage)

	// A second Connect on a connected queue is a sequence error.
	cqe, err = h.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	mustStatus(t, "second connect", cqe, err, proto.StatusCommandSequenceError)

	// A second controller gets the next ID.
	_, c2 := e.admin(tcptest.Options{})
	if c2 != cntlid+1 {
		t.Errorf("second cntlid %d", c2)
	}
	if got := len(e.tgt.Subsystem(testNQN).Controllers()); got != 2 {
		t.Errorf("%d controllers", got)
	}
}

func TestIO(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    tcptest.Options
	}{
		{"plain", tcptest.Options{}},
		{"hdgst", tcptest.Options{HeaderDigest: true}},
		{"digests", tcptest.Options{HeaderDigest: true, DataDigest: true}},
		{"digests-hpda", tcptest.Options{HeaderDigest: true, DataDigest: true, HPDA: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			_, cntlid := e.admin(tc.o)
			q1 := e.io(tc.o, cntlid, 1)
			q2 := e.io(tc.o, cntlid, 2)
			if got := e.tgt.Subsystem(testNQN).Controllers()[0].NumIOQPairs(); got != 2 {
				t.Fatalf("%d io qpairs", got)
			}
			// Connections go to the reactors in turn: admin, q1, q2.
			qps := e.tgt.Subsystem(testNQN).Controllers()[0].QPairs()
			if qps[0].Thread == qps[1].Thread || qps[1].Thread == qps[2].Thread {
				t.Errorf("queues not spread over the reactors: %s %s %s", qps[0].Thread, qps[1].Thread, qps[2].Thread)
			}
			for i, n := range []int{512, 4096, 8192, 65536, 131072} {
				writeRead(t, q1, uint64(i*512), pattern(n, byte(i)))
				writeRead(t, q2, uint64(i*512+256), pattern(n, byte(i+100)))
			}
			// Data written on one queue reads back on the other.
			data := pattern(4096, 9)
			w := tcptest.RW(proto.IOWrite, 1, 5000, 8)
			cqe, err := q1.Exec(&w, data, nil)
			mustStatus(t, "write q1", cqe, err, proto.StatusSuccess)
			got := make([]byte, 4096)
			r := tcptest.RW(proto.IORead, 1, 5000, 8)
			cqe, err = q2.Exec(&r, nil, got)
			mustStatus(t, "read q2", cqe, err, proto.StatusSuccess)
			if !bytes.Equal(got, data) {
				t.Fatal("cross-queue mismatch")
			}
			// Several commands in flight on one queue.
			bufs := make([][]byte, 16)
			for i := range bufs {
				bufs[i] = make([]byte, 4096)
				r := tcptest.RW(proto.IORead, 1, 5000, 8)
				if _, err := q1.Submit(&r, nil, bufs[i]); err != nil {
					t.Fatal(err)
				}
			}
			for range bufs {
				cqe, err := q1.Reap()
				mustStatus(t, "queued read", cqe, err, proto.StatusSuccess)
			}
			for i := range bufs {
				if !bytes.Equal(bufs[i], data) {
					t.Fatalf("queued read %d mismatch", i)
				}
			}
		})
	}
}

func TestIOCommands(t *testing.T) {
	e := newEnv(t, envOpts{})
	_, cntlid := e.admin(tcptest.Options{})
	q := e.io(tcptest.Options{}, cntlid, 1)
	data := pattern(4096, 1)
	writeRead(t, q, 100, data)

	// Compare: equal, then different.
	c := tcptest.RW(proto.IOCompare, 1, 100, 8)
	cqe, err := q.Exec(&c, data, nil)
	mustStatus(t, "compare equal", cqe, err, proto.StatusSuccess)
	c = tcptest.RW(proto.IOCompare, 1, 100, 8)
	cqe, err = q.Exec(&c, pattern(4096, 2), nil)
	mustStatus(t, "compare different", cqe, err, proto.StatusCompareFailure)

	// Write Zeroes.
	wz := tcptest.RW(proto.IOWriteZeroes, 1, 100, 4)
	cqe, err = q.Exec(&wz, nil, nil)
	mustStatus(t, "write zeroes", cqe, err, proto.StatusSuccess)
	got := make([]byte, 4096)
	r := tcptest.RW(proto.IORead, 1, 100, 8)
	cqe, err = q.Exec(&r, nil, got)
	mustStatus(t, "read", cqe, err, proto.StatusSuccess)
	if !bytes.Equal(got[:2048], make([]byte, 2048)) || !bytes.Equal(got[2048:], data[2048:]) {
		t.Fatal("write zeroes did not zero exactly 4 blocks")
	}

	// Flush.
	var f proto.SQE
	f.PutFlush(0, 1)
	cqe, err = q.Exec(&f, nil, nil)
	mustStatus(t, "flush", cqe, err, proto.StatusSuccess)

	// Dataset Management deallocate of two ranges.
	writeRead(t, q, 200, data)
	ranges := make([]byte, 32)
	(&proto.DSMRange{SLBA: 200, NLB: 2}).Encode(ranges)
	(&proto.DSMRange{SLBA: 204, NLB: 2}).Encode(ranges[16:])
	var d proto.SQE
	d.PutDSM(&proto.DSMCmd{NSID: 1, Ranges: 2, Attrs: proto.DSMAttrDeallocate})
	cqe, err = q.Exec(&d, ranges, nil)
	mustStatus(t, "dsm", cqe, err, proto.StatusSuccess)
	(&proto.DSMRange{SLBA: 32760, NLB: 100}).Encode(ranges[16:])
	d = proto.SQE{}
	d.PutDSM(&proto.DSMCmd{NSID: 1, Ranges: 2, Attrs: proto.DSMAttrDeallocate})
	cqe, err = q.Exec(&d, ranges, nil)
	mustStatus(t, "dsm out of range", cqe, err, proto.StatusLBAOutOfRange)

	// LBA range and namespace checks.
	r = tcptest.RW(proto.IORead, 1, 32768-4, 8)
	cqe, err = q.Exec(&r, nil, got)
	mustStatus(t, "read past the end", cqe, err, proto.StatusLBAOutOfRange)
	w := tcptest.RW(proto.IOWrite, 1, 1<<40, 8)
	cqe, err = q.Exec(&w, data, nil)
	mustStatus(t, "write past the end", cqe, err, proto.StatusLBAOutOfRange)
	r = tcptest.RW(proto.IORead, 7, 0, 8)
	cqe, err = q.Exec(&r, nil, got)
	mustStatus(t, "read bad nsid", cqe, err, proto.StatusInvalidNamespace)
	r = tcptest.RW(proto.IORead, 1, 0, 16)
	cqe, err = q.Exec(&r, nil, got) // 8 KiB asked, 4 KiB SGL
	mustStatus(t, "read with short SGL", cqe, err, proto.StatusDataSGLLengthInvalid)
	u := proto.SQE{Opcode: 0x7e, NSID: 1}
	cqe, err = q.Exec(&u, nil, nil)
	mustStatus(t, "unknown io opcode", cqe, err, proto.StatusInvalidOpcode)
	big := tcptest.RW(proto.IORead, 1, 0, 512)
	cqe, err = q.Exec(&big, nil, make([]byte, 256<<10))
	mustStatus(t, "read above max_io_size", cqe, err, proto.StatusDataSGLLengthInvalid)
	// The queue still works.
	writeRead(t, q, 300, data)
}

func TestAllowList(t *testing.T) {
	e := newEnv(t, envOpts{})
	h := e.dial(tcptest.Options{})
	cqe, err := h.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, otherNQN, testHostID)
	mustStatus(t, "connect from a host not on the list", cqe, err, proto.StatusConnectInvalidHost)
	if !cqe.Status.DNR() {
		t.Error("invalid host without DNR")
	}
	// Unknown subsystem: Connect Invalid Parameters naming SUBNQN.
	cqe, err = h.Connect(0, 31, 0, proto.CNTLIDDynamic, "nqn.2016-06.io.spdk:nope", hostNQN, testHostID)
	mustStatus(t, "connect to unknown subsystem", cqe, err, proto.StatusConnectInvalidParameters)
	if in, off := proto.ConnectInvalidParam(cqe.DW0); !in || off != proto.ConnectDataOffSubNQN {
		t.Errorf("IPO %v %d", in, off)
	}
	// SQSIZE 0 and above max_aq_depth.
	cqe, err = h.Connect(0, 0, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	mustStatus(t, "sqsize 0", cqe, err, proto.StatusConnectInvalidParameters)
	cqe, err = h.Connect(0, 4096, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	mustStatus(t, "sqsize too big", cqe, err, proto.StatusConnectInvalidParameters)
	if in, off := proto.ConnectInvalidParam(cqe.DW0); in || off != proto.ConnectOffSQSize {
		t.Errorf("IPO %v %d", in, off)
	}
	// I/O queue of an unknown controller.
	cqe, err = h.Connect(1, 31, 0, 77, testNQN, hostNQN, testHostID)
	mustStatus(t, "io connect unknown cntlid", cqe, err, proto.StatusConnectInvalidParameters)

	s := e.tgt.Subsystem(testNQN)
	if err := s.AddHost(otherNQN); err != nil {
		t.Fatal(err)
	}
	cqe, err = h.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, otherNQN, testHostID)
	mustStatus(t, "connect after add_host", cqe, err, proto.StatusSuccess)
	cntlid, _ := proto.ConnectResp(cqe.DW0)
	if err := h.Enable(); err != nil {
		t.Fatal(err)
	}
	// An I/O queue with another host NQN is refused.
	h2 := e.dial(tcptest.Options{})
	cqe, err = h2.Connect(1, 31, 0, cntlid, testNQN, hostNQN, testHostID)
	mustStatus(t, "io connect with a different host", cqe, err, proto.StatusConnectInvalidParameters)

	// Removing the host disconnects its controller.
	if err := s.RemoveHost(otherNQN); err != nil {
		t.Fatal(err)
	}
	if _, err := tcptest.ReadAll(h.Conn()); err != nil {
		t.Fatalf("after remove_host: %v", err)
	}
	waitFor(t, 2*time.Second, "controller gone", func() bool { return len(s.Controllers()) == 0 })

	// allow_any_host.
	s.SetAllowAnyHost(true)
	h3 := e.dial(tcptest.Options{})
	cqe, err = h3.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, otherNQN, testHostID)
	mustStatus(t, "connect with allow_any_host", cqe, err, proto.StatusSuccess)
}

func TestCommandsBeforeConnect(t *testing.T) {
	e := newEnv(t, envOpts{})
	h := e.dial(tcptest.Options{})
	buf := make([]byte, 4096)
	cqe, err := h.Identify(proto.CNSController, 0, buf)
	mustStatus(t, "identify before connect", cqe, err, proto.StatusCommandSequenceError)
	r := tcptest.RW(proto.IORead, 1, 0, 8)
	cqe, err = h.Exec(&r, nil, buf)
	mustStatus(t, "read before connect", cqe, err, proto.StatusCommandSequenceError)
	_, cqe, err = h.PropGet(proto.PropCSTS)
	mustStatus(t, "property get before connect", cqe, err, proto.StatusCommandSequenceError)
	// Admin commands before CC.EN.
	cqe, err = h.Connect(0, 31, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	mustStatus(t, "connect", cqe, err, proto.StatusSuccess)
	cqe, err = h.Identify(proto.CNSController, 0, buf)
	mustStatus(t, "identify before CC.EN", cqe, err, proto.StatusCommandSequenceError)
	// I/O queue before CC.EN.
	cntlid, _ := proto.ConnectResp(cqe.DW0)
	_ = cntlid
}

func TestKeepAliveTimeout(t *testing.T) {
	e := newEnv(t, envOpts{topts: func(o *nvmf.TransportOpts) { o.KAS = 1; o.MinKATOMs = 100 }})
	// With keep alives the controller survives.
	live := e.dial(tcptest.Options{})
	cqe, err := live.Connect(0, 31, 300, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	mustStatus(t, "connect", cqe, err, proto.StatusSuccess)
	if err := live.Enable(); err != nil {
		t.Fatal(err)
	}
	// Without them it is torn down, I/O queue included.
	h := e.dial(tcptest.Options{})
	cqe, err = h.Connect(0, 31, 300, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	mustStatus(t, "connect", cqe, err, proto.StatusSuccess)
	cntlid, _ := proto.ConnectResp(cqe.DW0)
	if err := h.Enable(); err != nil {
		t.Fatal(err)
	}
	q := e.io(tcptest.Options{}, cntlid, 1)
	start := time.Now()
	for time.Since(start) < 1200*time.Millisecond {
		ka := proto.SQE{Opcode: proto.AdminKeepAlive}
		cqe, err := live.Exec(&ka, nil, nil)
		mustStatus(t, "keep alive", cqe, err, proto.StatusSuccess)
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := tcptest.ReadAll(h.Conn()); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("admin read: %v", err)
	}
	if _, err := tcptest.ReadAll(q.Conn()); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("io read: %v", err)
	}
	s := e.tgt.Subsystem(testNQN)
	waitFor(t, 2*time.Second, "one controller left", func() bool { return len(s.Controllers()) == 1 })
	ka := proto.SQE{Opcode: proto.AdminKeepAlive}
	cqe, err = live.Exec(&ka, nil, nil)
	mustStatus(t, "keep alive on the live controller", cqe, err, proto.StatusSuccess)
}

func TestIPv6Listener(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	e := newEnv(t, envOpts{})
	a, err := nvmf.NormalizeListenAddr("tcp", "ipv6", "::1", port)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.tgt.Subsystem(testNQN).AddListener(a); err != nil {
		t.Fatal(err)
	}
	e.hostport = net.JoinHostPort("::1", port)
	_, cntlid := e.admin(tcptest.Options{})
	q := e.io(tcptest.Options{}, cntlid, 1)
	writeRead(t, q, 0, pattern(4096, 6))
	qp := e.tgt.Subsystem(testNQN).Controllers()[0].QPairs()[1]
	if qp.Addrs.Listen != a || qp.Addrs.Peer.AdrFam != "IPv6" || qp.Addrs.Peer.TrAddr != "::1" {
		t.Errorf("qpair addresses %+v", qp.Addrs)
	}
}

func TestTargetClose(t *testing.T) {
	e := newEnv(t, envOpts{})
	h, cntlid := e.admin(tcptest.Options{})
	q := e.io(tcptest.Options{}, cntlid, 1)
	s := e.tgt.Subsystem(testNQN)
	if err := e.tgt.Close(); err != nil {
		t.Fatal(err)
	}
	tcptest.ReadAll(h.Conn())
	tcptest.ReadAll(q.Conn())
	if n := len(s.Controllers()); n != 0 {
		t.Errorf("%d controllers after Close", n)
	}
	if _, err := tcptest.Dial(e.hostport, tcptest.Options{Timeout: time.Second}); err == nil {
		t.Error("still accepting after Close")
	}
	// The bdev can go now: no descriptor is left open.
	done := make(chan error, 1)
	if err := e.reg.Unregister("Malloc0", func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Malloc0 not destroyed: a descriptor is still open")
	}
}

// TestSlotBackpressure: a host with more commands in flight than the
// connection has request slots is served as slots free up (reading stops
// meanwhile), not dropped.
func TestSlotBackpressure(t *testing.T) {
	e := newEnv(t, envOpts{topts: func(o *nvmf.TransportOpts) { o.MaxQueueDepth = 8; o.MaxAQDepth = 8 }})
	h := e.dial(tcptest.Options{})
	cqe, err := h.Connect(0, 7, 0, proto.CNTLIDDynamic, testNQN, hostNQN, testHostID)
	mustStatus(t, "connect", cqe, err, proto.StatusSuccess)
	cntlid, _ := proto.ConnectResp(cqe.DW0)
	if err := h.Enable(); err != nil {
		t.Fatal(err)
	}
	q := e.dial(tcptest.Options{})
	cqe, err = q.Connect(1, 7, 0, cntlid, testNQN, hostNQN, testHostID)
	mustStatus(t, "io connect", cqe, err, proto.StatusSuccess)
	data := pattern(65536, 3)
	w := tcptest.RW(proto.IOWrite, 1, 0, 128)
	cqe, err = q.Exec(&w, data, nil)
	mustStatus(t, "write", cqe, err, proto.StatusSuccess)
	const n = 64
	bufs := make([][]byte, n)
	sqes := make([]proto.SQE, n)
	for i := range bufs {
		bufs[i] = make([]byte, 65536)
		sqes[i] = tcptest.RW(proto.IORead, 1, 0, 128)
		if _, err := q.Submit(&sqes[i], nil, bufs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for range bufs {
		cqe, err := q.Reap()
		mustStatus(t, "read", cqe, err, proto.StatusSuccess)
	}
	for i := range bufs {
		if !bytes.Equal(bufs[i], data) {
			t.Fatalf("read %d mismatch", i)
		}
	}
}
