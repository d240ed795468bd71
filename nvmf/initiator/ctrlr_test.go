package initiator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/nvmf/proto"
)

func TestConnectIdentify(t *testing.T) {
	rs := startReactors(t, 2)
	uuid := [16]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x47, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00}
	tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{
		{ID: 1, BlockSize: 512, NumBlocks: 2048},
		{ID: 3, BlockSize: 4096, NumBlocks: 256, UUID: uuid},
	}, InCapsule: 8192, MDTS: 3, MQES: 63})
	c := connect(t, tg, rs, func(o *Options) { o.KATOMs = 200 })

	if c.State() != StateEnabled || c.CNTLID() == 0 {
		t.Fatalf("state %v cntlid %d", c.State(), c.CNTLID())
	}
	nss := c.Namespaces()
	if len(nss) != 2 || nss[0].ID != 1 || nss[1].ID != 3 {
		t.Fatalf("namespaces %+v", nss)
	}
	if nss[0].BlockSize != 512 || nss[0].NumBlocks != 2048 || nss[1].BlockSize != 4096 || nss[1].NumBlocks != 256 {
		t.Fatalf("geometry %d/%d %d/%d", nss[0].BlockSize, nss[0].NumBlocks, nss[1].BlockSize, nss[1].NumBlocks)
	}
	if _, ok := nss[0].UUID(); ok {
		t.Error("namespace 1 has no UUID descriptor")
	}
	if u, ok := nss[1].UUID(); !ok || u != uuid {
		t.Errorf("namespace 3 UUID %x %v", u, ok)
	}
	if got := c.MaxTransferBytes(); got != 32<<10 {
		t.Errorf("MaxTransferBytes %d, want 32 KiB (MDTS 3)", got)
	}
	if c.QueueDepth() != 64 {
		t.Errorf("queue depth %d, want MQES+1 = 64", c.QueueDepth())
	}
	if len(c.IOQPairs()) != 2 || c.IOQPair(rs[1]) == nil || c.IOQPair(rs[1]).QID() != 2 {
		t.Fatalf("I/O queue pairs %d", len(c.IOQPairs()))
	}
	if id := c.IdentifyController(); id.SubNQN != tg.SubNQN() || id.IOCCSZ != (8192+64)/16 {
		t.Errorf("identify %q IOCCSZ %d", id.SubNQN, id.IOCCSZ)
	}
	// One admin and two I/O Connects.
	if n := tg.Stats.Connects.Load(); n != 3 {
		t.Errorf("%d Connects, want 3", n)
	}
	waitFor(t, "keep alives", 3*time.Second, func() bool { return tg.Stats.KeepAlives.Load() >= 3 })
	c.Close()
	if tg.Stats.Shutdowns.Load() != 1 {
		t.Error("Close did not shut the controller down (CC.SHN)")
	}
	if c.State() != StateDeleting {
		t.Errorf("state after Close %v", c.State())
	}
}

// rwCase is a write+read-back verification run.
type rwCase struct {
	name       string
	hdgst      bool
	ddgst      bool
	qd         int
	blocks     uint32 // per command (512-byte blocks)
	cmds       int
	opts       testtarget.Options
	iovPieces  int // split each buffer into this many iovecs
	reactors   int
	wantR2T    bool
	wantInCaps bool
}

func TestReadWriteVerify(t *testing.T) {
	cases := []rwCase{
		{name: "qd1-4k", qd: 1, blocks: 8, cmds: 64, wantInCaps: true},
		{name: "qd128-4k-digests", hdgst: true, ddgst: true, qd: 128, blocks: 8, cmds: 512, wantInCaps: true},
		{name: "qd32-64k-r2t-split-c2h", qd: 32, blocks: 128, cmds: 128, wantR2T: true},
		{name: "qd8-64k-r2t-chunks-h2c-split-digests", hdgst: true, ddgst: true, qd: 8, blocks: 128, cmds: 64, wantR2T: true,
			opts: testtarget.Options{R2TChunk: 8192, MaxH2CData: 4096}},
		{name: "qd16-iovecs-cpda-success", ddgst: true, qd: 16, blocks: 64, cmds: 96, iovPieces: 7, wantR2T: true,
			opts: testtarget.Options{CPDA: 7, C2HSuccess: true, MaxC2HData: 4096}},
		{name: "hdgst-only-c2h-success", hdgst: true, qd: 4, blocks: 1, cmds: 64, wantInCaps: true, opts: testtarget.Options{C2HSuccess: true}},
		{name: "digests-refused", hdgst: true, ddgst: true, qd: 8, blocks: 16, cmds: 64, opts: testtarget.Options{NoDigests: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { testRW(t, tc) })
	}
}

func testRW(t *testing.T, tc rwCase) {
	rs := startReactors(t, max(tc.reactors, 1))
	tc.opts.Namespaces = []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 16384}}
	tg := startTarget(t, tc.opts)
	c := connect(t, tg, rs, func(o *Options) { o.HeaderDigest, o.DataDigest = tc.hdgst, tc.ddgst })
	q := c.IOQPair(rs[0])
	n := int(tc.blocks) * 512
	bufs := make([][][]byte, tc.cmds)
	want := make([][]byte, tc.cmds)
	var writes, reads []Cmd
	for i := 0; i < tc.cmds; i++ {
		want[i] = make([]byte, n)
		pattern(want[i], uint64(i)+uint64(tc.blocks)<<32)
		bufs[i] = split(want[i], tc.iovPieces)
		slba := uint64(i) * uint64(tc.blocks) % (16384 - uint64(tc.blocks))
		writes = append(writes, Cmd{Op: OpWrite, NSID: 1, SLBA: slba, NLB: tc.blocks, Iovs: bufs[i], LenBytes: uint32(n)})
	}
	// Distinct LBAs per command keep the read-back exact.
	if uint64(tc.cmds)*uint64(tc.blocks) > 16384 {
		t.Fatal("test case does not fit the namespace")
	}
	for i := range writes {
		writes[i].SLBA = uint64(i) * uint64(tc.blocks)
	}
	for i, r := range runJob(t, q, writes, tc.qd, 30*time.Second) {
		if r.err != nil || !r.status.Success() {
			t.Fatalf("write %d: %v %v", i, r.err, r.status)
		}
	}
	got := make([][]byte, tc.cmds)
	for i := range want {
		got[i] = make([]byte, n)
		reads = append(reads, Cmd{Op: OpRead, NSID: 1, SLBA: writes[i].SLBA, NLB: tc.blocks, Iovs: split(got[i], tc.iovPieces), LenBytes: uint32(n)})
	}
	for i, r := range runJob(t, q, reads, tc.qd, 30*time.Second) {
		if r.err != nil || !r.status.Success() {
			t.Fatalf("read %d: %v %v", i, r.err, r.status)
		}
	}
	mem := tg.Data(1)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("read %d differs from what was written", i)
		}
		off := writes[i].SLBA * 512
		if !bytes.Equal(mem[off:off+uint64(n)], want[i]) {
			t.Fatalf("target memory of command %d differs", i)
		}
	}
	if tc.wantR2T && tg.Stats.R2Ts.Load() == 0 {
		t.Error("no R2T was used")
	}
	if tc.wantInCaps && tg.Stats.InCapsule.Load() < uint64(tc.cmds) {
		t.Errorf("%d in-capsule commands, want >= %d", tg.Stats.InCapsule.Load(), tc.cmds)
	}
	var st QPairStats
	on(t, rs[0], func() { st = q.Stats() })
	if st.Copied != 0 {
		t.Errorf("%d payload bytes copied on receive, want 0", st.Copied)
	}
	if c.Resets() != 0 {
		t.Errorf("%d resets", c.Resets())
	}
}

// split cuts b into n iovecs of uneven sizes (n <= 1: one).
func split(b []byte, n int) [][]byte {
	if n <= 1 {
		return [][]byte{b}
	}
	var out [][]byte
	for i := 0; i < n-1 && len(b) > 1; i++ {
		k := len(b) / (n - i) / 2
		if k == 0 {
			k = 1
		}
		k += i % 3
		if k >= len(b) {
			break
		}
		out = append(out, b[:k])
		b = b[k:]
	}
	return append(out, b)
}

func TestMultipleQueuesOnReactors(t *testing.T) {
	rs := startReactors(t, 3)
	tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 65536}}})
	c := connect(t, tg, rs, nil)
	if len(c.IOQPairs()) != 3 {
		t.Fatalf("%d queue pairs", len(c.IOQPairs()))
	}
	errs := make(chan error, 3)
	for i, r := range rs {
		go func() {
			q := c.IOQPair(r)
			const cmds, blocks = 200, 8
			base := uint64(i) * 20000
			data := make([]byte, cmds*blocks*512)
			pattern(data, uint64(i)+77)
			var w, rd []Cmd
			back := make([]byte, len(data))
			for k := 0; k < cmds; k++ {
				off := k * blocks * 512
				w = append(w, Cmd{Op: OpWrite, NSID: 1, SLBA: base + uint64(k*blocks), NLB: blocks, Iovs: [][]byte{data[off : off+blocks*512]}, LenBytes: blocks * 512})
				rd = append(rd, Cmd{Op: OpRead, NSID: 1, SLBA: base + uint64(k*blocks), NLB: blocks, Iovs: [][]byte{back[off : off+blocks*512]}, LenBytes: blocks * 512})
			}
			for _, res := range [][]result{runJob(t, q, w, 32, 30*time.Second), runJob(t, q, rd, 32, 30*time.Second)} {
				for k, r := range res {
					if r.err != nil || !r.status.Success() {
						errs <- fmt.Errorf("queue %d command %d: %v %v", q.QID(), k, r.err, r.status)
						return
					}
				}
			}
			if !bytes.Equal(back, data) {
				errs <- fmt.Errorf("queue %d: data differs", q.QID())
				return
			}
			errs <- nil
		}()
	}
	for range rs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestOtherCommands(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 4096}}})
	c := connect(t, tg, rs, func(o *Options) { o.DataDigest = true })
	q := c.IOQPair(rs[0])
	data := make([]byte, 4096)
	pattern(data, 5)
	other := append([]byte(nil), data...)
	other[100] ^= 0xff
	res := runJob(t, q, []Cmd{
		{Op: OpWrite, NSID: 1, SLBA: 0, NLB: 8, Iovs: [][]byte{data}, LenBytes: 4096},
		{Op: OpWrite, NSID: 1, SLBA: 100, NLB: 8, Iovs: [][]byte{data}, LenBytes: 4096},
		{Op: OpWrite, NSID: 1, SLBA: 200, NLB: 8, Iovs: [][]byte{data}, LenBytes: 4096},
	}, 1, 10*time.Second)
	for i, r := range res {
		if r.err != nil || !r.status.Success() {
			t.Fatalf("write %d: %v %v", i, r.err, r.status)
		}
	}
	res = runJob(t, q, []Cmd{
		{Op: OpCompare, NSID: 1, SLBA: 0, NLB: 8, Iovs: [][]byte{data}, LenBytes: 4096},
		{Op: OpCompare, NSID: 1, SLBA: 0, NLB: 8, Iovs: [][]byte{other}, LenBytes: 4096},
		{Op: OpFlush, NSID: 1},
		{Op: OpWriteZeroes, NSID: 1, SLBA: 2, NLB: 3},
		{Op: OpDeallocate, NSID: 1, Ranges: []proto.DSMRange{{SLBA: 100, NLB: 4}, {SLBA: 206, NLB: 2}}},
		{Op: OpRead, NSID: 1, SLBA: 5000, NLB: 1, Iovs: [][]byte{make([]byte, 512)}, LenBytes: 512},
		{Op: OpRead, NSID: 9, SLBA: 0, NLB: 1, Iovs: [][]byte{make([]byte, 512)}, LenBytes: 512},
	}, 1, 10*time.Second)
	want := []proto.Status{proto.StatusSuccess, proto.StatusCompareFailure, proto.StatusSuccess, proto.StatusSuccess,
		proto.StatusSuccess, proto.StatusLBAOutOfRange, proto.StatusInvalidNamespace}
	for i, r := range res {
		if r.err != nil || r.status.Code() != want[i] {
			t.Errorf("command %d: %v %v, want %v", i, r.err, r.status, want[i])
		}
	}
	mem := tg.Data(1)
	zero := make([]byte, 2048)
	if !bytes.Equal(mem[1024:2560], zero[:1536]) || !bytes.Equal(mem[512:1024], data[512:1024]) || !bytes.Equal(mem[2560:4096], data[2560:4096]) {
		t.Error("write zeroes touched the wrong blocks")
	}
	if !bytes.Equal(mem[100*512:104*512], zero) || !bytes.Equal(mem[104*512:108*512], data[2048:]) {
		t.Error("deallocate of range 1 wrong")
	}
	if !bytes.Equal(mem[206*512:208*512], zero[:1024]) || !bytes.Equal(mem[200*512:206*512], data[:3072]) {
		t.Error("deallocate of range 2 wrong")
	}
	// Malformed commands are refused at Submit.
	on(t, rs[0], func() {
		done := func(any, *proto.CQE) { t.Error("Done called for a refused command") }
		for i, cmd := range []Cmd{
			{Op: OpRead, NSID: 1, NLB: 8, Iovs: [][]byte{make([]byte, 100)}, LenBytes: 4096, Done: done},
			{Op: OpRead, NSID: 1, NLB: 0, Iovs: [][]byte{data}, LenBytes: 4096, Done: done},
			{Op: OpDeallocate, NSID: 1, Ranges: make([]proto.DSMRange, MaxRanges+1), Done: done},
			{Op: 99, Done: done},
			{Op: OpFlush},
		} {
			if err := q.Submit(&cmd); !errors.Is(err, ErrBadCommand) {
				t.Errorf("malformed command %d: %v", i, err)
			}
		}
	})
}

func TestDataDigestErrorFailsCommandOnly(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	c := connect(t, tg, rs, func(o *Options) { o.DataDigest = true })
	q := c.IOQPair(rs[0])
	tg.CorruptC2HDigests(1)
	buf := make([]byte, 4096)
	res := runJob(t, q, []Cmd{
		{Op: OpRead, NSID: 1, SLBA: 0, NLB: 8, Iovs: [][]byte{buf}, LenBytes: 4096},
		{Op: OpRead, NSID: 1, SLBA: 0, NLB: 8, Iovs: [][]byte{buf}, LenBytes: 4096},
	}, 1, 10*time.Second)
	if res[0].status.Code() != proto.StatusTransientTransportError {
		t.Errorf("corrupted read: %v", res[0].status)
	}
	if !res[1].status.Success() {
		t.Errorf("next read: %v", res[1].status)
	}
	if c.Resets() != 0 || c.State() != StateEnabled {
		t.Errorf("resets %d state %v: a data digest error must not drop the connection", c.Resets(), c.State())
	}
}

func TestDiscover(t *testing.T) {
	tg := startTarget(t, testtarget.Options{Referrals: []proto.DiscoveryEntry{{TRType: proto.TRTypeTCP, AdrFam: proto.AdrFamIPv4,
		SubType: proto.SubTypeReferral, TRSvcID: "8009", TRAddr: "127.0.0.1", SubNQN: proto.DiscoveryNQN, ASQSZ: 32}}})
	h, p := tg.Addr()
	log, err := Discover(context.Background(), Options{TRAddr: h, TRSvcID: p, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if log.Header.NumRec != 2 || len(log.Entries) != 2 {
		t.Fatalf("%d records", len(log.Entries))
	}
	e := log.Entries[0]
	if e.SubNQN != tg.SubNQN() || e.TRSvcID != p || e.TRAddr != h || e.TRType != proto.TRTypeTCP {
		t.Errorf("entry %+v", e)
	}
	if log.Entries[1].SubType != proto.SubTypeReferral {
		t.Errorf("referral %+v", log.Entries[1])
	}
}

func TestConnectErrors(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	h, p := tg.Addr()
	base := Options{TRAddr: h, TRSvcID: p, SubNQN: tg.SubNQN(), AdminReactor: rs[0], IOReactors: rs, Logger: quietLog,
		ConnectTimeout: 2 * time.Second}
	ctx := context.Background()

	o := base
	o.SubNQN = "nqn.2016-06.io.hyperpath:nosuch"
	_, err := Connect(ctx, o)
	var se *StatusError
	if !errors.As(err, &se) || se.Status.Code() != proto.StatusConnectInvalidParameters {
		t.Errorf("unknown subsystem: %v", err)
	} else if inData, off := proto.ConnectInvalidParam(se.DW0); !inData || off != proto.ConnectDataOffSubNQN {
		t.Errorf("invalid parameter at %v/%d", inData, off)
	}

	o = base
	o.TRSvcID = "1" // nothing listens there
	if _, err := Connect(ctx, o); err == nil {
		t.Error("connect to a closed port succeeded")
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.TRAddr = "" },
		func(o *Options) { o.SubNQN = "not-an-nqn" },
		func(o *Options) { o.IOReactors = nil },
		func(o *Options) { o.CtrlrLossTimeoutSec = 5 },
		func(o *Options) { o.TRSvcID = "port" },
	} {
		o := base
		bad(&o)
		if _, err := Connect(ctx, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("bad options accepted or wrong error: %v", err)
		}
	}
}

func TestValidateReconnect(t *testing.T) {
	for _, tc := range []struct {
		loss        int32
		delay, fast uint32
		ok          bool
	}{
		{0, 0, 0, true}, {0, 1, 0, false}, {0, 0, 1, false},
		{-1, 1, 0, true}, {-1, 0, 0, false}, {-1, 2, 1, false}, {-1, 2, 2, true},
		{10, 1, 5, true}, {10, 0, 0, false}, {10, 11, 0, false}, {10, 2, 1, false}, {10, 2, 11, false}, {10, 10, 10, true},
		{-2, 1, 0, false},
	} {
		err := ValidateReconnect(tc.loss, tc.delay, tc.fast)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateReconnect(%d, %d, %d) = %v", tc.loss, tc.delay, tc.fast, err)
		}
	}
}

// TestHostAddrAndIPv6: the local end bound with hostaddr/hostsvcid, and a
// controller on the IPv6 loopback.
func TestHostAddrAndIPv6(t *testing.T) {
	rs := startReactors(t, 1)
	tg := startTarget(t, testtarget.Options{})
	c := connect(t, tg, rs, func(o *Options) { o.HostAddr = "127.0.0.1" })
	if c.State() != StateEnabled {
		t.Fatal(c.State())
	}
	tg6, err := testtarget.Start(testtarget.Options{Addr: "[::1]:0"})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(tg6.Close)
	c6 := connect(t, tg6, rs, func(o *Options) { o.Name = "Nvme6" })
	if c6.Options().AdrFam != AdrFamIPv6 {
		t.Errorf("adrfam %v", c6.Options().AdrFam)
	}
	buf := make([]byte, 4096)
	res := runJob(t, c6.IOQPair(rs[0]), []Cmd{{Op: OpRead, NSID: 1, NLB: 8, Iovs: [][]byte{buf}, LenBytes: 4096}}, 1, 10*time.Second)
	if !res[0].status.Success() || res[0].err != nil {
		t.Fatalf("read over IPv6: %v %v", res[0].status, res[0].err)
	}
}
