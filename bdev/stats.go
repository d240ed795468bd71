package bdev

import "math"

// ResetMode selects what IOStat.Reset clears, as bdev_get_iostat's
// reset_mode does.
type ResetMode uint8

const (
	// ResetNone clears nothing.
	ResetNone ResetMode = iota
	// ResetAll clears every counter.
	ResetAll
	// ResetMaxMin clears only the max/min latencies.
	ResetMaxMin
	// ResetError clears only the error counters.
	ResetError
)

// ParseResetMode maps "all", "maxmin", "error", "none".
func ParseResetMode(s string) (ResetMode, bool) {
	switch s {
	case "all":
		return ResetAll, true
	case "maxmin":
		return ResetMaxMin, true
	case "error":
		return ResetError, true
	case "none", "":
		return ResetNone, true
	}
	return 0, false
}

// IOStat holds SPDK's bdev_get_iostat counters. Latencies are in reactor
// Ticks. A channel's IOStat is written only by its reactor.
type IOStat struct {
	BytesRead, NumReadOps         uint64
	BytesWritten, NumWriteOps     uint64
	BytesUnmapped, NumUnmapOps    uint64
	BytesCopied, NumCopyOps       uint64
	ReadLatencyTicks              uint64
	MaxReadLatency, MinReadLat    uint64
	WriteLatencyTicks             uint64
	MaxWriteLatency, MinWriteLat  uint64
	UnmapLatencyTicks             uint64
	MaxUnmapLatency, MinUnmapLat  uint64
	CopyLatencyTicks              uint64
	MaxCopyLatency, MinCopyLat    uint64
	Errors                        [numStatus]uint64 // by Status, for failed IOs
	NumFlushOps, NumWriteZeroOps  uint64
	NumResetOps, NumCompareOps    uint64
	BytesWriteZeroed, BytesCompar uint64
}

const numStatus = int(StatusInvalid) + 1

func (s *IOStat) reset(m ResetMode) {
	switch m {
	case ResetNone:
		return
	case ResetError:
		s.Errors = [numStatus]uint64{}
		return
	case ResetAll:
		*s = IOStat{}
	}
	s.MaxReadLatency, s.MinReadLat = 0, math.MaxUint64
	s.MaxWriteLatency, s.MinWriteLat = 0, math.MaxUint64
	s.MaxUnmapLatency, s.MinUnmapLat = 0, math.MaxUint64
	s.MaxCopyLatency, s.MinCopyLat = 0, math.MaxUint64
}

// Reset clears counters per m.
func (s *IOStat) Reset(m ResetMode) { s.reset(m) }

func minmax(lat uint64, mx, mn *uint64) {
	if lat > *mx {
		*mx = lat
	}
	if lat < *mn {
		*mn = lat
	}
}

// record adds one completed IO (successful ones to the op counters, failed
// ones to the error counters, as SPDK does).
func (s *IOStat) record(io *IO, lat uint64) {
	if io.Status != StatusSuccess {
		if int(io.Status) < numStatus {
			s.Errors[io.Status]++
		}
		return
	}
	bytes := io.NumBlocks * uint64(io.ch.bdev.info.BlockSize)
	switch io.Type {
	case IORead:
		s.BytesRead += bytes
		s.NumReadOps++
		s.ReadLatencyTicks += lat
		minmax(lat, &s.MaxReadLatency, &s.MinReadLat)
	case IOWrite:
		s.BytesWritten += bytes
		s.NumWriteOps++
		s.WriteLatencyTicks += lat
		minmax(lat, &s.MaxWriteLatency, &s.MinWriteLat)
	case IOUnmap:
		s.BytesUnmapped += bytes
		s.NumUnmapOps++
		s.UnmapLatencyTicks += lat
		minmax(lat, &s.MaxUnmapLatency, &s.MinUnmapLat)
	case IOFlush:
		s.NumFlushOps++
	case IOWriteZeroes:
		s.NumWriteZeroOps++
		s.BytesWriteZeroed += bytes
	case IOReset:
		s.NumResetOps++
	case IOCompare:
		s.NumCompareOps++
		s.BytesCompar += bytes
	}
}

// Add folds o into s.
func (s *IOStat) Add(o *IOStat) {
	s.BytesRead += o.BytesRead
	s.NumReadOps += o.NumReadOps
	s.BytesWritten += o.BytesWritten
	s.NumWriteOps += o.NumWriteOps
	s.BytesUnmapped += o.BytesUnmapped
	s.NumUnmapOps += o.NumUnmapOps
	s.BytesCopied += o.BytesCopied
	s.NumCopyOps += o.NumCopyOps
	s.ReadLatencyTicks += o.ReadLatencyTicks
	s.WriteLatencyTicks += o.WriteLatencyTicks
	s.UnmapLatencyTicks += o.UnmapLatencyTicks
	s.CopyLatencyTicks += o.CopyLatencyTicks
	mm := func(mx, mn *uint64, omx, omn uint64) {
		if omx > *mx {
			*mx = omx
		}
		if omn < *mn {
			*mn = omn
		}
	}
	mm(&s.MaxReadLatency, &s.MinReadLat, o.MaxReadLatency, o.MinReadLat)
	mm(&s.MaxWriteLatency, &s.MinWriteLat, o.MaxWriteLatency, o.MinWriteLat)
	mm(&s.MaxUnmapLatency, &s.MinUnmapLat, o.MaxUnmapLatency, o.MinUnmapLat)
	mm(&s.MaxCopyLatency, &s.MinCopyLat, o.MaxCopyLatency, o.MinCopyLat)
	for i := range s.Errors {
		s.Errors[i] += o.Errors[i]
	}
	s.NumFlushOps += o.NumFlushOps
	s.NumWriteZeroOps += o.NumWriteZeroOps
	s.NumResetOps += o.NumResetOps
	s.NumCompareOps += o.NumCompareOps
	s.BytesWriteZeroed += o.BytesWriteZeroed
	s.BytesCompar += o.BytesCompar
}

// NewIOStat returns a zeroed IOStat with min latencies at their "none yet"
// value.
func NewIOStat() IOStat {
	var s IOStat
	s.reset(ResetAll)
	return s
}

func zeroIfMax(v uint64) uint64 {
	if v == math.MaxUint64 {
		return 0
	}
	return v
}

// JSONFields returns the stat in SPDK's bdev_get_iostat key order, ready to
// be marshalled as part of an ordered object.
func (s *IOStat) JSONFields() Ordered {
	kv := Obj(
		"bytes_read", s.BytesRead, "num_read_ops", s.NumReadOps,
		"bytes_written", s.BytesWritten, "num_write_ops", s.NumWriteOps,
		"bytes_unmapped", s.BytesUnmapped, "num_unmap_ops", s.NumUnmapOps,
		"bytes_copied", s.BytesCopied, "num_copy_ops", s.NumCopyOps,
		"read_latency_ticks", s.ReadLatencyTicks, "max_read_latency_ticks", s.MaxReadLatency,
		"min_read_latency_ticks", zeroIfMax(s.MinReadLat),
		"write_latency_ticks", s.WriteLatencyTicks, "max_write_latency_ticks", s.MaxWriteLatency,
		"min_write_latency_ticks", zeroIfMax(s.MinWriteLat),
		"unmap_latency_ticks", s.UnmapLatencyTicks, "max_unmap_latency_ticks", s.MaxUnmapLatency,
		"min_unmap_latency_ticks", zeroIfMax(s.MinUnmapLat),
		"copy_latency_ticks", s.CopyLatencyTicks, "max_copy_latency_ticks", s.MaxCopyLatency,
		"min_copy_latency_ticks", zeroIfMax(s.MinCopyLat),
	)
	var errs Ordered
	for st, n := range s.Errors {
		if n != 0 {
			errs = append(errs, KV{Key: Status(st).String(), Value: n})
		}
	}
	if errs != nil {
		kv = append(kv, KV{Key: "io_error", Value: errs})
	}
	return kv
}
