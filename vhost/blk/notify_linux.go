package blk

import "golang.org/x/sys/unix"

// eventOne is the 8-byte increment written to an eventfd.
var eventOne = [8]byte{1}

// signal writes the call eventfd: a used-buffer notification. A full
// counter (EAGAIN) means the driver has a notification pending anyway.
func (q *Queue) signal() {
	q.pendingSignal = false
	if q.callFD < 0 {
		return
	}
	unix.Write(q.callFD, eventOne[:])
	q.stats.Signals++
}
