package virtq

import "fmt"

// AddrKind says which address space a ring's addresses are in.
type AddrKind uint8

const (
	// GuestAddrs: guest physical addresses (virtio transports, our own
	// driver).
	GuestAddrs AddrKind = iota
	// UserAddrs: front-end virtual addresses, as vhost-user SET_VRING_ADDR
	// gives them when no IOMMU is negotiated.
	UserAddrs
)

// Config is what a ring needs from the control path: its size and
// addresses (SET_VRING_NUM, SET_VRING_ADDR) and the negotiated features.
type Config struct {
	Size     uint16   // queue size N, a power of two <= MaxQueueSize
	Desc     uint64   // descriptor table address
	Avail    uint64   // available (driver) ring address
	Used     uint64   // used (device) ring address
	Addrs    AddrKind // address space of Desc, Avail and Used
	EventIdx bool     // VIRTIO_F_EVENT_IDX negotiated
	Indirect bool     // VIRTIO_F_INDIRECT_DESC negotiated
}

func (c *Config) validate() error {
	if !ValidSize(uint32(c.Size)) {
		return fmt.Errorf("queue size %d is not a power of two in [1, %d]: %w", c.Size, MaxQueueSize, ErrRing)
	}
	// VIRTIO v1.2 2.7: alignment of the three parts.
	if c.Desc%DescAlign != 0 {
		return fmt.Errorf("descriptor table at 0x%x not %d-aligned: %w", c.Desc, DescAlign, ErrRing)
	}
	if c.Avail%AvailAlign != 0 {
		return fmt.Errorf("available ring at 0x%x not %d-aligned: %w", c.Avail, AvailAlign, ErrRing)
	}
	if c.Used%UsedAlign != 0 {
		return fmt.Errorf("used ring at 0x%x not %d-aligned: %w", c.Used, UsedAlign, ErrRing)
	}
	return nil
}

func resolve(mem *GuestMemory, kind AddrKind, addr, size uint64) ([]byte, error) {
	if kind == UserAddrs {
		return mem.UserSlice(addr, size)
	}
	return mem.Slice(addr, size)
}

// window is a ring part widened to whole 4-byte words of host memory, so
// that its 16-bit fields can be reached with 32-bit atomics.
type window struct {
	b   []byte // starts 4-aligned in host memory; len is a multiple of 4
	off int    // offset of the ring part in b (0 or 2)
}

// ringWindow resolves [addr, addr+size) and widens it to aligned words. The
// widening bytes must be guest memory in the same region; they are read
// but only ever written with compare-and-swap that preserves them.
func ringWindow(mem *GuestMemory, kind AddrKind, what string, addr, size uint64) (window, error) {
	exact, err := resolve(mem, kind, addr, size)
	if err != nil {
		return window{}, fmt.Errorf("%s at 0x%x+0x%x not in guest memory: %w", what, addr, size, ErrRing)
	}
	a := uint64(hostAddr(exact) & 3)
	if a&1 != 0 {
		return window{}, fmt.Errorf("%s at 0x%x is at an odd host address: %w", what, addr, ErrRing)
	}
	if addr < a {
		return window{}, fmt.Errorf("%s at 0x%x: aligned words leave guest memory: %w", what, addr, ErrRing)
	}
	b, err := resolve(mem, kind, addr-a, (size+a+3)&^3)
	if err != nil || hostAddr(b)&3 != 0 {
		return window{}, fmt.Errorf("%s at 0x%x: aligned words leave guest memory: %w", what, addr, ErrRing)
	}
	return window{b: b, off: int(a)}, nil
}

// rings are the resolved parts of one ring.
type rings struct {
	desc  []byte
	avail window
	used  window
}

// resolveRings resolves the three parts. The used ring (and for a driver
// the available ring too) must be 4-aligned in host memory: its
// flags+idx word is stored whole.
func resolveRings(mem *GuestMemory, c *Config, availWord bool) (rings, error) {
	if err := c.validate(); err != nil {
		return rings{}, err
	}
	var r rings
	var err error
	if r.desc, err = resolve(mem, c.Addrs, c.Desc, DescTableSize(c.Size)); err != nil {
		return rings{}, fmt.Errorf("descriptor table at 0x%x+0x%x not in guest memory: %w", c.Desc, DescTableSize(c.Size), ErrRing)
	}
	if r.avail, err = ringWindow(mem, c.Addrs, "available ring", c.Avail, AvailRingSize(c.Size)); err != nil {
		return rings{}, err
	}
	if r.used, err = ringWindow(mem, c.Addrs, "used ring", c.Used, UsedRingSize(c.Size)); err != nil {
		return rings{}, err
	}
	if r.used.off != 0 || availWord && r.avail.off != 0 {
		return rings{}, fmt.Errorf("ring not 4-byte aligned in host memory: %w", ErrRing)
	}
	return r, nil
}
