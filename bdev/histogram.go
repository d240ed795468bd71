package bdev

import (
	"encoding/base64"
	"encoding/binary"
	"math/bits"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"hyperpath/reactor"
)

// HistogramSettings is what bdev_enable_histogram turned on. It is
// immutable; enabling again publishes a new one.
type HistogramSettings struct {
	// Opc limits the histogram to one IO type; -1 means all types.
	Opc         int
	Granularity uint32
	MinNs       uint64
	MaxNs       uint64
	minRange    uint32
	maxRange    uint32
}

// Default histogram parameters, as SPDK's RPC defaults.
const (
	DefaultHistGranularity = 7
	DefaultHistMinNs       = 1000
	DefaultHistMaxNs       = 120_000_000_000
)

// NewHistogramSettings validates and derives the bucket ranges the way
// SPDK's spdk_bdev_histogram_enable_ext does, in reactor ticks.
func NewHistogramSettings(opc int, g uint32, minNs, maxNs uint64) (*HistogramSettings, bool) {
	if g == 0 || g > 32 || minNs >= maxNs {
		return nil, false
	}
	rate := float64(reactor.TickRate())
	minT := uint64(float64(minNs) * rate / 1e9)
	maxT := uint64(float64(maxNs) * rate / 1e9)
	if maxT > 0 {
		maxT--
	}
	s := &HistogramSettings{Opc: opc, Granularity: g, MinNs: minNs, MaxNs: maxNs,
		minRange: histRange(g, minT), maxRange: histRange(g, maxT)}
	if s.maxRange < s.minRange {
		s.maxRange = s.minRange
	}
	return s, true
}

func histRange(g uint32, v uint64) uint32 {
	lsb := 64 - int(g)
	clz := bits.LeadingZeros64(v)
	if clz <= lsb {
		return uint32(lsb - clz)
	}
	return 0
}

// spdkHist is SPDK's histogram_data: 2^g buckets per power-of-two range,
// ranges min_range..max_range, values in ticks.
type spdkHist struct {
	s       *HistogramSettings
	buckets []uint64
}

func newSPDKHist(s *HistogramSettings) *spdkHist {
	n := (1 << s.Granularity) * int(s.maxRange-s.minRange+1)
	return &spdkHist{s: s, buckets: make([]uint64, n)}
}

func (h *spdkHist) tally(v uint64) {
	g := h.s.Granularity
	r := histRange(g, v)
	var idx uint64
	switch {
	case r < h.s.minRange:
		r, idx = h.s.minRange, 0
	case r > h.s.maxRange:
		r, idx = h.s.maxRange, (1<<g)-1
	default:
		shift := uint32(0)
		if r > 0 {
			shift = r - 1
		}
		idx = (v >> shift) & ((1 << g) - 1)
	}
	h.buckets[uint64(r-h.s.minRange)<<g+idx]++
}

func (h *spdkHist) merge(o *spdkHist) {
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
}

// encode returns bdev_get_histogram's base64 of the little-endian buckets.
func (h *spdkHist) encode() string {
	raw := make([]byte, 8*len(h.buckets))
	for i, c := range h.buckets {
		binary.LittleEndian.PutUint64(raw[8*i:], c)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// chanHist is one channel's histograms, written only by its reactor.
type chanHist struct {
	s    *HistogramSettings
	spdk *spdkHist
	hdr  [NumIOTypes]*hdr.Histogram // in nanoseconds
	toNs float64
}

// hdrMaxNs bounds the HdrHistogram value range (values above are clamped).
const hdrMaxNs = 120_000_000_000

func newChanHist(s *HistogramSettings) *chanHist {
	h := &chanHist{s: s, spdk: newSPDKHist(s), toNs: 1e9 / float64(reactor.TickRate())}
	for t := range h.hdr {
		h.hdr[t] = hdr.New(1, hdrMaxNs, 3)
	}
	return h
}

// merge adds o's counts into h; both have the same settings.
func (h *chanHist) merge(o *chanHist) {
	h.spdk.merge(o.spdk)
	for t := range h.hdr {
		h.hdr[t].Merge(o.hdr[t])
	}
}

func (h *chanHist) record(t IOType, ticks uint64) {
	if h.s.Opc >= 0 && int(t) != h.s.Opc {
		return
	}
	h.spdk.tally(ticks)
	ns := int64(float64(ticks) * h.toNs)
	if ns < 1 {
		ns = 1
	} else if ns > hdrMaxNs {
		ns = hdrMaxNs
	}
	h.hdr[t].RecordValue(ns)
}

// HistogramData is a bdev's merged histograms, as returned by
// Bdev.Histogram.
type HistogramData struct {
	Settings *HistogramSettings
	spdk     *spdkHist
	// ByType holds one HdrHistogram per IO type (nanoseconds).
	ByType [NumIOTypes]*hdr.Histogram
}

// add merges h's counts into d, copying a type's HdrHistogram the first
// time (d never shares h's, which their channel keeps recording into).
func (d *HistogramData) add(h *chanHist) {
	d.spdk.merge(h.spdk)
	for t, th := range h.hdr {
		if d.ByType[t] == nil {
			d.ByType[t] = hdr.Import(th.Export())
			continue
		}
		d.ByType[t].Merge(th)
	}
}

// SPDKEncoding returns bdev_get_histogram's result object.
func (d *HistogramData) SPDKEncoding() Ordered {
	return Obj(
		"histogram", d.spdk.encode(),
		"granularity", int64(d.Settings.Granularity),
		"min_range", d.Settings.minRange,
		"max_range", d.Settings.maxRange,
		"tsc_rate", int64(reactor.TickRate()),
	)
}

// Merged returns one HdrHistogram over all IO types.
func (d *HistogramData) Merged() *hdr.Histogram {
	m := hdr.New(1, hdrMaxNs, 3)
	for _, h := range d.ByType {
		if h != nil {
			m.Merge(h)
		}
	}
	return m
}
