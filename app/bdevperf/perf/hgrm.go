package perf

import (
	"bufio"
	"fmt"
	"io"
	"math"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// HgrmTicksPerHalfDistance is the percentile resolution of WriteHgrm: the
// number of lines per halving of the distance to 100% (HdrHistogram's
// outputPercentileDistribution default is 5).
const HgrmTicksPerHalfDistance = 5

// WriteHgrm writes h, which holds nanoseconds, as an HdrHistogram
// percentile distribution (.hgrm) with values in microseconds:
//
//	# bdevperf latency, values in microseconds (us)      <- our comment
//	       Value     Percentile TotalCount 1/(1-Percentile)
//	                                                     <- blank line
//	       1.234 0.000000000000          1           1.00
//	       ...
//	      99.999 1.000000000000      50000                <- 100%: 3 columns
//	#[Mean    =        1.500, StdDeviation   =        0.100]
//	#[Max     =       99.999, Total count    =        50000]
//	#[Buckets =           32, SubBuckets     =         2048]
//
// The data lines are what HdrHistogram's own plotter and the usual
// scripts read; every other line starts with '#' or is the column header.
func WriteHgrm(w io.Writer, h *hdr.Histogram, title string) error {
	const scale = 1000.0 // ns -> us
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s, values in microseconds (us)\n", title)
	fmt.Fprintf(bw, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")
	if h.TotalCount() > 0 {
		for _, br := range h.CumulativeDistributionWithTicks(HgrmTicksPerHalfDistance) {
			q := br.Quantile / 100
			v := float64(br.ValueAt) / scale
			if q >= 1 {
				fmt.Fprintf(bw, "%12.3f %1.12f %10d\n", v, 1.0, br.Count)
				continue
			}
			fmt.Fprintf(bw, "%12.3f %1.12f %10d %14.2f\n", v, q, br.Count, 1/(1-q))
		}
	}
	buckets, subBuckets := hdrGeometry(h)
	fmt.Fprintf(bw, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", h.Mean()/scale, h.StdDev()/scale)
	fmt.Fprintf(bw, "#[Max     = %12.3f, Total count    = %12d]\n", float64(h.Max())/scale, h.TotalCount())
	fmt.Fprintf(bw, "#[Buckets = %12d, SubBuckets     = %12d]\n", buckets, subBuckets)
	return bw.Flush()
}

// hdrGeometry derives the bucket layout from the histogram's parameters,
// as HdrHistogram defines it: sub-buckets cover 2*10^sigfigs values at unit
// resolution, and each further bucket doubles the range.
func hdrGeometry(h *hdr.Histogram) (buckets, subBuckets int64) {
	largestSingleUnit := 2 * math.Pow10(int(h.SignificantFigures()))
	subBuckets = int64(1) << uint(math.Ceil(math.Log2(largestSingleUnit)))
	unitMag := uint(math.Floor(math.Log2(float64(h.LowestTrackableValue()))))
	smallestUntrackable := subBuckets << unitMag
	buckets = 1
	for smallestUntrackable <= h.HighestTrackableValue() {
		if smallestUntrackable > math.MaxInt64/2 {
			buckets++
			break
		}
		smallestUntrackable <<= 1
		buckets++
	}
	return buckets, subBuckets
}

// WriteHgrm writes every job's latencies merged (see the function WriteHgrm).
func (r *Result) WriteHgrm(w io.Writer) error {
	title := fmt.Sprintf("bdevperf %s, depth %d, IO size %d, %d jobs merged",
		r.cfg.Workload, r.cfg.QueueDepth, r.cfg.IOSizeBytes, len(r.Jobs))
	return WriteHgrm(w, r.Total.Hist, title)
}
