package reactor

import "sync/atomic"

// cacheLinePad keeps producer and consumer fields on separate cache lines.
type cacheLinePad [64]byte

// msgSlot is one ring slot. seq encodes who owns the slot (Vyukov's bounded
// queue): seq == pos means free for the producer that claims position pos;
// seq == pos+1 means filled and owned by the consumer; after the consumer
// empties it, seq == pos+len(slots), free for the producer one lap later.
// fn and arg are written only by the owning side, and the atomic store of seq
// publishes them.
type msgSlot struct {
	seq atomic.Uint64
	fn  func(any)
	arg any
}

// msgRing is a bounded multi-producer single-consumer queue of messages
// stored by value, so sending allocates nothing. Producers are any goroutine;
// the consumer is the owning reactor only.
type msgRing struct {
	_     cacheLinePad
	tail  atomic.Uint64 // next position to claim (producers)
	_     cacheLinePad
	head  uint64 // next position to consume (consumer only)
	_     cacheLinePad
	mask  uint64
	slots []msgSlot
}

func newMsgRing(size int) *msgRing {
	n := 1
	for n < size {
		n <<= 1
	}
	r := &msgRing{mask: uint64(n - 1), slots: make([]msgSlot, n)}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// push enqueues (fn, arg); it returns false when the ring is full.
// Safe for concurrent producers.
func (q *msgRing) push(fn func(any), arg any) bool {
	pos := q.tail.Load()
	for {
		s := &q.slots[pos&q.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if q.tail.CompareAndSwap(pos, pos+1) {
				s.fn, s.arg = fn, arg
				s.seq.Store(pos + 1)
				return true
			}
			pos = q.tail.Load()
		case d < 0:
			return false // the consumer has not emptied this slot yet: full
		default:
			pos = q.tail.Load() // another producer claimed pos
		}
	}
}

// pop dequeues one message. Consumer only.
func (q *msgRing) pop() (fn func(any), arg any, ok bool) {
	s := &q.slots[q.head&q.mask]
	if s.seq.Load() != q.head+1 {
		return nil, nil, false
	}
	fn, arg = s.fn, s.arg
	s.fn, s.arg = nil, nil
	s.seq.Store(q.head + q.mask + 1)
	q.head++
	return fn, arg, true
}

// empty reports whether no filled message waits at the head. Consumer only.
func (q *msgRing) empty() bool {
	return q.slots[q.head&q.mask].seq.Load() != q.head+1
}
