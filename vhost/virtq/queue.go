package virtq

import (
	"encoding/binary"
	"fmt"
)

// Queue is the device side of a split virtqueue: it pops available heads,
// walks their descriptor chains into guest memory and returns used
// elements.
//
// A Queue belongs to one reactor: every method must be called there. It
// holds no locks and its data-path methods (Pop, Walk, Push, Publish,
// NeedsNotify, EnableNotify, DisableNotify, HasAvail) do not allocate.
type Queue struct {
	cfg  Config
	mem  *GuestMemory
	mask uint16
	r    rings

	lastAvail uint16 // next available entry to pop (the vring base)
	usedIdx   uint16 // next used entry to fill
	pubUsed   uint16 // used.idx as last published
	usedFlags uint16 // our copy of used.flags, which only we write

	signalled      uint16 // pubUsed when NeedsNotify last decided
	signalledValid bool   // false until the first NeedsNotify after start

	inflight *InflightQueue // nil without GET/SET_INFLIGHT_FD

	// memHint is the memory region the last translated buffer was in:
	// Walk tries it first (see GuestMemory.translateHinted).
	memHint int
}

// NewQueue starts the device side of a ring on mem. lastAvail is the index
// of the first available entry to process (SET_VRING_BASE; 0 for a fresh
// ring). The used index is read from the ring itself.
func NewQueue(mem *GuestMemory, cfg Config, lastAvail uint16) (*Queue, error) {
	r, err := resolveRings(mem, &cfg, false)
	if err != nil {
		return nil, fmt.Errorf("virtq: queue: %w", err)
	}
	q := &Queue{cfg: cfg, mem: mem, mask: cfg.Size - 1, r: r, lastAvail: lastAvail}
	q.pubUsed = load16(r.used.b, 2)
	q.usedFlags = load16(r.used.b, 0)
	q.usedIdx = q.pubUsed
	q.signalled = q.pubUsed
	if q.lastAvail-q.usedIdx > cfg.Size {
		return nil, fmt.Errorf("virtq: queue: used idx %d and base %d are more than %d apart: %w",
			q.usedIdx, q.lastAvail, cfg.Size, ErrRing)
	}
	return q, nil
}

// Config returns the ring's configuration.
func (q *Queue) Config() Config { return q.cfg }

// Size returns the queue size.
func (q *Queue) Size() uint16 { return q.cfg.Size }

// Memory returns the table the queue translates through.
func (q *Queue) Memory() *GuestMemory { return q.mem }

// LastAvail returns the index of the next available entry to pop: the
// vring base GET_VRING_BASE reports once the queue is stopped.
func (q *Queue) LastAvail() uint16 { return q.lastAvail }

// UsedIdx returns used.idx as last published.
func (q *Queue) UsedIdx() uint16 { return q.pubUsed }

// Outstanding returns how many popped requests have not been pushed back.
func (q *Queue) Outstanding() int { return int(q.lastAvail - q.usedIdx) }

// SetMemory switches the queue to a new memory table, re-resolving the
// rings in it. On error the queue keeps its old table. Requests already
// walked keep slices into the old table's mappings (see GuestMemory).
func (q *Queue) SetMemory(mem *GuestMemory) error {
	r, err := resolveRings(mem, &q.cfg, false)
	if err != nil {
		return fmt.Errorf("virtq: queue: %w", err)
	}
	q.mem, q.r, q.memHint = mem, r, 0
	return nil
}

// availIdx loads avail.idx.
func (q *Queue) availIdx() uint16 { return load16(q.r.avail.b, q.r.avail.off+2) }

// HasAvail reports whether the driver has made entries available that
// have not been popped.
func (q *Queue) HasAvail() bool { return q.availIdx() != q.lastAvail }

// Pop moves up to len(heads) available head indices into heads and
// returns how many. The caller bounds the batch with len(heads) (SPDK
// polls 32 per queue). Heads are not checked here: Walk rejects one that
// is out of range. ErrAvailIdx means the driver broke the ring. Pop
// prefetches the descriptors of the heads it returns.
//
// With an inflight region attached, each popped head is marked in flight
// there before Pop returns.
func (q *Queue) Pop(heads []uint16) (int, error) {
	if len(heads) == 0 {
		return 0, nil
	}
	// VIRTIO v1.2 2.7.13.3: the ring entries are read after the index; the
	// atomic load orders them.
	avail := q.availIdx()
	n := avail - q.lastAvail
	if n > q.cfg.Size {
		return 0, ErrAvailIdx
	}
	if int(n) > len(heads) {
		n = uint16(len(heads))
	}
	b, base := q.r.avail.b, q.r.avail.off+4
	for i := range n {
		slot := int((q.lastAvail + i) & q.mask)
		h := binary.LittleEndian.Uint16(b[base+2*slot:])
		heads[i] = h
		if h < q.cfg.Size {
			prefetch(&q.r.desc[DescSize*int(h)]) // Walk reads it next
		}
	}
	if q.inflight != nil {
		for _, h := range heads[:n] {
			q.inflight.get(h)
		}
	}
	q.lastAvail += n
	return int(n), nil
}

// Push records that the request headed by head is done and that the device
// wrote lenBytes into its device-writable buffers (VIRTIO v1.2 2.7.8: the
// used length). The driver sees it after Publish. ErrNotOutstanding: there
// is no popped request left to complete; ErrHead: head >= Size.
func (q *Queue) Push(head uint16, lenBytes uint32) error {
	if head >= q.cfg.Size {
		return ErrHead
	}
	if q.usedIdx == q.lastAvail {
		return ErrNotOutstanding
	}
	off := 4 + 8*int(q.usedIdx&q.mask)
	b := q.r.used.b
	binary.LittleEndian.PutUint32(b[off:], uint32(head))
	binary.LittleEndian.PutUint32(b[off+4:], lenBytes)
	if q.inflight != nil {
		q.inflight.put(head)
	}
	q.usedIdx++
	return nil
}

// Publish makes the pushed elements visible to the driver by storing
// used.idx, then, with an inflight region, clears their inflight marks.
func (q *Queue) Publish() {
	if q.usedIdx == q.pubUsed {
		return
	}
	// 2.7.8.2 / 2.7.13.3: elements before the index; the atomic store
	// orders them.
	store16x2(q.r.used.b, 0, q.usedFlags, q.usedIdx)
	if q.inflight != nil {
		q.inflight.commit(q.usedIdx-q.pubUsed, q.usedIdx)
	}
	q.pubUsed = q.usedIdx
}

// NeedsNotify reports whether the driver wants a used buffer notification
// (a write to the call eventfd) for what was published since the previous
// call. Call it after Publish. With EVENT_IDX it applies the used_event
// rule of VIRTIO v1.2 2.7.7.2 (the first call after start always says yes,
// as the driver's used_event may predate the start); without it, the
// NO_INTERRUPT flag of the available ring.
func (q *Queue) NeedsNotify() bool {
	if q.signalled == q.pubUsed {
		return false // nothing published since the last decision
	}
	old, valid := q.signalled, q.signalledValid
	q.signalled, q.signalledValid = q.pubUsed, true
	if q.cfg.EventIdx {
		if !valid {
			return true
		}
		event := load16(q.r.avail.b, q.r.avail.off+4+2*int(q.cfg.Size))
		return NeedEvent(event, q.pubUsed, old)
	}
	return load16(q.r.avail.b, q.r.avail.off)&AvailFNoInterrupt == 0
}

// EnableNotify asks the driver to kick for new available entries
// (VIRTIO v1.2 2.7.10): with EVENT_IDX by setting avail_event to the next
// entry to pop, otherwise by clearing NO_NOTIFY in used.flags. It returns
// true if entries are already available, in which case the caller must
// poll again rather than wait for a kick.
func (q *Queue) EnableNotify() bool {
	if q.cfg.EventIdx {
		if !store16(q.r.used.b, 4+8*int(q.cfg.Size), q.lastAvail) {
			return true // avail_event could not be set: keep polling
		}
	} else {
		q.usedFlags &^= UsedFNoNotify
		store16x2(q.r.used.b, 0, q.usedFlags, q.pubUsed)
	}
	return q.HasAvail()
}

// DisableNotify tells the driver that kicks are not needed while the
// device polls. With EVENT_IDX it is a no-op: avail_event is simply no
// longer advanced, so the driver kicks at most once per 2^16 entries.
func (q *Queue) DisableNotify() {
	if q.cfg.EventIdx {
		return
	}
	q.usedFlags |= UsedFNoNotify
	store16x2(q.r.used.b, 0, q.usedFlags, q.pubUsed)
}

// AttachInflight makes the queue track in-flight heads in iq (vhost-user
// GET/SET_INFLIGHT_FD). A never-used region (version 0) is initialised for
// this queue; a region with content is checked, then RecoverInflight
// resubmits what it holds. Call it before the first Pop.
func (q *Queue) AttachInflight(iq *InflightQueue) error {
	if iq.Version() == 0 {
		if iq.capacity() < q.cfg.Size {
			return fmt.Errorf("virtq: inflight region holds %d entries, queue has %d: %w", iq.capacity(), q.cfg.Size, ErrInflight)
		}
		iq.init(q.cfg.Size, q.pubUsed)
	} else if err := iq.check(); err != nil {
		return err
	} else if iq.DescNum() < q.cfg.Size {
		return fmt.Errorf("virtq: inflight region desc_num %d < queue size %d: %w", iq.DescNum(), q.cfg.Size, ErrInflight)
	}
	q.inflight = iq
	return nil
}

// RecoverInflight runs the reconnect procedure of the vhost-user inflight
// format on the attached region: it settles a batch that was published but
// not committed when the previous back-end died, appends to dst the heads
// still in flight in the order they were popped, and moves LastAvail to
// UsedIdx plus their number, so that Pop continues after them. The caller
// resubmits each returned head with Walk and completes it with Push as
// usual. Control path: it may allocate.
func (q *Queue) RecoverInflight(dst []uint16) ([]uint16, error) {
	if q.inflight == nil {
		return dst, fmt.Errorf("virtq: no inflight region attached: %w", ErrInflight)
	}
	entries, err := q.inflight.Recover(q.pubUsed, nil)
	if err != nil {
		return dst, err
	}
	if len(entries) > int(q.cfg.Size) {
		return dst, fmt.Errorf("virtq: %d heads in flight, queue size %d: %w", len(entries), q.cfg.Size, ErrInflight)
	}
	for _, e := range entries {
		dst = append(dst, e.Head)
	}
	q.lastAvail = q.pubUsed + uint16(len(entries))
	q.usedIdx = q.pubUsed
	return dst, nil
}
