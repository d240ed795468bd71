package virtq

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Driver is the driver (front-end) side of a split virtqueue on memory we
// own: our virtio-user client puts requests in it for a vhost-user
// back-end. It keeps its own copy of the descriptor free list and of each
// chain's length, so nothing the device writes can corrupt them.
//
// A Driver belongs to one reactor: every method must be called there. Its
// data-path methods do not allocate.
type Driver struct {
	cfg  Config
	mask uint16
	r    rings

	free     uint16   // first free descriptor
	numFree  uint16   // free descriptors
	next     []uint16 // free-list and chain links, by descriptor
	chainLen []uint16 // descriptors in the chain a head starts; 0: not outstanding

	availIdx   uint16 // next available slot to fill
	pubAvail   uint16 // avail.idx as last published
	availFlags uint16 // our copy of avail.flags
	kicked     uint16 // pubAvail when NeedsKick last decided
	lastUsed   uint16 // next used entry to reap
}

// Buf is one buffer of a request, by guest address.
type Buf struct {
	Addr uint64
	Len  uint32
}

// Used is one completed request.
type Used struct {
	Head uint16 // as returned by Add
	Len  uint32 // bytes the device wrote
}

// NewDriver initialises a ring on mem for the driver side: it zeroes the
// three parts and links every descriptor into the free list. The available
// and used rings must be 4-aligned in host memory (NewLayout gives that).
// The caller then tells the device the addresses and size (SET_VRING_NUM,
// SET_VRING_ADDR with user addresses, SET_VRING_BASE 0).
func NewDriver(mem *GuestMemory, cfg Config) (*Driver, error) {
	r, err := resolveRings(mem, &cfg, true)
	if err != nil {
		return nil, fmt.Errorf("virtq: driver: %w", err)
	}
	n := cfg.Size
	clear(r.desc)
	clear(r.avail.b[r.avail.off : r.avail.off+int(AvailRingSize(n))])
	clear(r.used.b[:UsedRingSize(n)])
	d := &Driver{cfg: cfg, mask: n - 1, r: r, numFree: n,
		next: make([]uint16, n), chainLen: make([]uint16, n)}
	// Link the free list so that the common three-descriptor chain
	// (request header, data, status) lands in one 64-byte line of the
	// descriptor table: first every descriptor but the fourth of each
	// line, then the fourth ones. A completed chain goes back to the front
	// of the list whole, so chains keep their places: the device reads
	// one cache line per request instead of two for most of them. (The
	// last link is never followed: numFree bounds the list.)
	prev := -1
	link := func(i uint16) {
		if prev < 0 {
			d.free = i
		} else {
			d.next[prev] = i
		}
		prev = int(i)
	}
	for i := range n {
		if i%4 != 3 || n < 4 {
			link(i)
		}
	}
	for i := uint16(3); i < n && n >= 4; i += 4 {
		link(i)
	}
	return d, nil
}

// Size returns the queue size.
func (d *Driver) Size() uint16 { return d.cfg.Size }

// NumFree returns the number of free descriptors.
func (d *Driver) NumFree() int { return int(d.numFree) }

// ErrEmptyChain: Add was given no buffers.
var ErrEmptyChain = errors.New("virtq: request without buffers")

// Add puts a request in the ring: out buffers (device-readable) then in
// buffers (device-writable), chained in free descriptors, and its head in
// the next available slot. The device does not see it until Publish.
// ErrRingFull: fewer than len(out)+len(in) descriptors are free.
func (d *Driver) Add(out, in []Buf) (head uint16, err error) {
	total := len(out) + len(in)
	if total == 0 {
		return 0, ErrEmptyChain
	}
	if total > int(d.numFree) {
		return 0, ErrRingFull
	}
	head = d.free
	idx := head
	for i := range total {
		var b Buf
		var flags uint16
		if i < len(out) {
			b = out[i]
		} else {
			b, flags = in[i-len(out)], DescFWrite
		}
		nxt := d.next[idx]
		link := uint16(0)
		if i < total-1 {
			flags |= DescFNext
			link = nxt
		}
		desc := d.r.desc[16*int(idx) : 16*int(idx)+16]
		binary.LittleEndian.PutUint64(desc[0:], b.Addr)
		binary.LittleEndian.PutUint32(desc[8:], b.Len)
		binary.LittleEndian.PutUint16(desc[12:], flags)
		binary.LittleEndian.PutUint16(desc[14:], link)
		if i < total-1 {
			idx = nxt
		} else {
			d.free = nxt
		}
	}
	d.numFree -= uint16(total)
	d.chainLen[head] = uint16(total)
	slot := int(d.availIdx & d.mask)
	binary.LittleEndian.PutUint16(d.r.avail.b[4+2*slot:], head)
	d.availIdx++
	return head, nil
}

// Publish makes the added requests visible to the device by storing
// avail.idx (VIRTIO v1.2 2.7.13.2: descriptors and ring entries first; the
// atomic store orders them).
func (d *Driver) Publish() {
	if d.availIdx == d.pubAvail {
		return
	}
	store16x2(d.r.avail.b, 0, d.availFlags, d.availIdx)
	d.pubAvail = d.availIdx
}

// NeedsKick reports whether the device wants an available buffer
// notification (a write to the kick eventfd) for what was published since
// the previous call (2.7.13.4): with EVENT_IDX when avail_event lies in
// the newly published range, otherwise unless the device set NO_NOTIFY.
func (d *Driver) NeedsKick() bool {
	old := d.kicked
	d.kicked = d.pubAvail
	if old == d.pubAvail {
		return false
	}
	if d.cfg.EventIdx {
		event := load16(d.r.used.b, 4+8*int(d.cfg.Size))
		return NeedEvent(event, d.pubAvail, old)
	}
	return load16(d.r.used.b, 0)&UsedFNoNotify == 0
}

// HasUsed reports whether the device has returned requests not yet reaped.
func (d *Driver) HasUsed() bool { return load16(d.r.used.b, 2) != d.lastUsed }

// Reap moves up to len(dst) completed requests into dst, frees their
// descriptors, and returns how many. ErrUsedIdx or ErrNotOutstanding mean
// the device broke the ring; the entries before the bad one are returned.
func (d *Driver) Reap(dst []Used) (int, error) {
	used := load16(d.r.used.b, 2)
	n := used - d.lastUsed
	if n > d.cfg.Size {
		return 0, ErrUsedIdx
	}
	n = min(n, uint16(min(len(dst), MaxQueueSize)))
	for i := range n {
		off := 4 + 8*int(d.lastUsed&d.mask)
		id := binary.LittleEndian.Uint32(d.r.used.b[off:])
		length := binary.LittleEndian.Uint32(d.r.used.b[off+4:])
		if id >= uint32(d.cfg.Size) || d.chainLen[id] == 0 {
			return int(i), ErrNotOutstanding
		}
		head := uint16(id)
		cnt := d.chainLen[head]
		last := head
		for range cnt - 1 {
			last = d.next[last]
		}
		d.next[last] = d.free
		d.free = head
		d.numFree += cnt
		d.chainLen[head] = 0
		dst[i] = Used{Head: head, Len: length}
		d.lastUsed++
	}
	return int(n), nil
}

// EnableInterrupts asks the device for used buffer notifications
// (2.7.7): with EVENT_IDX by setting used_event to the next entry to reap,
// otherwise by clearing NO_INTERRUPT. It returns true if completions are
// already waiting, in which case the caller must reap rather than wait.
func (d *Driver) EnableInterrupts() bool {
	if d.cfg.EventIdx {
		if !store16(d.r.avail.b, 4+2*int(d.cfg.Size), d.lastUsed) {
			return true
		}
	} else {
		d.availFlags &^= AvailFNoInterrupt
		store16x2(d.r.avail.b, 0, d.availFlags, d.pubAvail)
	}
	return d.HasUsed()
}

// DisableInterrupts tells the device that a polling driver needs no used
// buffer notifications: NO_INTERRUPT, or with EVENT_IDX a used_event just
// behind the next entry to reap.
func (d *Driver) DisableInterrupts() {
	if d.cfg.EventIdx {
		store16(d.r.avail.b, 4+2*int(d.cfg.Size), d.lastUsed-1)
		return
	}
	d.availFlags |= AvailFNoInterrupt
	store16x2(d.r.avail.b, 0, d.availFlags, d.pubAvail)
}
