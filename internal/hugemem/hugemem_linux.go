// Package hugemem allocates the shared, pinned buffers Hyperpath's data path
// uses: malloc bdev RAM, our virtio front end's vrings and data buffers.
//
// Memory comes from a memfd created with MFD_HUGETLB (2 MiB pages) when the
// kernel has hugepages reserved (vm.nr_hugepages > 0), so it can be passed to
// another process (vhost-user SET_MEM_TABLE) and registered with an RDMA NIC
// once, whole. Without hugepages it falls back to an ordinary memfd of
// 4 KiB pages and logs one warning naming the sysctl to set.
//
// A Region is owned by whoever allocated it; Free unmaps and closes it.
package hugemem

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// HugePageSize is the page size of hugepage-backed regions.
const HugePageSize = 2 << 20

// Region is one shared mapping backed by a memfd.
type Region struct {
	// Mem is the mapping, MAP_SHARED, read-write.
	Mem []byte
	// Fd is the memfd; pass it to peers that map the same memory.
	Fd int
	// Huge reports whether the region is backed by 2 MiB hugepages.
	Huge bool
}

var (
	warnOnce sync.Once
	limit    atomic.Int64 // 0 = unlimited
	inUse    atomic.Int64
)

// ErrLimit is returned when an allocation would exceed SetLimit's budget.
var ErrLimit = errors.New("memory budget exhausted (raise it with -s)")

// SetLimit caps the bytes all live regions may use together (the daemon's
// -s option); 0 removes the cap.
func SetLimit(bytes int64) { limit.Store(bytes) }

// InUse returns the bytes held by live regions.
func InUse() int64 { return inUse.Load() }

// Policy selects the backing.
type Policy uint8

const (
	// PreferHuge uses hugepages when possible, else 4 KiB pages with a
	// one-time warning.
	PreferHuge Policy = iota
	// RequireHuge fails when hugepages are not available.
	RequireHuge
	// SmallPages never uses hugepages.
	SmallPages
)

// ErrNoHugepages is returned under RequireHuge when the kernel could not
// supply hugepages.
var ErrNoHugepages = errors.New("no hugepages available (set vm.nr_hugepages, e.g. sysctl -w vm.nr_hugepages=1024)")

// Alloc maps size bytes (rounded up to the page size) named name.
func Alloc(name string, size int, p Policy) (*Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("hugemem: size %d must be positive", size)
	}
	if p != SmallPages {
		r, err := alloc(name, roundUp(size, HugePageSize), unix.MFD_HUGETLB|unix.MFD_HUGE_2MB)
		if err == nil {
			r.Huge = true
			return r, nil
		}
		if p == RequireHuge {
			return nil, fmt.Errorf("hugemem %s: %w: %v", name, ErrNoHugepages, err)
		}
		warnOnce.Do(func() {
			slog.Warn("hugepages unavailable, using 4 KiB pages: memory is not pinned to 2 MiB pages; set vm.nr_hugepages (sysctl -w vm.nr_hugepages=1024) for full speed",
				"reason", err.Error())
		})
	}
	return alloc(name, roundUp(size, 4096), 0)
}

func alloc(name string, size int, flags int) (*Region, error) {
	if l := limit.Load(); l > 0 && inUse.Load()+int64(size) > l {
		return nil, fmt.Errorf("%w: %d bytes in use, %d requested, limit %d", ErrLimit, inUse.Load(), size, l)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|flags)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ftruncate %d: %w", size, err)
	}
	flagsMap := unix.MAP_SHARED | unix.MAP_POPULATE
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, flagsMap)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	inUse.Add(int64(size))
	return &Region{Mem: mem, Fd: fd}, nil
}

// Free unmaps the region and closes its fd.
func (r *Region) Free() error {
	if r.Mem == nil {
		return nil
	}
	inUse.Add(-int64(len(r.Mem)))
	err := unix.Munmap(r.Mem)
	r.Mem = nil
	if e := unix.Close(r.Fd); err == nil {
		err = e
	}
	return err
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
