package virtq

import (
	"encoding/binary"
	"fmt"
)

// Chain is the result of walking one descriptor chain: the buffers of a
// request as slices of guest memory, device-readable ones first.
//
// Segs points INTO guest memory: nothing is copied. The slices stay valid
// while the GuestMemory the queue used for the walk stays mapped (see
// GuestMemory for when a session may unmap). Writing to a readable segment
// or reading a writable one is not prevented but is the driver's data.
type Chain struct {
	// Head is the head descriptor index: the id to Push on completion.
	Head uint16
	// Segs are the buffers, each within one guest memory region: a
	// descriptor whose buffer crosses regions yields several segments.
	// The caller provides the backing array once (NewChain); Walk never
	// grows it and fails with ErrIovecFull when it is full.
	Segs [][]byte
	// NumOut is the number of device-readable segments: Segs[:NumOut]
	// the device reads, Segs[NumOut:] the device writes.
	NumOut int
	// OutLen and InLen are the byte counts of the readable and writable
	// buffers.
	OutLen, InLen uint64
	// NumDesc counts the descriptors visited, indirect ones included.
	NumDesc int

	// On error, BadDesc is the index of the descriptor that failed, in the
	// indirect table when BadIndirect is set, else in the descriptor table.
	BadDesc     uint16
	BadIndirect bool
}

// NewChain returns a Chain whose Segs can hold maxSegs segments.
func NewChain(maxSegs int) *Chain { return &Chain{Segs: make([][]byte, 0, maxSegs)} }

// Out returns the device-readable segments.
func (c *Chain) Out() [][]byte { return c.Segs[:c.NumOut] }

// In returns the device-writable segments.
func (c *Chain) In() [][]byte { return c.Segs[c.NumOut:] }

// Writable reports whether segment i is device-writable.
func (c *Chain) Writable(i int) bool { return i >= c.NumOut }

// Describe formats a walk error with its location, for logs. It allocates.
func (c *Chain) Describe(err error) string {
	table := "descriptor table"
	if c.BadIndirect {
		table = "indirect table"
	}
	return fmt.Sprintf("chain head %d: %v (descriptor %d of the %s, %d visited)", c.Head, err, c.BadDesc, table, c.NumDesc)
}

// PrefetchFirst starts loading the first byte of the chain's first
// segment (a request header, typically) into the cache; a no-op for an
// empty chain. A device that walks a batch of chains before parsing any of
// them overlaps the cache misses on their headers.
func (c *Chain) PrefetchFirst() {
	if len(c.Segs) > 0 && len(c.Segs[0]) > 0 {
		prefetch(&c.Segs[0][0])
	}
}

// Walk follows the descriptor chain headed by head and fills c. The walk
// is bounded (VIRTIO v1.2 2.7.5.2, 2.7.5.3.1): at most Size descriptors in
// the descriptor table, and at most the table's entry count (itself at most
// Size) in an indirect table, so a loop ends in ErrChainTooLong. It checks,
// per descriptor: the index is inside its table, the buffer is inside guest
// memory, no readable buffer follows a writable one (2.7.4.2), and an
// indirect descriptor is allowed (feature negotiated, not nested, no NEXT,
// length a non-zero multiple of 16). Zero-length buffers are allowed and
// produce no segment.
//
// On error c holds the segments gathered so far and the failing location;
// the caller fails that request only (for virtio-blk: VIRTIO_BLK_S_IOERR,
// pushed with length 0, if a status byte can be written at all) and may go
// on with the next head. ErrHead means the head itself is out of range:
// the driver broke the ring and the request cannot be completed.
//
// Walk does not allocate.
func (q *Queue) Walk(head uint16, c *Chain) error {
	c.Head = head
	c.Segs = c.Segs[:0]
	c.NumOut, c.OutLen, c.InLen, c.NumDesc = 0, 0, 0, 0
	c.BadDesc, c.BadIndirect = head, false
	if head >= q.cfg.Size {
		return ErrHead
	}
	table := q.r.desc
	entries := uint32(q.cfg.Size)
	ttl := entries
	idx := uint32(head)
	indirect, writing := false, false
	for {
		if ttl == 0 {
			return ErrChainTooLong
		}
		ttl--
		c.NumDesc++
		c.BadDesc, c.BadIndirect = uint16(idx), indirect
		d := table[16*idx : 16*idx+16]
		addr := binary.LittleEndian.Uint64(d[0:])
		length := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])

		if flags&DescFIndirect != 0 {
			switch {
			case !q.cfg.Indirect:
				return ErrIndirectNotNegotiated
			case indirect:
				return ErrNestedIndirect
			case flags&DescFNext != 0:
				return ErrIndirectNext
			case length == 0 || length%DescSize != 0 || length/DescSize > uint32(q.cfg.Size):
				return ErrIndirectLen
			}
			t, err := q.mem.Slice(addr, uint64(length))
			if err != nil {
				return ErrIndirectAddr
			}
			// 2.7.5.3.2: the device ignores WRITE on the indirect
			// descriptor itself; the table's entries say it per buffer.
			table, entries, ttl, idx, indirect = t, length/DescSize, length/DescSize, 0, true
			continue
		}

		if flags&DescFWrite != 0 {
			writing = true
		} else if writing {
			return ErrReadAfterWrite
		}
		segs, err := q.mem.translateHinted(&q.memHint, c.Segs, addr, uint64(length))
		if err != nil {
			return err
		}
		c.Segs = segs
		if writing {
			c.InLen += uint64(length)
		} else {
			c.OutLen += uint64(length)
			c.NumOut = len(segs)
		}
		if flags&DescFNext == 0 {
			return nil
		}
		if uint32(next) >= entries {
			return ErrNext // BadDesc names the descriptor whose next is bad
		}
		idx = uint32(next)
	}
}
