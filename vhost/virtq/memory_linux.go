package virtq

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Unmap releases the mapping. Every slice into it becomes invalid: touching
// one afterwards faults. Unmapping twice is a no-op.
func (mp *Mapping) Unmap() error {
	if mp == nil || mp.whole == nil {
		return nil
	}
	err := unix.Munmap(mp.whole)
	mp.whole, mp.data = nil, nil
	if err != nil {
		return fmt.Errorf("virtq: munmap: %w", err)
	}
	return nil
}

// MapFD maps size bytes of fd from offset, shared and read-write. The
// mapping is aligned to the file's block size (the huge page size on
// hugetlbfs, where offsets and lengths must be huge-page aligned). fd may
// be closed afterwards; the mapping stays valid.
func MapFD(fd int, offset, size uint64) (*Mapping, error) {
	if size == 0 || offset+size < offset {
		return nil, fmt.Errorf("virtq: map fd %d offset 0x%x size 0x%x: %w", fd, offset, size, ErrRegion)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("virtq: fstat fd %d: %w", fd, err)
	}
	// A file shorter than the range would fault (SIGBUS) on first touch.
	if st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Size) < offset+size {
		return nil, fmt.Errorf("virtq: map fd %d: file is 0x%x bytes, range ends at 0x%x: %w", fd, st.Size, offset+size, ErrRegion)
	}
	align := uint64(os.Getpagesize())
	if b := uint64(st.Blksize); b > align && b&(b-1) == 0 {
		align = b
	}
	start := offset &^ (align - 1)
	end := offset + size
	if end > ^uint64(0)-(align-1) {
		return nil, fmt.Errorf("virtq: map fd %d offset 0x%x size 0x%x: %w", fd, offset, size, ErrRegion)
	}
	end = (end + align - 1) &^ (align - 1)
	length := end - start
	if length > uint64(maxMapLen) || start > uint64(maxMapLen) {
		return nil, fmt.Errorf("virtq: map fd %d: 0x%x bytes at 0x%x too large: %w", fd, length, start, ErrRegion)
	}
	whole, err := unix.Mmap(fd, int64(start), int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("virtq: mmap fd %d offset 0x%x length 0x%x: %w", fd, start, length, err)
	}
	d := offset - start
	return &Mapping{whole: whole, data: whole[d : d+size : d+size]}, nil
}

// maxMapLen bounds a single mapping (1 TiB per region is more than any
// guest this target serves).
const maxMapLen = 1 << 40

// RegionDesc describes a region to map from a file descriptor, as
// SET_MEM_TABLE and ADD_MEM_REG carry it.
type RegionDesc struct {
	GuestAddr  uint64 // guest physical address
	Size       uint64
	UserAddr   uint64 // front-end virtual address
	MmapOffset uint64 // where the region starts in the fd
}

// MapRegion maps a region of guest memory from fd. The region owns its
// mapping: GuestMemory.Unmap / UnmapExcept release it. The caller still
// owns fd and may close it at once.
func MapRegion(fd int, d RegionDesc) (Region, error) {
	if d.GuestAddr+d.Size < d.GuestAddr || d.UserAddr+d.Size < d.UserAddr {
		return Region{}, fmt.Errorf("virtq: region guest 0x%x user 0x%x size 0x%x wraps: %w", d.GuestAddr, d.UserAddr, d.Size, ErrRegion)
	}
	mp, err := MapFD(fd, d.MmapOffset, d.Size)
	if err != nil {
		return Region{}, err
	}
	return Region{GuestAddr: d.GuestAddr, UserAddr: d.UserAddr, Host: mp.Bytes(), mapping: mp}, nil
}

// Unmap releases every mapping the table owns (regions from MapRegion).
// Precondition: no queue uses m or any table sharing its mappings, and no
// request holds slices into them.
func (m *GuestMemory) Unmap() error {
	return m.UnmapExcept(nil)
}

// UnmapExcept releases the mappings m owns that keep does not hold: after
// a table change, old.UnmapExcept(new) frees exactly what was replaced or
// removed. Precondition: as for Unmap, for the mappings released.
func (m *GuestMemory) UnmapExcept(keep *GuestMemory) error {
	var errs []error
	for _, r := range m.Regions() {
		if r.mapping == nil {
			continue
		}
		shared := false
		for _, k := range keep.Regions() {
			if k.mapping == r.mapping {
				shared = true
				break
			}
		}
		if !shared {
			if err := r.mapping.Unmap(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
