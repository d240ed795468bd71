//go:build linux

package target

import (
	"testing"
	"time"

	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
)

func TestAsyncEventNamespaceChange(t *testing.T) {
	e := newEnv(t, envOpts{})
	h, _ := e.admin(tcptest.Options{})
	var sqe proto.SQE
	sqe.PutSetFeatures(&proto.FeaturesCmd{FID: proto.FeatAsyncEventConfig, CDW11: proto.AECNamespaceAttr})
	cqe, err := h.Exec(&sqe, nil, nil)
	mustStatus(t, "set AEC", cqe, err, proto.StatusSuccess)
	aer := proto.SQE{Opcode: proto.AdminAsyncEventRequest}
	aerCID, err := h.Submit(&aer, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Add a namespace: the held AER completes with a notice.
	e.addMalloc("Malloc1", 4096, 1024)
	nsid, err := e.tgt.Subsystem(testNQN).AddNamespace(NamespaceConfig{BdevName: "Malloc1", NSID: 5,
		EUI64: "0011223344556677", UUID: "ceccf520-691e-4b46-9546-34af789907c5"})
	if err != nil || nsid != 5 {
		t.Fatal(nsid, err)
	}
	cqe, err = h.Reap()
	mustStatus(t, "AER", cqe, err, proto.StatusSuccess)
	ev := proto.ParseAsyncEvent(cqe.DW0)
	if cqe.CID != aerCID || ev.Type != proto.AETypeNotice || ev.Info != proto.AENNamespaceAttrChanged || ev.LID != proto.LIDChangedNSList {
		t.Fatalf("AER completion %+v %+v", cqe, ev)
	}
	list := make([]byte, 4096)
	cqe, err = h.GetLogPage(proto.LIDChangedNSList, proto.NSIDBroadcast, 0, list)
	mustStatus(t, "changed ns list", cqe, err, proto.StatusSuccess)
	ids, over, err := proto.DecodeChangedNSList(list, nil)
	if err != nil || over || len(ids) != 1 || ids[0] != 5 {
		t.Fatalf("changed ns list %v %v %v", ids, over, err)
	}
	buf := make([]byte, 4096)
	cqe, err = h.Identify(proto.CNSNSDescriptorList, 5, buf)
	mustStatus(t, "ns descriptors", cqe, err, proto.StatusSuccess)
	var d proto.NSDescriptors
	if err := d.Decode(buf); err != nil || !d.HasEUI64 || d.EUI64 != [8]byte{0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77} || d.UUID[0] != 0xce {
		t.Fatalf("descriptors %+v %v", d, err)
	}
	cqe, err = h.Identify(proto.CNSNamespace, 5, buf)
	mustStatus(t, "identify ns 5", cqe, err, proto.StatusSuccess)
	var in proto.IdentifyNamespace
	if err := in.Decode(buf); err != nil || in.BlockSize() != 4096 || in.NSZE != 1024 {
		t.Fatalf("identify ns 5: %+v %v", in, err)
	}
	// Removing it (here by deleting the bdev) raises the next notice.
	if _, err := h.Submit(&aer, nil, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	if err := e.reg.Unregister("Malloc1", func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	cqe, err = h.Reap()
	mustStatus(t, "AER after remove", cqe, err, proto.StatusSuccess)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bdev not destroyed")
	}
	cqe, err = h.Identify(proto.CNSActiveNSList, 0, buf)
	mustStatus(t, "active ns", cqe, err, proto.StatusSuccess)
	if ids, _ := proto.DecodeNSList(buf, nil); len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("active namespaces %v", ids)
	}
	// AER limit: AERL+1 held at most.
	var held []uint16
	for i := 0; i <= aerl; i++ {
		cid, err := h.Submit(&aer, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, cid)
	}
	cqe, err = h.Exec(&aer, nil, nil)
	mustStatus(t, "AER over the limit", cqe, err, proto.StatusAERLimitExceeded)
	// Abort one held AER: it completes with Abort Requested, the Abort
	// with DW0 bit 0 clear.
	ab := proto.SQE{Opcode: proto.AdminAbort, CDW10: uint32(held[1]) << 16}
	abCID, err := h.Submit(&ab, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for seen := 0; seen < 2; seen++ {
		cqe, err := h.Reap()
		if err != nil {
			t.Fatal(err)
		}
		switch cqe.CID {
		case held[1]:
			if cqe.Status.Code() != proto.StatusAbortRequested {
				t.Errorf("aborted AER: %v", cqe.Status)
			}
		case abCID:
			if !cqe.Status.Success() || cqe.DW0&1 != 0 {
				t.Errorf("abort: %v DW0 %#x", cqe.Status, cqe.DW0)
			}
		default:
			t.Errorf("unexpected completion CID %d", cqe.CID)
		}
	}
	// Abort of something unknown: not aborted.
	ab = proto.SQE{Opcode: proto.AdminAbort, CDW10: 1<<16 | 1}
	cqe, err = h.Exec(&ab, nil, nil)
	mustStatus(t, "abort unknown", cqe, err, proto.StatusSuccess)
	if cqe.DW0&1 == 0 {
		t.Error("abort of an I/O command reported as aborted")
	}
}

func TestResetAndShutdown(t *testing.T) {
	e := newEnv(t, envOpts{})
	h, cntlid := e.admin(tcptest.Options{})
	q := e.io(tcptest.Options{}, cntlid, 1)
	// CC.EN=0: the I/O queue goes, then RDY drops.
	cqe, err := h.PropSet(proto.PropCC, 0)
	mustStatus(t, "CC.EN=0", cqe, err, proto.StatusSuccess)
	if _, err := tcptest.ReadAll(q.Conn()); err != nil {
		t.Logf("io queue: %v", err)
	}
	waitFor(t, 2*time.Second, "RDY=0", func() bool {
		v, cqe, err := h.PropGet(proto.PropCSTS)
		return err == nil && cqe.Status.Success() && !proto.CSTS(v).RDY()
	})
	// I/O connect on a disabled controller fails.
	h2 := e.dial(tcptest.Options{})
	cqe, err = h2.Connect(1, 31, 0, cntlid, testNQN, hostNQN, testHostID)
	mustStatus(t, "io connect while disabled", cqe, err, proto.StatusCommandSequenceError)
	// Enable again and reconnect an I/O queue.
	if err := h.Enable(); err != nil {
		t.Fatal(err)
	}
	q = e.io(tcptest.Options{}, cntlid, 1)
	writeRead(t, q, 0, pattern(4096, 4))
	// Shutdown: SHST goes to complete.
	cc := proto.CCFields{EN: true, IOSQES: 6, IOCQES: 4, SHN: proto.ShutdownNormal}.CC()
	cqe, err = h.PropSet(proto.PropCC, uint64(cc))
	mustStatus(t, "CC.SHN", cqe, err, proto.StatusSuccess)
	waitFor(t, 2*time.Second, "SHST complete", func() bool {
		v, cqe, err := h.PropGet(proto.PropCSTS)
		return err == nil && cqe.Status.Success() && proto.CSTS(v).SHST() == proto.ShutdownStatusComplete
	})
	// Read-only properties and bad sizes.
	cqe, err = h.PropSet(proto.PropCSTS, 1)
	mustStatus(t, "set CSTS", cqe, err, proto.StatusInvalidField)
	var sqe proto.SQE
	sqe.PutPropertyGet(&proto.PropertyCmd{Attrib: proto.PropSize4, Offset: proto.PropCAP})
	cqe, err = h.Exec(&sqe, nil, nil)
	mustStatus(t, "get CAP as 4 bytes", cqe, err, proto.StatusInvalidField)
	// Disconnect on the admin queue is refused; on an I/O queue it closes it.
	var dc proto.SQE
	dc.PutDisconnect(&proto.DisconnectCmd{})
	cqe, err = h.Exec(&dc, nil, nil)
	mustStatus(t, "disconnect admin", cqe, err, proto.StatusInvalidQueueType)
}

func TestDisconnectCommand(t *testing.T) {
	e := newEnv(t, envOpts{})
	_, cntlid := e.admin(tcptest.Options{})
	q := e.io(tcptest.Options{}, cntlid, 1)
	var dc proto.SQE
	dc.PutDisconnect(&proto.DisconnectCmd{})
	cqe, err := q.Exec(&dc, nil, nil)
	mustStatus(t, "disconnect", cqe, err, proto.StatusSuccess)
	if _, err := tcptest.ReadAll(q.Conn()); err != nil {
		t.Logf("after disconnect: %v", err)
	}
	c := e.tgt.Subsystem(testNQN).Controllers()[0]
	waitFor(t, 2*time.Second, "io qpair gone", func() bool { return c.NumIOQPairs() == 0 })
	// The QID can be connected again.
	q = e.io(tcptest.Options{}, cntlid, 1)
	writeRead(t, q, 0, pattern(512, 1))
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t, envOpts{})
	// A second subsystem that does not allow the host, and one that allows any.
	s2, err := e.tgt.CreateSubsystem(SubsystemConfig{NQN: "nqn.2016-06.io.spdk:cnode2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.AddListener(e.addr); err != nil {
		t.Fatal(err)
	}
	s3, err := e.tgt.CreateSubsystem(SubsystemConfig{NQN: "nqn.2016-06.io.spdk:cnode3", AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.AddListener(e.addr); err != nil {
		t.Fatal(err)
	}
	if err := e.tgt.Discovery().AddListener(e.addr); err != nil {
		t.Fatal(err)
	}
	h := e.dial(tcptest.Options{})
	cqe, err := h.Connect(0, 31, 0, proto.CNTLIDDynamic, proto.DiscoveryNQN, hostNQN, testHostID)
	mustStatus(t, "discovery connect", cqe, err, proto.StatusSuccess)
	if err := h.Enable(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	cqe, err = h.Identify(proto.CNSController, 0, buf)
	mustStatus(t, "identify", cqe, err, proto.StatusSuccess)
	var ic proto.IdentifyController
	if err := ic.Decode(buf); err != nil || ic.CNTRLTYPE != proto.CtrlTypeDiscovery || ic.SubNQN != proto.DiscoveryNQN {
		t.Fatalf("discovery identify %+v %v", ic, err)
	}
	cqe, err = h.Identify(proto.CNSNamespace, 1, buf)
	mustStatus(t, "identify ns on discovery", cqe, err, proto.StatusInvalidField)
	log := make([]byte, 8192)
	cqe, err = h.GetLogPage(proto.LIDDiscovery, 0, 0, log)
	mustStatus(t, "discovery log", cqe, err, proto.StatusSuccess)
	hdr, ents, err := proto.DecodeDiscoveryLog(log[:proto.DiscoveryLogSize(3)])
	if err != nil {
		t.Fatal(err)
	}
	if hdr.NumRec != 3 {
		t.Fatalf("NUMREC %d, want 3 (current discovery, cnode1, cnode3)", hdr.NumRec)
	}
	want := map[string]uint8{proto.DiscoveryNQN: proto.SubTypeCurrentDiscovery, testNQN: proto.SubTypeNVM, "nqn.2016-06.io.spdk:cnode3": proto.SubTypeNVM}
	for _, en := range ents {
		if st, ok := want[en.SubNQN]; !ok || st != en.SubType || en.TRType != proto.TRTypeTCP || en.AdrFam != proto.AdrFamIPv4 ||
			en.TRAddr != "127.0.0.1" || en.TRSvcID != e.addr.TrSvcID || en.CNTLID != proto.CNTLIDDynamic {
			t.Errorf("entry %+v", en)
		}
	}
	// A paged read from an offset gives the same bytes.
	part := make([]byte, 1024)
	cqe, err = h.GetLogPage(proto.LIDDiscovery, 0, 2048, part)
	mustStatus(t, "discovery log at offset", cqe, err, proto.StatusSuccess)
	if string(part) != string(log[2048:3072]) {
		t.Error("paged discovery log differs")
	}
	cqe, err = h.GetLogPage(proto.LIDHealth, 0, 0, buf[:512])
	mustStatus(t, "health log on discovery", cqe, err, proto.StatusInvalidLogPage)
	csq := proto.SQE{Opcode: proto.AdminCreateIOSQ}
	cqe, err = h.Exec(&csq, nil, nil)
	mustStatus(t, "Create I/O SQ on discovery", cqe, err, proto.StatusInvalidOpcode)

	// Discovery log change notice.
	var sqe proto.SQE
	sqe.PutSetFeatures(&proto.FeaturesCmd{FID: proto.FeatAsyncEventConfig, CDW11: proto.AECDiscoveryChange})
	cqe, err = h.Exec(&sqe, nil, nil)
	mustStatus(t, "set AEC", cqe, err, proto.StatusSuccess)
	aer := proto.SQE{Opcode: proto.AdminAsyncEventRequest}
	if _, err := h.Submit(&aer, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s2.AddHost(hostNQN); err != nil {
		t.Fatal(err)
	}
	cqe, err = h.Reap()
	mustStatus(t, "discovery AER", cqe, err, proto.StatusSuccess)
	if ev := proto.ParseAsyncEvent(cqe.DW0); ev.Info != proto.AENDiscoveryLogChange || ev.LID != proto.LIDDiscovery {
		t.Fatalf("event %+v", ev)
	}
	cqe, err = h.GetLogPage(proto.LIDDiscovery, 0, 0, log[:1024])
	mustStatus(t, "discovery log header", cqe, err, proto.StatusSuccess)
	var h2 proto.DiscoveryLogHeader
	h2.Decode(log)
	if h2.NumRec != 4 || h2.GenCtr <= hdr.GenCtr {
		t.Fatalf("after add_host: NUMREC %d GENCTR %d (was %d)", h2.NumRec, h2.GenCtr, hdr.GenCtr)
	}
	// A subsystem is refused through a listener it does not have.
	if err := s3.RemoveListener(e.addr); err != nil {
		t.Fatal(err)
	}
	h3 := e.dial(tcptest.Options{})
	cqe, err = h3.Connect(0, 31, 0, proto.CNTLIDDynamic, "nqn.2016-06.io.spdk:cnode3", hostNQN, testHostID)
	mustStatus(t, "connect without listener", cqe, err, proto.StatusConnectInvalidParameters)
	// Deleting a subsystem with a live controller.
	h4 := e.dial(tcptest.Options{})
	cqe, err = h4.Connect(0, 31, 0, proto.CNTLIDDynamic, "nqn.2016-06.io.spdk:cnode2", hostNQN, testHostID)
	mustStatus(t, "connect cnode2", cqe, err, proto.StatusSuccess)
	if err := e.tgt.DeleteSubsystem("nqn.2016-06.io.spdk:cnode2"); err != nil {
		t.Fatal(err)
	}
	if _, err := tcptest.ReadAll(h4.Conn()); err != nil {
		t.Logf("cnode2 conn: %v", err)
	}
}
