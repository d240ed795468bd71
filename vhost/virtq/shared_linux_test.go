package virtq

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func closeFD(fd int) { unix.Close(fd) }

// sharedMemfd creates a memfd of size bytes mapped twice: once as the
// front-end's memory and once, through MapRegion, as the back-end's, the
// way QEMU and a vhost-user back-end each map guest RAM.
func sharedMemfd(t testing.TB, size uint64, gpa uint64, mmapOffset uint64) (front []byte, back Region, fd int) {
	t.Helper()
	fd, err := unix.MemfdCreate("virtq-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Ftruncate(fd, int64(mmapOffset+size)); err != nil {
		t.Fatal(err)
	}
	fm, err := MapFD(fd, mmapOffset, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fm.Unmap() })
	front = fm.Bytes()
	back, err = MapRegion(fd, RegionDesc{GuestAddr: gpa, Size: size, UserAddr: uint64(hostAddr(front)), MmapOffset: mmapOffset})
	if err != nil {
		t.Fatal(err)
	}
	return front, back, fd
}

func TestMapRegionOffsets(t *testing.T) {
	page := uint64(os.Getpagesize())
	// An mmap offset that is not page aligned still lands on the right
	// byte: the mapping starts at the page below.
	front, back, _ := sharedMemfd(t, 3*page, 0x10000, page+0x800)
	mem, err := NewGuestMemory(back)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Unmap()
	front[5] = 0x5a
	b, err := mem.Slice(0x10005, 1)
	if err != nil || b[0] != 0x5a || &b[0] == &front[5] {
		t.Fatalf("%v %v", b, err)
	}
	b[0] = 0xa5
	if front[5] != 0xa5 {
		t.Fatal("back-end write not seen by the front-end")
	}
	u, err := mem.UserSlice(uint64(hostAddr(front))+7, 1)
	if err != nil || &u[0] != &back.Host[7] {
		t.Fatal(err)
	}
	if _, err := MapRegion(-1, RegionDesc{Size: page}); err == nil {
		t.Fatal("bad fd mapped")
	}
	if _, err := MapRegion(0, RegionDesc{GuestAddr: ^uint64(0), Size: page}); !errors.Is(err, ErrRegion) {
		t.Fatal("wrapping region mapped")
	}
}

func TestUnmapExcept(t *testing.T) {
	page := uint64(os.Getpagesize())
	_, a, _ := sharedMemfd(t, page, 0, 0)
	_, b, _ := sharedMemfd(t, page, page, 0)
	_, c, _ := sharedMemfd(t, page, 4*page, 0)
	old, err := NewGuestMemory(a, b)
	if err != nil {
		t.Fatal(err)
	}
	// REM_MEM_REG b, ADD_MEM_REG c.
	mid, removed, err := old.Without(page, page, b.UserAddr)
	if err != nil {
		t.Fatal(err)
	}
	next, err := mid.With(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.UnmapExcept(next); err != nil {
		t.Fatal(err)
	}
	if removed.mapping.whole != nil {
		t.Fatal("removed region still mapped")
	}
	if a.mapping.whole == nil {
		t.Fatal("kept region unmapped")
	}
	s, _ := next.Slice(0, 8)
	s[0] = 1 // still mapped: must not fault
	if err := next.Unmap(); err != nil {
		t.Fatal(err)
	}
	if a.mapping.whole != nil || c.mapping.whole != nil {
		t.Fatal("Unmap left mappings")
	}
	if err := next.Unmap(); err != nil {
		t.Fatal("second Unmap")
	}
}

// TestSharedMemfdConcurrent runs our driver and our device in two
// goroutines on two mappings of one memfd, with the device translating the
// user addresses vhost-user would send. Each request carries a sequence
// number the device doubles into the driver's in buffer.
func TestSharedMemfdConcurrent(t *testing.T) {
	const (
		size  = 1 << 20
		gpa   = 0x40000000
		qsize = 128
		total = 50000
	)
	for _, eventIdx := range []bool{false, true} {
		front, back, _ := sharedMemfd(t, size, gpa, 0)
		devMem, err := NewGuestMemory(back)
		if err != nil {
			t.Fatal(err)
		}
		// The front-end describes its own mapping with the same guest
		// addresses.
		drvMem, err := NewGuestMemory(NewRegion(gpa, uint64(hostAddr(front)), front))
		if err != nil {
			t.Fatal(err)
		}
		lay, _ := NewLayout(qsize, 4096)
		cfg := Config{Size: qsize, Desc: gpa + lay.DescOff, Avail: gpa + lay.AvailOff, Used: gpa + lay.UsedOff, EventIdx: eventIdx}
		d, err := NewDriver(drvMem, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ucfg := cfg
		ucfg.Addrs = UserAddrs
		ucfg.Desc += uint64(hostAddr(front)) - gpa
		ucfg.Avail += uint64(hostAddr(front)) - gpa
		ucfg.Used += uint64(hostAddr(front)) - gpa
		q, err := NewQueue(devMem, ucfg, 0)
		if err != nil {
			t.Fatal(err)
		}
		q.DisableNotify()
		d.DisableInterrupts()

		var wg sync.WaitGroup
		stop := make(chan struct{})
		deadline := time.Now().Add(60 * time.Second)
		wg.Add(1)
		var devErr error
		go func() { // device
			defer wg.Done()
			heads := make([]uint16, 32)
			c := NewChain(4)
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := q.Pop(heads)
				if err != nil {
					devErr = err
					return
				}
				if n == 0 {
					runtime.Gosched()
					continue
				}
				for _, h := range heads[:n] {
					if err := q.Walk(h, c); err != nil {
						devErr = err
						return
					}
					if len(c.Out()) != 1 || len(c.In()) != 1 || !devMem.Contains(c.Segs[0]) {
						devErr = errors.New("unexpected chain shape")
						return
					}
					v := binary.LittleEndian.Uint64(c.Out()[0])
					binary.LittleEndian.PutUint64(c.In()[0], 2*v)
					q.Push(h, 8)
				}
				q.Publish()
				q.NeedsNotify()
			}
		}()

		type slot struct {
			seq uint64
			in  uint64
		}
		inflight := make([]slot, qsize)
		used := make([]Used, 32)
		var sent, got uint64
		for got < total {
			if time.Now().After(deadline) {
				t.Fatal("timed out")
			}
			for sent < total && d.NumFree() >= 2 {
				k := sent % (qsize * 2)
				out := gpa + 0x10000 + k*16
				in := out + 8
				binary.LittleEndian.PutUint64(front[out-gpa:], sent)
				h, err := d.Add([]Buf{{out, 8}}, []Buf{{in, 8}})
				if err != nil {
					t.Fatal(err)
				}
				inflight[h] = slot{sent, in}
				sent++
			}
			d.Publish()
			d.NeedsKick()
			n, err := d.Reap(used)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				runtime.Gosched()
			}
			for _, u := range used[:n] {
				s := inflight[u.Head]
				if v := binary.LittleEndian.Uint64(front[s.in-gpa:]); v != 2*s.seq || u.Len != 8 {
					t.Fatalf("request %d: got %d len %d", s.seq, v, u.Len)
				}
				got++
			}
		}
		close(stop)
		wg.Wait()
		if devErr != nil {
			t.Fatal(devErr)
		}
		devMem.Unmap()
	}
}

func TestNewInflightFD(t *testing.T) {
	fd, mp, err := NewInflightFD(2, 128)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(fd)
	defer mp.Unmap()
	if uint64(len(mp.Bytes())) != InflightSize(2, 128) {
		t.Fatal(len(mp.Bytes()))
	}
	for _, b := range mp.Bytes() {
		if b != 0 {
			t.Fatal("not zeroed")
		}
	}
	// The front-end hands the fd back after a restart: map it again and
	// see the same bytes.
	mp.Bytes()[100] = 42
	mp2, err := MapFD(fd, 0, InflightSize(2, 128))
	if err != nil {
		t.Fatal(err)
	}
	defer mp2.Unmap()
	if mp2.Bytes()[100] != 42 {
		t.Fatal("second mapping does not share memory")
	}
	if _, err := MapFD(fd, 0, InflightSize(2, 128)+1); !errors.Is(err, ErrRegion) {
		t.Fatalf("mapping past the end of the file: %v", err)
	}
}
