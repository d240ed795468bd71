package virtio

import (
	"fmt"

	"hyperpath/vhost/virtq"
)

// pageSize aligns every part of the shared region.
const pageSize = 4096

// queueLayout places one queue's parts in the shared region (offsets from
// the region's start, which is also guest address 0).
type queueLayout struct {
	ring      virtq.Layout // the three parts of the split ring, relative to ringOff
	ringOff   uint64
	slotsOff  uint64 // QueueSize request slots of slotSize bytes
	bounceOff uint64 // bounce chunks
}

// regionLayout is the plan of the shared region:
//
//	0                      one unused page (no ring or buffer at guest address 0)
//	per queue i:           ring i | request slots i | bounce chunks i
//	bufOff .. bufOff+bufLen  buffer area handed out by AllocBuffer
//	size                   end (rounded up to a page)
type regionLayout struct {
	queues    []queueLayout
	chunkSize uint64
	chunks    int // bounce chunks per queue
	bufOff    uint64
	bufLen    uint64
	size      uint64
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// planRegion lays out nq queues of qsize entries with chunks bounce chunks
// of chunkSize bytes each, and a buffer area of bufBytes.
func planRegion(nq int, qsize uint16, chunks int, chunkSize, bufBytes uint64) (regionLayout, error) {
	if nq <= 0 || chunks <= 0 || chunkSize == 0 || chunkSize%pageSize != 0 {
		return regionLayout{}, fmt.Errorf("virtio: bad region plan (%d queues, %d chunks of %d bytes)", nq, chunks, chunkSize)
	}
	l := regionLayout{queues: make([]queueLayout, nq), chunkSize: chunkSize, chunks: chunks}
	off := uint64(pageSize)
	for i := range l.queues {
		ring, err := virtq.NewLayout(qsize, 4)
		if err != nil {
			return regionLayout{}, err
		}
		q := &l.queues[i]
		q.ring = ring
		q.ringOff = off
		off = alignUp(off+ring.Len, pageSize)
		q.slotsOff = off
		off = alignUp(off+uint64(qsize)*slotSize, pageSize)
		q.bounceOff = off
		off += uint64(chunks) * chunkSize
	}
	l.bufOff = off
	l.bufLen = alignUp(bufBytes, pageSize)
	l.size = off + l.bufLen
	if l.size > 1<<40 {
		return regionLayout{}, fmt.Errorf("virtio: shared region of %d bytes is too large", l.size)
	}
	return l, nil
}
