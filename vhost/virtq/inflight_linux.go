package virtq

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// NewInflightFD creates the shared area a back-end answers GET_INFLIGHT_FD
// with: a zero-filled memfd of InflightSize(numQueues, queueSize) bytes,
// mapped. The caller sends fd (mmap_offset 0, mmap_size len(mp.Bytes())),
// keeps it to answer a later GET, and wraps mp.Bytes() with NewInflight.
func NewInflightFD(numQueues, queueSize uint16) (fd int, mp *Mapping, err error) {
	size := InflightSize(numQueues, queueSize)
	if size == 0 {
		return -1, nil, fmt.Errorf("virtq: inflight area for %d queues of %d: %w", numQueues, queueSize, ErrInflight)
	}
	fd, err = unix.MemfdCreate("hyperpath-inflight", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, nil, fmt.Errorf("virtq: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("virtq: ftruncate inflight memfd: %w", err)
	}
	// The front-end must not be able to shrink the area under us.
	unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW)
	mp, err = MapFD(fd, 0, size)
	if err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, mp, nil
}
