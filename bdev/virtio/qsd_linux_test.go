package virtio

import (
	"bytes"
	"strings"
	"testing"

	"hyperpath/bdev"
)

// TestQSDFileRoundTrip attaches to qemu-storage-daemon exporting a file in
// /dev/shm and checks reads and writes both ways: through our reads and in
// the file itself, with zero-copy buffers from AllocBuffer, with heap
// buffers (bounced), and with many small iovecs.
func TestQSDFileRoundTrip(t *testing.T) {
	const size = 8 << 20
	file := shmFile(t, size, 0xa5)
	qsd := startQSD(t, qsdConfig{File: file, Queues: 1})
	e := newEnv(t)
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 256})
	info := d.Info()
	if info.BlockSize != 512 || info.NumBlocks != size/512 || info.Module != ModuleName || info.ProductName != ProductName {
		t.Fatalf("info %+v", info)
	}
	if info.MaxTransferBlocks == 0 || info.MaxTransferBlocks*512 > DefaultMaxTransferBytes {
		t.Fatalf("max transfer %d blocks", info.MaxTransferBlocks)
	}
	for _, ft := range []bdev.IOType{bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOUnmap, bdev.IOWriteZeroes} {
		if !d.Supports(ft) {
			t.Errorf("QSD file export: %v not supported", ft)
		}
	}
	ch := e.channel("Virtio0")

	// The file's initial content, read zero-copy.
	zc := d.AllocBuffer(64 << 10)
	if zc == nil {
		t.Fatal("AllocBuffer returned nil")
	}
	if st := e.do(ch, bdev.IORead, 0, 128, zc); st != bdev.StatusSuccess {
		t.Fatalf("read: %v", st)
	}
	if !bytes.Equal(zc, bytes.Repeat([]byte{0xa5}, len(zc))) {
		t.Fatal("initial read does not show the file's content")
	}

	// Zero-copy write at block 1000, visible in the file.
	pattern(zc, 1)
	if st := e.do(ch, bdev.IOWrite, 1000, 128, zc); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	if got := fileAt(t, file, 1000*512, len(zc)); !bytes.Equal(got, zc) {
		t.Fatal("zero-copy write did not reach the file")
	}
	s0 := d.Stats()
	if s0.ZeroCopyIOs != 2 || s0.BouncedIOs != 0 {
		t.Fatalf("stats after zero-copy IO: %+v", s0)
	}

	// Heap buffers are bounced: write one, read it back into another.
	heap := make([]byte, 192<<10)
	pattern(heap, 2)
	if st := e.do(ch, bdev.IOWrite, 4096, uint64(len(heap)/512), heap); st != bdev.StatusSuccess {
		t.Fatalf("bounced write: %v", st)
	}
	if got := fileAt(t, file, 4096*512, len(heap)); !bytes.Equal(got, heap) {
		t.Fatal("bounced write did not reach the file")
	}
	back := make([]byte, len(heap))
	if st := e.do(ch, bdev.IORead, 4096, uint64(len(back)/512), back); st != bdev.StatusSuccess {
		t.Fatalf("bounced read: %v", st)
	}
	if !bytes.Equal(back, heap) {
		t.Fatal("bounced read differs from what was written")
	}
	if s := d.Stats(); s.BouncedIOs != 2 || s.BouncedBytes != 2*uint64(len(heap)) || s.ZeroCopyIOs != 2 {
		t.Fatalf("stats after bounced IO: %+v", s)
	}

	// Many iovecs in the shared region: 200 segments of 512 bytes exceed
	// QSD's seg_max (126), so the request falls back to the bounce pool;
	// 100 stay zero copy.
	for _, nseg := range []int{100, 200} {
		big := d.AllocBuffer(nseg * 512)
		pattern(big, byte(nseg))
		iovs := make([][]byte, nseg)
		for i := range iovs {
			iovs[i] = big[i*512 : (i+1)*512]
		}
		before := d.Stats()
		if st := e.do(ch, bdev.IOWrite, 8192, uint64(nseg), iovs...); st != bdev.StatusSuccess {
			t.Fatalf("%d-segment write: %v", nseg, st)
		}
		if got := fileAt(t, file, 8192*512, nseg*512); !bytes.Equal(got, big) {
			t.Fatalf("%d-segment write did not reach the file", nseg)
		}
		clear(big)
		if st := e.do(ch, bdev.IORead, 8192, uint64(nseg), iovs...); st != bdev.StatusSuccess {
			t.Fatalf("%d-segment read: %v", nseg, st)
		}
		want := make([]byte, nseg*512)
		pattern(want, byte(nseg))
		if !bytes.Equal(big, want) {
			t.Fatalf("%d-segment read differs", nseg)
		}
		after := d.Stats()
		bounced := after.BouncedIOs - before.BouncedIOs
		if wantB := map[int]uint64{100: 0, 200: 2}[nseg]; bounced != wantB || d.segMax != 126 {
			t.Fatalf("%d segments (seg_max %d): %d IOs bounced, want %d", nseg, d.segMax, bounced, wantB)
		}
		d.FreeBuffer(big)
	}

	// A read larger than the device's max transfer is split by the generic
	// layer and still lands whole.
	large := d.AllocBuffer(3 << 20)
	if st := e.do(ch, bdev.IORead, 0, uint64(len(large)/512), large); st != bdev.StatusSuccess {
		t.Fatalf("3 MiB read: %v", st)
	}
	if want := fileAt(t, file, 0, len(large)); !bytes.Equal(large, want) {
		t.Fatal("3 MiB read differs from the file")
	}
	d.FreeBuffer(large)
	d.FreeBuffer(zc)
	if d.arena.inUse() != 0 {
		t.Fatalf("arena holds %d bytes after every buffer was freed", d.arena.inUse())
	}
	if d.State() != StateConnected || d.LastError() != "" {
		t.Fatalf("state %v %q", d.State(), d.LastError())
	}
}

// TestQSDFlushDiscardWriteZeroes checks the IO types without data,
// including ranges larger than QSD's per-request limits (32768 sectors),
// which the module cuts into several requests.
func TestQSDFlushDiscardWriteZeroes(t *testing.T) {
	const size = 64 << 20
	file := shmFile(t, size, 0x5a)
	qsd := startQSD(t, qsdConfig{File: file})
	e := newEnv(t)
	d := e.attach(Options{Name: "Virtio0", SocketPath: qsd.sock, QueueSize: 16})
	if d.cfg.MaxWriteZeroesSectors != 32768 || d.cfg.MaxDiscardSectors != 32768 {
		t.Logf("QSD limits: write zeroes %d, discard %d sectors", d.cfg.MaxWriteZeroesSectors, d.cfg.MaxDiscardSectors)
	}
	ch := e.channel("Virtio0")
	if st := e.do(ch, bdev.IOFlush, 0, 0); st != bdev.StatusSuccess {
		t.Fatalf("flush: %v", st)
	}
	// 40 MiB of zeroes from block 2048: more requests than the 16-entry
	// ring holds at once (3 descriptors each), so the range is issued in
	// waves as completions free slots.
	const zOff, zLen = 2048, 40 << 20
	before := d.Stats().Requests
	if st := e.do(ch, bdev.IOWriteZeroes, zOff, zLen/512); st != bdev.StatusSuccess {
		t.Fatalf("write zeroes: %v", st)
	}
	if n := d.Stats().Requests - before; n != (zLen/512+32767)/32768 {
		t.Fatalf("write zeroes took %d requests", n)
	}
	if got := fileAt(t, file, zOff*512, zLen); !bytes.Equal(got, make([]byte, zLen)) {
		t.Fatal("write zeroes did not zero the file")
	}
	if got := fileAt(t, file, zOff*512-512, 512); !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 512)) {
		t.Fatal("write zeroes touched the block before its range")
	}
	if got := fileAt(t, file, zOff*512+zLen, 512); !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 512)) {
		t.Fatal("write zeroes touched the block after its range")
	}
	// Discard the whole disk: 64 MiB = 4 requests of 16 MiB. QSD punches
	// holes (discard=unmap), which read back as zeroes on tmpfs.
	if st := e.do(ch, bdev.IOUnmap, 0, size/512); st != bdev.StatusSuccess {
		t.Fatalf("discard: %v", st)
	}
	buf := d.AllocBuffer(1 << 20)
	if st := e.do(ch, bdev.IORead, 0, uint64(len(buf)/512), buf); st != bdev.StatusSuccess {
		t.Fatalf("read after discard: %v", st)
	}
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Log("discarded blocks do not read back as zeroes (allowed by virtio)")
	}
	// Out of range IO is refused by the generic layer before the module.
	if st := e.do(ch, bdev.IOUnmap, size/512-1, 2); st != bdev.StatusInvalid {
		t.Fatalf("discard past the end: %v", st)
	}
}

// TestQSDNullCo attaches to a null-co export with the default queue size
// and checks the features and config it reports.
func TestQSDNullCo(t *testing.T) {
	qsd := startQSD(t, qsdConfig{NullBytes: 1 << 30, Queues: 2})
	// Three queues are more than QSD serves. (QSD serves one front end at
	// a time: check this before attaching for good.)
	_, err := New(Options{Name: "Null1", SocketPath: qsd.sock, QueueCount: 3})
	if err == nil || !strings.Contains(err.Error(), "exceeds the 2 queue(s)") {
		t.Fatalf("vq_count 3 on a 2-queue export: %v", err)
	}
	e := newEnv(t)
	d := e.attach(Options{Name: "Null0", SocketPath: qsd.sock, QueueCount: 2})
	c := d.Config()
	if c.CapacitySectors != 1<<21 || c.NumQueues != 2 || c.BlkSize != 512 {
		t.Fatalf("config %+v", c)
	}
	if f := d.Features(); f&FeatureMQ == 0 || f&FeatureFlush == 0 {
		t.Fatalf("features %#x", f)
	}
	if !d.eventIdx {
		t.Error("EVENT_IDX not negotiated with QSD")
	}
	ch := e.channel("Null0")
	buf := d.AllocBuffer(4096)
	pattern(buf, 9)
	if st := e.do(ch, bdev.IORead, 12345, 8, buf); st != bdev.StatusSuccess || !bytes.Equal(buf, make([]byte, 4096)) {
		t.Fatalf("read of null-co: %v", st)
	}
}
