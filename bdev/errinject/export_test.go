package errinject

import "hyperpath/bdev"

// onBaseEvent is the base descriptor's callback, which now lives in the
// embedded passthru.Device.
func (d *Disk) onBaseEvent(ev bdev.EventType, b *bdev.Bdev) { d.BaseEvent(ev, b) }
