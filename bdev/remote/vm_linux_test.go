//go:build linux

package remote

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator"
	"hyperpath/test/vm"
)

// TestKernelTarget: the Linux kernel's nvmet-tcp target in a guest (file
// namespace, configfs, port 4420 forwarded to 127.0.0.1:<port>) as the
// peer nobody here wrote: discovery, then bdev_nvme attach, write/read/
// verify at several sizes and queue depths with digests off and on,
// unmap, write zeroes, flush and reset, then detach.
func TestKernelTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a guest that runs for tens of seconds; skipped under -short")
	}
	img := vm.Require(t)
	port := vm.FreePort(t)
	g := vm.StartKernelTarget(t, img, vm.KernelTarget{HostPort: port, Backing: "file", SizeMiB: 64, Timeout: 4 * time.Minute})
	sport := strconv.Itoa(port)

	// The forwarded port is up before nvmet answers on it: retry.
	var log *initiator.DiscoveryLog
	var err error
	for i := 0; i < 50; i++ {
		log, err = initiator.Discover(context.Background(), initiator.Options{TRAddr: "127.0.0.1", TRSvcID: sport, Logger: quietLog,
			ConnectTimeout: 10 * time.Second})
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("discovery: %v\n%s", err, g.ConsoleTail(2000))
	}
	found := false
	for _, e := range log.Entries {
		found = found || e.SubNQN == vm.DefaultTargetNQN
	}
	if !found {
		t.Fatalf("discovery log %+v lacks %s", log.Entries, vm.DefaultTargetNQN)
	}

	for i, dg := range []bool{false, true} {
		t.Run(fmt.Sprintf("digests-%v", dg), func(t *testing.T) {
			e := newEnv(t, 2)
			cfg := cfgFor(fmt.Sprintf("Nvme%d", i), "127.0.0.1", sport, vm.DefaultTargetNQN)
			cfg.HeaderDigest, cfg.DataDigest = dg, dg
			cfg.ConnectTimeout = 20 * time.Second
			// QEMU's user-mode network accepts on the host port before the
			// guest's side of the connection is up; on a loaded machine the
			// guest may not answer in time and the host side is reset.
			// Retry that only: any other error fails at once.
			c, err := e.mod.Attach(context.Background(), cfg, -1)
			for try := 1; try < 5 && errors.Is(err, syscall.ECONNRESET); try++ {
				t.Logf("attach try %d: %v; retrying", try, err)
				time.Sleep(500 * time.Millisecond)
				c, err = e.mod.Attach(context.Background(), cfg, -1)
			}
			if err != nil {
				t.Fatalf("attach: %v\n%s", err, g.ConsoleTail(2000))
			}
			name := c.BdevNames()[0]
			b, _ := e.reg.Get(name)
			info := b.Info()
			id := c.Ctrlr().IdentifyController()
			t.Logf("%s: %d x %d bytes, MN %q, cntlid %d, IOCCSZ %d, MDTS %d, %d I/O queues of %d, max transfer %d blocks",
				name, info.NumBlocks, info.BlockSize, id.MN, c.Ctrlr().CNTLID(), id.IOCCSZ, id.MDTS,
				len(c.Ctrlr().IOQPairs()), c.Ctrlr().QueueDepth(), info.MaxTransferBlocks)
			if info.NumBlocks*uint64(info.BlockSize) != 64<<20 {
				t.Errorf("namespace of %d bytes, want 64 MiB", info.NumBlocks*uint64(info.BlockSize))
			}
			bs := uint64(info.BlockSize)
			errs := make(chan error, len(e.rs))
			for k, r := range e.rs {
				_, ch := e.open(name, r)
				go func() {
					base := uint64(k) * (32 << 20) / bs
					for _, run := range []struct {
						qd    int
						bytes uint64
					}{{1, 4096}, {16, 4096}, {4, 128 << 10}, {32, 8192}} {
						blocks := run.bytes / bs
						if err := verifyRunBS(ch, t, base, 24, blocks, bs, run.qd, uint64(run.qd)*run.bytes+uint64(k)); err != nil {
							errs <- fmt.Errorf("reactor %d qd %d %d bytes: %w", k, run.qd, run.bytes, err)
							return
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
			_, ch := e.open(name, e.rs[0])
			for _, typ := range []bdev.IOType{bdev.IOFlush, bdev.IOReset, bdev.IOUnmap} {
				if !b.Device().Supports(typ) {
					t.Errorf("%v not supported", typ)
				}
			}
			if st := one(t, ch, bdev.IOFlush, 0, 0); st != bdev.StatusSuccess {
				t.Errorf("flush: %v", st)
			}
			if st := one(t, ch, bdev.IOReset, 0, 0); st != bdev.StatusSuccess {
				t.Errorf("reset: %v", st)
			}
			// Deallocate punches a hole in the namespace file: zeroes.
			if st := one(t, ch, bdev.IOUnmap, 0, 32); st != bdev.StatusSuccess {
				t.Errorf("unmap: %v", st)
			}
			zero := make([]byte, 32*bs)
			if st := one(t, ch, bdev.IORead, 0, 32, zero); st != bdev.StatusSuccess {
				t.Fatalf("read back zeroes: %v", st)
			}
			for i, v := range zero {
				if v != 0 {
					t.Fatalf("byte %d of the unmapped range is %#x", i, v)
				}
			}
			// nvmet's file backend implements Write Zeroes with
			// FALLOC_FL_ZERO_RANGE, which the guest's tmpfs lacks: the
			// command reaches the target and fails there.
			if b.Device().Supports(bdev.IOWriteZeroes) {
				st := one(t, ch, bdev.IOWriteZeroes, 32, 16)
				t.Logf("write zeroes on the tmpfs-backed namespace: %v", st)
			}
			if c.Ctrlr().Resets() != 1 {
				t.Errorf("%d resets, want 1 (the reset IO)", c.Ctrlr().Resets())
			}
		})
	}
}

// verifyRunBS is verifyRun for any block size.
func verifyRunBS(ch *bdev.IOChannel, t testing.TB, base uint64, n int, blocks, bs uint64, qd int, seed uint64) error {
	size := int(blocks * bs)
	data := make([]byte, n*size)
	pattern(data, seed)
	back := make([]byte, len(data))
	var w, r []ioSpec
	for i := 0; i < n; i++ {
		off := base + uint64(i)*blocks
		w = append(w, ioSpec{typ: bdev.IOWrite, off: off, n: blocks, iovs: [][]byte{data[i*size : (i+1)*size]}})
		r = append(r, ioSpec{typ: bdev.IORead, off: off, n: blocks, iovs: [][]byte{back[i*size : (i+1)*size]}})
	}
	for _, set := range [][]ioSpec{w, r} {
		for i, st := range runIOs(t, ch, set, qd) {
			if st != bdev.StatusSuccess {
				return fmt.Errorf("IO %d (%v): %v", i, set[i].typ, st)
			}
		}
	}
	for i := range data {
		if back[i] != data[i] {
			return fmt.Errorf("byte %d read back differs", i)
		}
	}
	return nil
}
