package remote

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator"
	"hyperpath/nvmf/initiator/testtarget"
	"hyperpath/nvmf/proto"
)

var nsUUID = [16]byte{0x5e, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x46, 0x7f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7}

func TestAttachBdevs(t *testing.T) {
	e := newEnv(t, 1)
	tg := startTarget(t, testtarget.Options{MDTS: 3, Namespaces: []testtarget.NS{
		{ID: 1, BlockSize: 512, NumBlocks: 4096},
		{ID: 3, BlockSize: 4096, NumBlocks: 512, UUID: nsUUID},
	}})
	c := e.attachTT(tg, nil)
	if got := c.BdevNames(); len(got) != 2 || got[0] != "Nvme0n1" || got[1] != "Nvme0n3" {
		t.Fatalf("bdevs %v", got)
	}
	b1, err := e.reg.Get("Nvme0n1")
	if err != nil {
		t.Fatal(err)
	}
	i1 := b1.Info()
	if i1.BlockSize != 512 || i1.NumBlocks != 4096 || i1.ProductName != "NVMe disk" || i1.Module != "nvme" || !i1.WriteCache {
		t.Errorf("Nvme0n1 info %+v", i1)
	}
	if i1.MaxTransferBlocks != 64 {
		t.Errorf("MaxTransferBlocks %d, want 32 KiB / 512", i1.MaxTransferBlocks)
	}
	want := namespaceUUID(tg.SubNQN(), "TT0001", 1)
	if i1.UUID != want || i1.UUID.IsZero() {
		t.Errorf("derived UUID %v, want %v", i1.UUID, want)
	}
	b3, _ := e.reg.Get("Nvme0n3")
	if b3.Info().UUID != bdev.UUID(nsUUID) || b3.Info().BlockSize != 4096 || b3.Info().MaxTransferBlocks != 8 {
		t.Errorf("Nvme0n3 info %+v", b3.Info())
	}
	d := b1.Device().(*Disk)
	for _, typ := range []bdev.IOType{bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOUnmap, bdev.IOWriteZeroes, bdev.IOCompare, bdev.IOReset} {
		if !d.Supports(typ) {
			t.Errorf("%v not supported", typ)
		}
	}
	if m, p := d.ConfigEntry(); m != "bdev_nvme_attach_controller" || p == nil {
		t.Errorf("first namespace config %q", m)
	}
	if m, _ := b3.Device().(*Disk).ConfigEntry(); m != "" {
		t.Errorf("second namespace writes config %q", m)
	}
}

func TestBdevIO(t *testing.T) {
	e := newEnv(t, 1)
	tg := startTarget(t, testtarget.Options{MDTS: 3, Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 140000}}})
	e.attachTT(tg, func(c *AttachConfig) { c.HeaderDigest, c.DataDigest = true, true })
	_, ch := e.open("Nvme0n1", e.rs[0])

	// A 1 MiB write and read: split into 32 KiB commands by the generic
	// layer (MDTS).
	big := make([]byte, 1<<20)
	pattern(big, 1)
	if st := one(t, ch, bdev.IOWrite, 100, 2048, big[:300<<10], big[300<<10:]); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	back := make([]byte, len(big))
	if st := one(t, ch, bdev.IORead, 100, 2048, back); st != bdev.StatusSuccess || !bytes.Equal(back, big) {
		t.Fatalf("read: %v equal %v", st, bytes.Equal(back, big))
	}
	if st := one(t, ch, bdev.IOCompare, 100, 8, big[:4096]); st != bdev.StatusSuccess {
		t.Errorf("compare: %v", st)
	}
	if st := one(t, ch, bdev.IOCompare, 101, 8, big[:4096]); st != bdev.StatusMiscompare {
		t.Errorf("miscompare: %v", st)
	}
	if st := one(t, ch, bdev.IOFlush, 0, 0); st != bdev.StatusSuccess {
		t.Errorf("flush: %v", st)
	}
	// Write zeroes over 70000 blocks: two commands (65536 + 4464).
	full := make([]byte, 140000*512)
	pattern(full, 2)
	// In IOs of at most 16384 blocks: the generic layer needs one pool IO
	// per 32 KiB child.
	for off := uint64(0); off < 140000; off += 16384 {
		n := min(16384, 140000-off)
		if st := one(t, ch, bdev.IOWrite, off, n, full[off*512:(off+n)*512]); st != bdev.StatusSuccess {
			t.Fatalf("fill: %v", st)
		}
	}
	cmds := tg.Stats.Commands.Load()
	if st := one(t, ch, bdev.IOWriteZeroes, 1000, 70000); st != bdev.StatusSuccess {
		t.Fatalf("write zeroes: %v", st)
	}
	if n := tg.Stats.Commands.Load() - cmds; n != 2 {
		t.Errorf("write zeroes of 70000 blocks took %d commands, want 2", n)
	}
	if st := one(t, ch, bdev.IOUnmap, 80000, 5000); st != bdev.StatusSuccess {
		t.Fatalf("unmap: %v", st)
	}
	mem := tg.Data(1)
	copy(full[1000*512:71000*512], make([]byte, 70000*512))
	copy(full[80000*512:85000*512], make([]byte, 5000*512))
	if !bytes.Equal(mem, full) {
		t.Fatal("namespace contents differ after write zeroes and unmap")
	}
	if st := one(t, ch, bdev.IOReset, 0, 0); st != bdev.StatusSuccess {
		t.Fatalf("reset: %v", st)
	}
	if st := one(t, ch, bdev.IORead, 0, 8, back[:4096]); st != bdev.StatusSuccess || !bytes.Equal(back[:4096], full[:4096]) {
		t.Fatalf("read after reset: %v", st)
	}
	b, _ := e.reg.Get("Nvme0n1")
	st, _ := b.Stats(bdev.ResetNone)
	if st.NumReadOps < 2 || st.NumWriteOps < 2 || st.NumUnmapOps != 1 {
		t.Errorf("iostat %+v", st)
	}
}

func TestQueueDepths(t *testing.T) {
	e := newEnv(t, 1)
	tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 65536}}})
	e.attachTT(tg, func(c *AttachConfig) { c.IOQueueSize = 64 })
	_, ch := e.open("Nvme0n1", e.rs[0])
	for _, qd := range []int{1, 4, 32, 128} {
		const n = 256
		data := make([]byte, n*4096)
		pattern(data, uint64(qd))
		var w, r []ioSpec
		back := make([]byte, len(data))
		for i := 0; i < n; i++ {
			w = append(w, ioSpec{typ: bdev.IOWrite, off: uint64(i * 8), n: 8, iovs: [][]byte{data[i*4096 : (i+1)*4096]}})
			r = append(r, ioSpec{typ: bdev.IORead, off: uint64(i * 8), n: 8, iovs: [][]byte{back[i*4096 : (i+1)*4096]}})
		}
		for _, set := range [][]ioSpec{w, r} {
			for i, st := range runIOs(t, ch, set, qd) {
				if st != bdev.StatusSuccess {
					t.Fatalf("qd %d IO %d: %v", qd, i, st)
				}
			}
		}
		if !bytes.Equal(back, data) {
			t.Fatalf("qd %d: data differs", qd)
		}
	}
}

func TestDetach(t *testing.T) {
	e := newEnv(t, 1)
	tg := startTarget(t, testtarget.Options{Namespaces: []testtarget.NS{{ID: 1, BlockSize: 512, NumBlocks: 1024}, {ID: 2, BlockSize: 512, NumBlocks: 1024}}})
	e.attachTT(tg, nil)
	if err := e.mod.Detach("Nvme0"); err != nil {
		t.Fatal(err)
	}
	if len(e.reg.Names()) != 0 || len(e.mod.Controllers()) != 0 {
		t.Fatalf("left: %v %d", e.reg.Names(), len(e.mod.Controllers()))
	}
	if tg.Stats.Shutdowns.Load() != 1 {
		t.Error("controller not shut down")
	}
	if err := e.mod.Detach("Nvme0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second detach: %v", err)
	}
	// The name is free again.
	e.attachTT(tg, nil)
}

// TestLastBdevGoneClosesController: unregistering every bdev (as the
// daemon does at shutdown) closes the controller.
func TestLastBdevGoneClosesController(t *testing.T) {
	e := newEnv(t, 1)
	tg := startTarget(t, testtarget.Options{})
	c := e.attachTT(tg, nil)
	done := make(chan struct{})
	if err := e.reg.Unregister("Nvme0n1", func(error) { close(done) }); err != nil {
		t.Fatal(err)
	}
	<-done
	waitFor(t, "controller closed", 5*time.Second, func() bool { return len(e.mod.Controllers()) == 0 })
	if c.Ctrlr().State() != initiator.StateDeleting {
		t.Errorf("state %v", c.Ctrlr().State())
	}
}

func TestLostControllerRemovesBdevs(t *testing.T) {
	e := newEnv(t, 1)
	tg := startTarget(t, testtarget.Options{})
	e.attachTT(tg, func(c *AttachConfig) { c.CtrlrLossTimeoutSec, c.ReconnectDelaySec = 2, 1 })
	_, ch := e.open("Nvme0n1", e.rs[0])
	tg.Stop()
	// The loss is noticed by this read; it is held, then failed when the
	// controller is given up.
	if st := one(t, ch, bdev.IORead, 0, 8, make([]byte, 4096)); st != bdev.StatusAborted {
		t.Errorf("read across the loss: %v", st)
	}
	waitFor(t, "bdev removed", 5*time.Second, func() bool { _, err := e.reg.Get("Nvme0n1"); return err != nil })
}

func TestFewerQueuesThanReactors(t *testing.T) {
	e := newEnv(t, 2)
	tg := startTarget(t, testtarget.Options{})
	c := e.attachTT(tg, func(c *AttachConfig) { c.NumIOQueues = 1 })
	if n := len(c.Ctrlr().IOQPairs()); n != 1 {
		t.Fatalf("%d queue pairs", n)
	}
	desc, err := e.reg.Open("Nvme0n1", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer desc.Close()
	on(t, e.rs[1], func() {
		if _, err = desc.GetChannel(e.rs[1]); err == nil || !errors.Is(err, initiator.ErrNoQueue) {
			t.Errorf("channel on a reactor without a queue pair: %v", err)
		}
	})
}

func TestAttachErrors(t *testing.T) {
	e := newEnv(t, 1)
	tg := startTarget(t, testtarget.Options{})
	h, p := tg.Addr()
	e.attachTT(tg, nil)
	ctx := context.Background()
	if _, err := e.mod.Attach(ctx, cfgFor("Nvme0", h, p, tg.SubNQN()), -1); !errors.Is(err, ErrExists) {
		t.Errorf("same name: %v", err)
	}
	if _, err := e.mod.Attach(ctx, cfgFor("Nvme1", h, p, tg.SubNQN()), -1); !errors.Is(err, ErrExists) {
		t.Errorf("same path: %v", err)
	}
	cfg := cfgFor("Nvme2", h, p, "nqn.2016-06.io.hyperpath:other")
	var se *initiator.StatusError
	if _, err := e.mod.Attach(ctx, cfg, -1); !errors.As(err, &se) || se.Status.Code() != proto.StatusConnectInvalidParameters {
		t.Errorf("unknown subsystem: %v", err)
	}
	if len(e.mod.Controllers()) != 1 {
		t.Errorf("%d controllers after failed attaches", len(e.mod.Controllers()))
	}
}
