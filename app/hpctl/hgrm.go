package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// bdev_histogram_dump is Hyperpath's own command (rpc.py has none): it
// fetches a bdev's latency histogram with bdev_get_histogram_hdr and
// writes it as HdrHistogram's classic percentile distribution (.hgrm), in
// microseconds, the text format HdrHistogram's plotter and hdr-plot read:
//
//	       Value     Percentile TotalCount 1/(1-Percentile)
//	                                                          (blank line)
//	       3.071     0.000000            1         1.00      (one row per step)
//	       ...
//	      20.479     1.000000         1000          inf
//	#[Mean    =        4.102, StdDeviation   =        1.077]
//	#[Max     =       20.479, Total count    =         1000]
//	#[Buckets =           32, SubBuckets     =         2048]
//
// Rows are Value (µs), Percentile (a fraction), TotalCount (values at or
// below Value) and 1/(1-Percentile), separated by spaces; the plotter
// takes every line of four space-separated fields whose first and fourth
// parse as numbers, so the header and the last ("inf") row are skipped.

// hgrmHeader is the percentile table header HdrHistogram's Java
// implementation writes; the plotters look for these four words.
var hgrmHeader = fmt.Sprintf("%12s %14s %10s %14s", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")

// maxHistogramB64 bounds the encoded histogram accepted from the server
// (the daemon's, 1 ns to 120 s at 3 digits, is well under 1 MiB even
// with every counter set). A variable so that tests can lower it.
var maxHistogramB64 = 16 << 20

// hdrResult is bdev_get_histogram_hdr's result.
type hdrResult struct {
	Unit       string `json:"unit"`
	TotalCount *int64 `json:"total_count"`
	Histogram  string `json:"histogram"`
}

// hgrmSummary is what bdev_histogram_dump reports about a dump.
type hgrmSummary struct {
	Count               int64
	P50, P99, P999, Max float64 // microseconds
}

// unitPerMicrosecond is how many of unit make one microsecond.
func unitPerMicrosecond(unit string) (float64, error) {
	switch unit {
	case "ns":
		return 1000, nil
	case "us":
		return 1, nil
	case "ms":
		return 0.001, nil
	}
	return 0, fmt.Errorf("bdev_get_histogram_hdr: unknown unit %q (want ns, us or ms)", unit)
}

// decodeHdrResult checks and decodes a bdev_get_histogram_hdr result. It
// never panics on bad input: the reply comes from a peer.
func decodeHdrResult(raw []byte) (h *hdr.Histogram, scale float64, err error) {
	if len(raw) > maxHistogramB64+4096 {
		return nil, 0, fmt.Errorf("bdev_get_histogram_hdr: result is %d bytes, more than the %d accepted", len(raw), maxHistogramB64+4096)
	}
	var res hdrResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, 0, fmt.Errorf("bdev_get_histogram_hdr: result: %w", err)
	}
	if scale, err = unitPerMicrosecond(res.Unit); err != nil {
		return nil, 0, err
	}
	switch {
	case res.TotalCount == nil:
		return nil, 0, errors.New("bdev_get_histogram_hdr: result has no total_count")
	case res.Histogram == "":
		return nil, 0, errors.New("bdev_get_histogram_hdr: result has no histogram")
	case len(res.Histogram) > maxHistogramB64:
		return nil, 0, fmt.Errorf("bdev_get_histogram_hdr: histogram is %d bytes, more than the %d accepted", len(res.Histogram), maxHistogramB64)
	}
	defer func() {
		if r := recover(); r != nil {
			h, scale, err = nil, 0, fmt.Errorf("bdev_get_histogram_hdr: histogram: cannot decode: %v", r)
		}
	}()
	h, err = hdr.Decode([]byte(res.Histogram))
	if err != nil {
		return nil, 0, fmt.Errorf("bdev_get_histogram_hdr: histogram: %w", err)
	}
	if got := h.TotalCount(); got != *res.TotalCount {
		return nil, 0, fmt.Errorf("bdev_get_histogram_hdr: histogram holds %d values but total_count is %d", got, *res.TotalCount)
	}
	return h, scale, nil
}

// writeHgrm writes h as an .hgrm percentile distribution in microseconds
// (h's values divided by scale) and summarizes it.
func writeHgrm(w io.Writer, h *hdr.Histogram, scale float64) (hgrmSummary, error) {
	var b bytes.Buffer
	if _, err := h.PercentilesPrint(&b, 5, scale); err != nil {
		return hgrmSummary{}, err
	}
	// The library's header is tab-separated; write HdrHistogram's own.
	out := b.Bytes()
	if i := bytes.IndexByte(out, '\n'); i >= 0 {
		out = out[i:]
	}
	if _, err := io.WriteString(w, hgrmHeader); err != nil {
		return hgrmSummary{}, err
	}
	if _, err := w.Write(out); err != nil {
		return hgrmSummary{}, err
	}
	at := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / scale }
	return hgrmSummary{Count: h.TotalCount(), P50: at(50), P99: at(99), P999: at(99.9),
		Max: float64(h.Max()) / scale}, nil
}

func init() {
	register(Command{
		Name: "bdev_histogram_dump",
		Args: "<name> <file>",
		Help: "Write a bdev's latency histogram to FILE as an HdrHistogram percentile distribution (.hgrm, microseconds)",
		Custom: func(fs *flag.FlagSet) RunFunc {
			var opc string
			StringFlag(fs, &opc, "o,opc", "Only this IO type (read, write, unmap, flush, reset, write_zeroes, compare); default all types")
			return func(ctx context.Context, e *Env, args []string) error {
				if err := Args(args, "name", "file"); err != nil {
					return err
				}
				name, file := args[0], args[1]
				params := orderedParams{kv("name", name)}
				if opc != "" {
					params = append(params, kv("opc", opc))
				}
				var raw json.RawMessage
				if err := e.Call(ctx, "bdev_get_histogram_hdr", params, &raw); err != nil || e.DryRun {
					return err
				}
				h, scale, err := decodeHdrResult(raw)
				if err != nil {
					return err
				}
				var b bytes.Buffer
				s, err := writeHgrm(&b, h, scale)
				if err != nil {
					return err
				}
				if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
					return err
				}
				what := name
				if opc != "" {
					what += " " + opc
				}
				_, err = fmt.Fprintf(e.Stdout, "%s: %d IOs, p50 %.3f µs, p99 %.3f µs, p99.9 %.3f µs, max %.3f µs; wrote %s (values in µs)\n",
					what, s.Count, s.P50, s.P99, s.P999, s.Max, file)
				return err
			}
		},
	})
}
