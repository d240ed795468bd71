package bdev

import (
	"errors"
	"fmt"
	"sync/atomic"

	"hyperpath/reactor"
)

// QoS rate limits (bdev_set_qos_limit). Zero means unlimited.
//
// Enforcement is lock-free: each limit is a token bucket held in an atomic
// counter. A timed poller on the registry's first reactor refills the
// buckets every QoSTimesliceUs; a submitting channel takes tokens with an
// atomic add and, when a bucket is empty, parks the IO on its own queue
// until a later iteration finds tokens. As in SPDK, one IO may overdraw a
// bucket; the debt is paid from the next timeslice.
type QoSLimits struct {
	RWIOPerSec     uint64
	RWMBytesPerSec uint64
	RMBytesPerSec  uint64
	WMBytesPerSec  uint64
}

// QoSTimesliceUs is the refill period of the QoS token buckets.
const QoSTimesliceUs = 1000

// MinQoSIOPS is the smallest non-zero IOPS limit (SPDK: 1000, a multiple of
// it required).
const MinQoSIOPS = 1000

// ErrQoSLimit is wrapped by SetQoS validation errors.
var ErrQoSLimit = errors.New("invalid QoS limit")

const (
	qosIOPS = iota
	qosRWBytes
	qosRBytes
	qosWBytes
	numQoS
)

// qosState is a bdev's live QoS buckets.
type qosState struct {
	limits    QoSLimits
	perSlice  [numQoS]int64 // 0 = unlimited
	tokens    [numQoS]atomic.Int64
	poller    *reactor.Poller
	refillsOn *reactor.Reactor
}

// allow takes tokens for io; false means park it.
func (q *qosState) allow(io *IO) bool {
	bytes := int64(io.NumBlocks) * int64(io.ch.bdev.info.BlockSize)
	var need [numQoS]int64
	need[qosIOPS] = 1
	switch io.Type {
	case IORead:
		need[qosRWBytes], need[qosRBytes] = bytes, bytes
	case IOWrite:
		need[qosRWBytes], need[qosWBytes] = bytes, bytes
	}
	for i := 0; i < numQoS; i++ {
		if q.perSlice[i] != 0 && need[i] != 0 && q.tokens[i].Load() <= 0 {
			return false
		}
	}
	for i := 0; i < numQoS; i++ {
		if q.perSlice[i] != 0 && need[i] != 0 {
			q.tokens[i].Add(-need[i])
		}
	}
	return true
}

func (q *qosState) refill(reactor.Ticks) reactor.Status {
	for i := 0; i < numQoS; i++ {
		per := q.perSlice[i]
		if per == 0 {
			continue
		}
		for {
			cur := q.tokens[i].Load()
			next := per
			if cur < 0 {
				next = cur + per // pay back the overdraft first
			}
			if q.tokens[i].CompareAndSwap(cur, next) {
				break
			}
		}
	}
	return reactor.Idle
}

// QoS returns the current limits (zero value when none).
func (b *Bdev) QoS() QoSLimits {
	if q := b.qosState.Load(); q != nil {
		return q.limits
	}
	return QoSLimits{}
}

// SetQoS replaces the bdev's limits; all zero turns QoS off. Control plane.
func (b *Bdev) SetQoS(l QoSLimits) error {
	if l.RWIOPerSec != 0 && (l.RWIOPerSec < MinQoSIOPS || l.RWIOPerSec%MinQoSIOPS != 0) {
		return fmt.Errorf("%w: rw_ios_per_sec %d must be a multiple of %d", ErrQoSLimit, l.RWIOPerSec, MinQoSIOPS)
	}
	old := b.qosState.Load()
	var q *qosState
	if l != (QoSLimits{}) {
		q = &qosState{limits: l}
		slices := int64(1_000_000 / QoSTimesliceUs)
		q.perSlice[qosIOPS] = ceilDiv(int64(l.RWIOPerSec), slices)
		q.perSlice[qosRWBytes] = ceilDiv(int64(l.RWMBytesPerSec)<<20, slices)
		q.perSlice[qosRBytes] = ceilDiv(int64(l.RMBytesPerSec)<<20, slices)
		q.perSlice[qosWBytes] = ceilDiv(int64(l.WMBytesPerSec)<<20, slices)
		q.refill(0)
		if rs := b.reg.opts.Reactors; len(rs) > 0 {
			q.refillsOn = rs[0]
			reactor.Call(rs[0], func() {
				q.poller = rs[0].RegisterPoller("bdev_qos_"+b.info.Name, q.refill, QoSTimesliceUs)
			})
		}
	}
	b.qosState.Store(q)
	if old != nil && old.poller != nil {
		reactor.Call(old.refillsOn, old.poller.Unregister)
	}
	return nil
}

func ceilDiv(a, b int64) int64 {
	if a == 0 {
		return 0
	}
	return (a + b - 1) / b
}
