package errinject

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/bdev/local"
	"hyperpath/reactor"
)

// An error bdev on a file served by bdev/local: a reader that checks a
// CRC per block, as a guest's file system or a replica would, sees exactly
// the block that corrupt_data hit, and a rewrite through a clean path
// heals it.
func TestStackedOnLocalFileChecksums(t *testing.T) {
	runtime.LockOSThread() // bdev/local's rings belong to this thread
	defer runtime.UnlockOSThread()
	r, err := reactor.New(0, reactor.Options{Core: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reg := bdev.NewRegistry(bdev.Options{Reactors: []*reactor.Reactor{r}})
	m := moduleFor(reg)
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ld, err := local.New(local.Options{Name: "File0", Filename: path, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(ld); err != nil {
		t.Fatal(err)
	}
	if err := m.Create("File0", bdev.UUID{}); err != nil {
		t.Fatal(err)
	}
	d, _ := m.Lookup("EE_File0")
	desc, err := reg.Open("EE_File0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := desc.GetChannel(r)
	if err != nil {
		t.Fatal(err)
	}
	do := func(typ bdev.IOType, off, n uint64, buf []byte) bdev.Status {
		io := ch.Alloc()
		io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, off, n, [][]byte{buf}
		st := bdev.StatusPending
		ch.Submit(io, func(io *bdev.IO) { st = io.Status })
		for i := 0; st == bdev.StatusPending && i < 1e7; i++ {
			r.Poll(reactor.Now())
		}
		return st
	}
	const blocks = 16
	buf, err := unix.Mmap(-1, 0, blocks*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	// Each block: payload, then its CRC32 in the last 4 bytes.
	for b := 0; b < blocks; b++ {
		blk := buf[b*4096 : (b+1)*4096]
		for i := range blk[:4092] {
			blk[i] = byte(b*31 + i)
		}
		binary.LittleEndian.PutUint32(blk[4092:], crc32.ChecksumIEEE(blk[:4092]))
	}
	if st := do(bdev.IOWrite, 0, blocks, buf); st != bdev.StatusSuccess {
		t.Fatalf("write: %v", st)
	}
	bad := func() []int {
		var out []int
		for b := 0; b < blocks; b++ {
			blk := buf[b*4096 : (b+1)*4096]
			if crc32.ChecksumIEEE(blk[:4092]) != binary.LittleEndian.Uint32(blk[4092:]) {
				out = append(out, b)
			}
		}
		return out
	}
	clear(buf)
	if st := do(bdev.IORead, 0, blocks, buf); st != bdev.StatusSuccess || len(bad()) != 0 {
		t.Fatalf("clean read: %v, bad blocks %v", st, bad())
	}

	// Corrupt one byte of block 5 on the next read.
	if err := d.Inject(bdev.IORead, Injection{Type: ErrorCorruptData, Num: 1, CorruptOffset: 5*4096 + 100, CorruptValue: 0x80}); err != nil {
		t.Fatal(err)
	}
	clear(buf)
	if st := do(bdev.IORead, 0, blocks, buf); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	if b := bad(); len(b) != 1 || b[0] != 5 {
		t.Fatalf("checksum failures in blocks %v, want [5]", b)
	}
	// The file itself is intact: the next read is clean.
	clear(buf)
	if do(bdev.IORead, 0, blocks, buf); len(bad()) != 0 {
		t.Fatalf("second read: bad blocks %v", bad())
	}

	// A corrupted write lands on the file: the damage is persistent.
	d.Inject(bdev.IOWrite, Injection{Type: ErrorCorruptData, Num: 1, CorruptOffset: 2*4096 + 7, CorruptValue: 1})
	if st := do(bdev.IOWrite, 0, blocks, buf); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	clear(buf)
	do(bdev.IORead, 0, blocks, buf)
	if b := bad(); len(b) != 1 || b[0] != 2 {
		t.Fatalf("after a corrupted write: bad blocks %v, want [2]", b)
	}

	ch.PutChannel()
	for i := 0; i < 10; i++ {
		r.Poll(reactor.Now())
	}
	desc.Close()
	if err := reg.Unregister("EE_File0", nil); err != nil {
		t.Fatal(err)
	}
	if err := reg.Unregister("File0", nil); err != nil {
		t.Fatal(err)
	}
}
