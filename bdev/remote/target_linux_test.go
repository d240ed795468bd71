//go:build linux

package remote

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/delay"
	"hyperpath/bdev/malloc"
	"hyperpath/internal/hugemem"
	"hyperpath/nvmf"
	"hyperpath/nvmf/initiator"
	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/target"
	"hyperpath/reactor"
)

const realNQN = "nqn.2016-06.io.spdk:cnode1"

// realTarget is Hyperpath's own NVMe-oF target (nvmf/target over
// nvmf/tcp) on reactors of its own, serving malloc bdevs on loopback: the
// remote node of a test.
type realTarget struct {
	t     testing.TB
	rs    []*reactor.Reactor
	reg   *bdev.Registry
	tgt   *target.Target
	port  string
	topts nvmf.TransportOpts
	nss   []string
	mu    sync.Mutex
}

type realOpts struct {
	reactors  int
	namespace []uint64 // block counts of 512-byte malloc namespaces (default one of 64 MiB)
	topts     func(*nvmf.TransportOpts)
	mode      reactor.Mode
	spin      time.Duration // adaptive spin time, when not zero
	core      int           // pin the reactors from this core on, when > 0
	// p99DelayUs, when set, serves each namespace through a delay bdev
	// (average 2 us, one IO in a hundred p99DelayUs): IOs complete out of
	// order.
	p99DelayUs uint64
}

func startRealTarget(t testing.TB, o realOpts) *realTarget {
	t.Helper()
	if o.reactors == 0 {
		o.reactors = 1
	}
	if len(o.namespace) == 0 {
		o.namespace = []uint64{131072}
	}
	rt := &realTarget{t: t}
	if o.spin > 0 {
		rt.rs = startReactorsSpin(t, o.reactors, o.spin)
	} else {
		rt.rs = startReactorsOpts(t, o.reactors, reactor.Options{Mode: o.mode, Core: o.core})
	}
	rt.reg = bdev.NewRegistry(bdev.Options{Reactors: rt.rs})
	for i, n := range o.namespace {
		name := fmt.Sprintf("Malloc%d", i)
		d, err := malloc.New(malloc.Options{Name: name, BlockSize: 512, NumBlocks: n, Memory: hugemem.SmallPages})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.reg.Register(d); err != nil {
			t.Fatal(err)
		}
		if o.p99DelayUs > 0 {
			dname := fmt.Sprintf("Delay%d", i)
			dd, err := delay.New(rt.reg, delay.Options{Name: dname, BaseName: name,
				AvgReadUs: 2, P99ReadUs: o.p99DelayUs, AvgWriteUs: 2, P99WriteUs: o.p99DelayUs})
			if err != nil {
				t.Fatal(err)
			}
			if err := dd.Register(dd, nil); err != nil {
				t.Fatal(err)
			}
			name = dname
		}
		rt.nss = append(rt.nss, name)
	}
	rt.topts = nvmf.DefaultTransportOpts()
	rt.topts.AcceptorPollRateUs = 1000
	if o.topts != nil {
		o.topts(&rt.topts)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt.port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	rt.start()
	t.Cleanup(rt.stop)
	return rt
}

// start creates the target, its TCP transport, subsystem realNQN with
// every malloc bdev as a namespace, and the listener.
func (rt *realTarget) start() {
	t := rt.t
	tgt, err := target.New(target.Options{Registry: rt.reg, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.CreateTransport("tcp", rt.topts); err != nil {
		t.Fatal(err)
	}
	s, err := tgt.CreateSubsystem(target.SubsystemConfig{NQN: realNQN, Serial: "SPDK00000000000001", AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rt.nss {
		if _, err := s.AddNamespace(target.NamespaceConfig{BdevName: n}); err != nil {
			t.Fatal(err)
		}
	}
	addr := nvmf.ListenAddr{TrType: "TCP", AdrFam: "IPv4", TrAddr: "127.0.0.1", TrSvcID: rt.port}
	// The port may linger for a moment after a restart.
	for i := 0; ; i++ {
		err = s.AddListener(addr)
		if err == nil || i == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := tgt.Discovery().AddListener(addr); err != nil {
		t.Logf("discovery listener: %v", err)
	}
	rt.mu.Lock()
	rt.tgt = tgt
	rt.mu.Unlock()
}

// stop closes the target: every host connection drops, as when the target
// process exits. The malloc bdevs keep their data for start.
func (rt *realTarget) stop() {
	rt.mu.Lock()
	tgt := rt.tgt
	rt.tgt = nil
	rt.mu.Unlock()
	if tgt != nil {
		tgt.Close()
	}
}

func (rt *realTarget) attach(e *env, name string, mutate func(*AttachConfig)) *Controller {
	e.t.Helper()
	cfg := cfgFor(name, "127.0.0.1", rt.port, realNQN)
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := e.mod.Attach(context.Background(), cfg, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// verifyRun writes then reads back n IOs of blocks blocks at qd, starting
// at block base, on ch; concurrently usable from several reactors.
func verifyRun(ch *bdev.IOChannel, t testing.TB, base uint64, n int, blocks uint64, qd int, seed uint64) error {
	size := int(blocks) * 512
	data := make([]byte, n*size)
	pattern(data, seed)
	back := make([]byte, len(data))
	var w, r []ioSpec
	for i := 0; i < n; i++ {
		off := base + uint64(i)*blocks
		w = append(w, ioSpec{typ: bdev.IOWrite, off: off, n: blocks, iovs: [][]byte{data[i*size : (i+1)*size]}})
		// Read into two iovecs to exercise scatter on receive.
		half := size / 2
		r = append(r, ioSpec{typ: bdev.IORead, off: off, n: blocks, iovs: [][]byte{back[i*size : i*size+half], back[i*size+half : (i+1)*size]}})
	}
	for _, set := range [][]ioSpec{w, r} {
		for i, st := range runIOs(t, ch, set, qd) {
			if st != bdev.StatusSuccess {
				return fmt.Errorf("IO %d (%v): %v", i, set[i].typ, st)
			}
		}
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("data read back differs (qd %d, %d blocks)", qd, blocks)
	}
	return nil
}

// TestRealTargetVerify: write/read/verify through Nvme0n1 against
// nvmf/target at QD 1..128, 4 KiB (in capsule) and 64 KiB (R2T) IOs,
// digests off and on, on one reactor (-m 0x1) and two (-m 0x3) with one
// I/O queue pair each, both reactors running IO at once.
func TestRealTargetVerify(t *testing.T) {
	for _, reactors := range []int{1, 2} {
		for _, dg := range []bool{false, true} {
			t.Run(fmt.Sprintf("reactors%d-digests%v", reactors, dg), func(t *testing.T) {
				rt := startRealTarget(t, realOpts{reactors: 2})
				e := newEnv(t, reactors)
				c := rt.attach(e, "Nvme0", func(c *AttachConfig) { c.HeaderDigest, c.DataDigest = dg, dg })
				if len(c.Ctrlr().IOQPairs()) != reactors {
					t.Fatalf("%d I/O queue pairs for %d reactors", len(c.Ctrlr().IOQPairs()), reactors)
				}
				errs := make(chan error, reactors)
				for i, r := range e.rs {
					_, ch := e.open("Nvme0n1", r)
					go func() {
						base := uint64(i) * 60000
						for _, qd := range []int{1, 8, 32, 128} {
							for _, blocks := range []uint64{8, 128} {
								n := 2 * qd
								if n < 16 {
									n = 16
								}
								if err := verifyRun(ch, t, base, n, blocks, qd, uint64(qd)<<8|blocks); err != nil {
									errs <- fmt.Errorf("reactor %d: %w", i, err)
									return
								}
							}
						}
						errs <- nil
					}()
				}
				for range e.rs {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
				if c.Ctrlr().Resets() != 0 {
					t.Errorf("%d resets", c.Ctrlr().Resets())
				}
				for i, r := range e.rs {
					var st initiator.QPairStats
					on(t, r, func() { st = c.Ctrlr().IOQPair(r).Stats() })
					if st.Copied != 0 {
						t.Errorf("reactor %d: %d payload bytes copied", i, st.Copied)
					}
				}
			})
		}
	}
}

// TestRealTargetReordered: through a namespace whose IOs complete out of
// order, bursts of reads make the host's speculative C2HData reads guess
// wrong; the data must still land in the right commands' buffers.
func TestRealTargetReordered(t *testing.T) {
	for _, dg := range []bool{false, true} {
		t.Run(fmt.Sprintf("digests%v", dg), func(t *testing.T) {
			rt := startRealTarget(t, realOpts{reactors: 1, p99DelayUs: 200})
			e := newEnv(t, 1)
			c := rt.attach(e, "Nvme0", func(c *AttachConfig) { c.HeaderDigest, c.DataDigest = dg, dg })
			r := e.rs[0]
			_, ch := e.open("Nvme0n1", r)
			for round, qd := range []int{8, 32, 128, 32} {
				if err := verifyRun(ch, t, uint64(round)*30000, 1000, 8, qd, uint64(qd)<<4|uint64(round)); err != nil {
					t.Fatal(err)
				}
			}
			var st initiator.QPairStats
			on(t, r, func() { st = c.Ctrlr().IOQPair(r).Stats() })
			t.Logf("%d C2HData PDUs guessed, %d misses, %d bytes copied", st.Speculated, st.SpecMisses, st.Copied)
			if st.Speculated == 0 || st.SpecMisses == 0 {
				t.Errorf("%d guessed, %d misses: the reordered reads did not exercise both paths", st.Speculated, st.SpecMisses)
			}
		})
	}
}

// TestRealTargetRestart: the target goes away (all connections drop, the
// listener closes) in the middle of a run on two reactors and comes back
// a second later; IO is held, the controller reconnects, the held IO is
// resubmitted and the data verifies.
func TestRealTargetRestart(t *testing.T) {
	rt := startRealTarget(t, realOpts{reactors: 2})
	e := newEnv(t, 2)
	c := rt.attach(e, "Nvme0", func(c *AttachConfig) {
		c.CtrlrLossTimeoutSec, c.ReconnectDelaySec = -1, 1
		c.ConnectTimeout = time.Second
	})
	var chans []*bdev.IOChannel
	for _, r := range e.rs {
		_, ch := e.open("Nvme0n1", r)
		chans = append(chans, ch)
	}
	stats := func() uint64 {
		b, _ := e.reg.Get("Nvme0n1")
		s, _ := b.Stats(bdev.ResetNone)
		return s.NumWriteOps
	}
	go func() {
		waitFor(t, "writes", 20*time.Second, func() bool { return stats() > 200 })
		rt.stop()
		time.Sleep(time.Second)
		rt.start()
	}()
	errs := make(chan error, len(chans))
	for i, ch := range chans {
		go func() { errs <- verifyRun(ch, t, uint64(i)*60000, 1500, 16, 32, uint64(i)+5) }()
	}
	for range chans {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if c.Ctrlr().Resets() == 0 {
		t.Fatal("the target restart was not noticed")
	}
	if s := c.Ctrlr().State(); s != initiator.StateEnabled {
		t.Errorf("state %v", s)
	}
}

// TestRealTargetGoneFailsCleanly: the target goes away for good; held IO
// fails at fast_io_fail_timeout_sec, new IO fails at once, and at
// ctrlr_loss_timeout_sec the controller and its bdev are removed.
func TestRealTargetGoneFailsCleanly(t *testing.T) {
	rt := startRealTarget(t, realOpts{})
	e := newEnv(t, 1)
	rt.attach(e, "Nvme0", func(c *AttachConfig) {
		c.CtrlrLossTimeoutSec, c.ReconnectDelaySec, c.FastIOFailTimeoutSec = 3, 1, 1
		c.ConnectTimeout = time.Second
	})
	_, ch := e.open("Nvme0n1", e.rs[0])
	buf := make([]byte, 4096)
	if st := one(t, ch, bdev.IOWrite, 0, 8, buf); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	rt.stop()
	start := time.Now()
	if st := one(t, ch, bdev.IORead, 0, 8, buf); st != bdev.StatusFailed {
		t.Errorf("held read: %v", st)
	}
	if el := time.Since(start); el < 500*time.Millisecond || el > 3*time.Second {
		t.Errorf("held read failed after %v, want about 1 s", el)
	}
	if st := one(t, ch, bdev.IORead, 0, 8, buf); st != bdev.StatusFailed {
		t.Errorf("read after fast fail: %v", st)
	}
	waitFor(t, "bdev removal at ctrlr_loss_timeout_sec", 5*time.Second, func() bool {
		_, err := e.reg.Get("Nvme0n1")
		return err != nil
	})
	if el := time.Since(start); el < 2500*time.Millisecond {
		t.Errorf("controller removed after %v, before ctrlr_loss_timeout_sec", el)
	}
}

// TestRealTargetDiscovery: Get Log Page on the discovery NQN of
// nvmf/target lists the subsystem.
func TestRealTargetDiscovery(t *testing.T) {
	rt := startRealTarget(t, realOpts{})
	log, err := initiator.Discover(context.Background(), initiator.Options{TRAddr: "127.0.0.1", TRSvcID: rt.port, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range log.Entries {
		if e.SubNQN == realNQN && e.TRType == proto.TRTypeTCP && e.TRSvcID == rt.port && e.TRAddr == "127.0.0.1" {
			found = true
		}
	}
	if !found {
		t.Fatalf("discovery log %+v lacks %s", log.Entries, realNQN)
	}
}

// TestRealTargetNamespaces: two namespaces, two bdevs; IO on both.
func TestRealTargetNamespaces(t *testing.T) {
	rt := startRealTarget(t, realOpts{namespace: []uint64{4096, 8192}})
	e := newEnv(t, 1)
	c := rt.attach(e, "Nvme1", nil)
	if names := c.BdevNames(); len(names) != 2 || names[0] != "Nvme1n1" || names[1] != "Nvme1n2" {
		t.Fatalf("bdevs %v", names)
	}
	b2, _ := e.reg.Get("Nvme1n2")
	m2, _ := rt.reg.Get("Malloc1")
	if b2.Info().NumBlocks != 8192 || b2.Info().UUID != m2.Info().UUID {
		t.Errorf("Nvme1n2 %d blocks uuid %v, want the malloc's %v", b2.Info().NumBlocks, b2.Info().UUID, m2.Info().UUID)
	}
	for _, name := range c.BdevNames() {
		_, ch := e.open(name, e.rs[0])
		if err := verifyRun(ch, t, 0, 16, 8, 4, 3); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st := one(t, ch, bdev.IOUnmap, 0, 64); st != bdev.StatusSuccess {
			t.Errorf("%s unmap: %v", name, st)
		}
		if st := one(t, ch, bdev.IOWriteZeroes, 64, 64); st != bdev.StatusSuccess {
			t.Errorf("%s write zeroes: %v", name, st)
		}
		if st := one(t, ch, bdev.IOFlush, 0, 0); st != bdev.StatusSuccess {
			t.Errorf("%s flush: %v", name, st)
		}
	}
}
