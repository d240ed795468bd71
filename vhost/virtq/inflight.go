package virtq

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Inflight tracking (vhost-user GET_INFLIGHT_FD / SET_INFLIGHT_FD, split
// queues). The back-end allocates a shared area, the front-end keeps its fd
// and hands it back to a restarted back-end, which resubmits what was in
// flight. The area holds one region per queue, each aligned to 64 bytes;
// numbers are in host byte order:
//
//	queue region:
//	  0: features u64         (0)
//	  8: version u16          (1; 0 means never initialised)
//	 10: desc_num u16         (entries in desc[], the queue size)
//	 12: last_batch_head u16  (head of the list of the last used batch)
//	 14: used_idx u16         (used.idx once the last batch was committed)
//	 16: desc[desc_num], 16 bytes each:
//	       0: inflight u8   1: padding[5]   6: next u16   8: counter u64
//
// Pop marks a head: counter = a per-queue running count, inflight = 1.
// Push links the head into the batch list (next = last_batch_head,
// last_batch_head = head). Publish stores used.idx in the ring, then clears
// inflight for the batch and sets used_idx. If the back-end dies between
// the two, used_idx differs from the ring's used.idx by the batch size, and
// recovery clears that many entries from the list first.
//
// Only the queue's reactor writes the region; the front-end never reads it
// while the back-end runs. The stores are ordered by program order (Go does
// not move stores across the atomic used.idx store), which is what a
// process crash preserves.

const (
	// InflightVersion is the only region version.
	InflightVersion = 1

	inflightHdrSize  = 16
	inflightDescSize = 16
	inflightAlign    = 64
)

// InflightQueueSize is the size of one queue's region for queueSize
// entries.
func InflightQueueSize(queueSize uint16) uint64 {
	return (inflightHdrSize + inflightDescSize*uint64(queueSize) + inflightAlign - 1) &^ (inflightAlign - 1)
}

// InflightSize is the size of the area for numQueues queues of queueSize
// entries: the mmap_size a back-end answers GET_INFLIGHT_FD with.
func InflightSize(numQueues, queueSize uint16) uint64 {
	return uint64(numQueues) * InflightQueueSize(queueSize)
}

// Inflight is a mapped inflight area.
type Inflight struct {
	b         []byte
	numQueues uint16
	queueSize uint16
}

// NewInflight wraps a mapped area of numQueues regions of queueSize
// entries. b must hold InflightSize(numQueues, queueSize) bytes.
func NewInflight(b []byte, numQueues, queueSize uint16) (*Inflight, error) {
	if numQueues == 0 || queueSize == 0 {
		return nil, fmt.Errorf("virtq: inflight area for %d queues of %d: %w", numQueues, queueSize, ErrInflight)
	}
	if need := InflightSize(numQueues, queueSize); uint64(len(b)) < need {
		return nil, fmt.Errorf("virtq: inflight area of %d bytes, need %d for %d queues of %d: %w",
			len(b), need, numQueues, queueSize, ErrInflight)
	}
	return &Inflight{b: b, numQueues: numQueues, queueSize: queueSize}, nil
}

// NumQueues returns the number of queue regions.
func (f *Inflight) NumQueues() uint16 { return f.numQueues }

// Queue returns queue i's region.
func (f *Inflight) Queue(i uint16) (*InflightQueue, error) {
	if i >= f.numQueues {
		return nil, fmt.Errorf("virtq: inflight queue %d of %d: %w", i, f.numQueues, ErrInflight)
	}
	sz := InflightQueueSize(f.queueSize)
	off := uint64(i) * sz
	return &InflightQueue{b: f.b[off : off+sz : off+sz], cap: f.queueSize}, nil
}

// InflightQueue is one queue's region. It belongs to the queue's reactor.
type InflightQueue struct {
	b       []byte
	cap     uint16 // entries the region has room for
	counter uint64 // next counter value to hand out
}

// InflightEntry is a head found in flight, with its pop counter.
type InflightEntry struct {
	Head    uint16
	Counter uint64
}

func (iq *InflightQueue) capacity() uint16 { return iq.cap }

// Version returns the region's version (0: never initialised).
func (iq *InflightQueue) Version() uint16 { return binary.NativeEndian.Uint16(iq.b[8:]) }

// DescNum returns the number of entries the region tracks.
func (iq *InflightQueue) DescNum() uint16 { return binary.NativeEndian.Uint16(iq.b[10:]) }

// LastBatchHead returns the head of the last batch list.
func (iq *InflightQueue) LastBatchHead() uint16 { return binary.NativeEndian.Uint16(iq.b[12:]) }

// UsedIdx returns the used index recorded at the last commit.
func (iq *InflightQueue) UsedIdx() uint16 { return binary.NativeEndian.Uint16(iq.b[14:]) }

// IsInflight reports whether head is marked in flight.
func (iq *InflightQueue) IsInflight(head uint16) bool {
	return head < iq.DescNum() && iq.b[inflightHdrSize+inflightDescSize*int(head)] != 0
}

func (iq *InflightQueue) desc(head uint16) []byte {
	off := inflightHdrSize + inflightDescSize*int(head)
	return iq.b[off : off+inflightDescSize]
}

// init formats a fresh region for descNum entries.
func (iq *InflightQueue) init(descNum, usedIdx uint16) {
	clear(iq.b)
	binary.NativeEndian.PutUint16(iq.b[8:], InflightVersion)
	binary.NativeEndian.PutUint16(iq.b[10:], descNum)
	binary.NativeEndian.PutUint16(iq.b[14:], usedIdx)
	iq.counter = 1
}

// check validates a region written by a previous back-end.
func (iq *InflightQueue) check() error {
	if v := iq.Version(); v != InflightVersion {
		return fmt.Errorf("virtq: inflight region version %d: %w", v, ErrInflight)
	}
	if n := iq.DescNum(); n == 0 || n > iq.cap {
		return fmt.Errorf("virtq: inflight region desc_num %d, room for %d: %w", n, iq.cap, ErrInflight)
	}
	return nil
}

// get marks head in flight (on pop).
func (iq *InflightQueue) get(head uint16) {
	if head >= iq.DescNum() {
		return // Walk rejects it; nothing to resubmit
	}
	d := iq.desc(head)
	binary.NativeEndian.PutUint64(d[8:], iq.counter)
	iq.counter++
	d[0] = 1
}

// put links head into the batch list (on push, before used.idx moves).
func (iq *InflightQueue) put(head uint16) {
	if head >= iq.DescNum() {
		return
	}
	binary.NativeEndian.PutUint16(iq.desc(head)[6:], iq.LastBatchHead())
	binary.NativeEndian.PutUint16(iq.b[12:], head)
}

// commit clears the last n heads of the batch list and records usedIdx
// (after used.idx was stored in the ring).
func (iq *InflightQueue) commit(n, usedIdx uint16) {
	iq.clearBatch(n)
	binary.NativeEndian.PutUint16(iq.b[14:], usedIdx)
}

// clearBatch clears inflight for n heads of the batch list, bounded by
// the list's validity.
func (iq *InflightQueue) clearBatch(n uint16) bool {
	dn := iq.DescNum()
	h := iq.LastBatchHead()
	for range n {
		if h >= dn {
			return false
		}
		d := iq.desc(h)
		d[0] = 0
		h = binary.NativeEndian.Uint16(d[6:])
	}
	return true
}

// Recover settles a half-committed batch against ringUsedIdx (the ring's
// used.idx) and appends the heads still in flight to dst in the order they
// were popped. The region may come from a back-end that died at any point:
// its contents are checked, and every walk is bounded.
func (iq *InflightQueue) Recover(ringUsedIdx uint16, dst []InflightEntry) ([]InflightEntry, error) {
	if iq.Version() == 0 {
		return dst, nil
	}
	if err := iq.check(); err != nil {
		return dst, err
	}
	dn := iq.DescNum()
	if u := iq.UsedIdx(); u != ringUsedIdx {
		batch := ringUsedIdx - u
		if batch > dn || !iq.clearBatch(batch) {
			return dst, fmt.Errorf("virtq: inflight used_idx %d vs ring used idx %d: %w", u, ringUsedIdx, ErrInflight)
		}
		binary.NativeEndian.PutUint16(iq.b[14:], ringUsedIdx)
	}
	start := len(dst)
	var maxCounter uint64
	for h := range dn {
		d := iq.desc(h)
		if d[0] == 0 {
			continue
		}
		c := binary.NativeEndian.Uint64(d[8:])
		dst = append(dst, InflightEntry{Head: h, Counter: c})
		maxCounter = max(maxCounter, c)
	}
	slices.SortStableFunc(dst[start:], func(a, b InflightEntry) int {
		switch {
		case a.Counter < b.Counter:
			return -1
		case a.Counter > b.Counter:
			return 1
		}
		return 0
	})
	iq.counter = maxCounter + 1
	return dst, nil
}
