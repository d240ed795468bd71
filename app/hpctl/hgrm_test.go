package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// hgrmRow is one row of a percentile distribution.
type hgrmRow struct {
	value, pct, inv float64
	count           int64
}

// jsParseFloat is JavaScript's parseFloat, which HdrHistogram's plotter
// (plotFiles.html) applies to the first and fourth field of each line: the
// longest numeric prefix, NaN when there is none.
var jsNumber = regexp.MustCompile(`^[+-]?(Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)`)

func jsParseFloat(s string) float64 {
	m := jsNumber.FindString(strings.TrimLeft(s, " \t"))
	if m == "" {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(strings.Replace(m, "Infinity", "Inf", 1), 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// hdrPlotRow is hdr-plot's line pattern (re.match: from the line start).
var hdrPlotRow = regexp.MustCompile(`^\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)`)

// parseHgrm checks text against the .hgrm format and the plotters' rules
// and returns its rows and the footer's total count.
func parseHgrm(t *testing.T, text string) ([]hgrmRow, int64) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 6 {
		t.Fatalf("hgrm too short:\n%s", text)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "Value Percentile TotalCount 1/(1-Percentile)" || strings.Contains(lines[0], "\t") {
		t.Fatalf("header %q", lines[0])
	}
	if lines[1] != "" {
		t.Fatalf("no blank line after the header: %q", lines[1])
	}
	footer := lines[len(lines)-3:]
	var mean, sd, maxV float64
	var total, buckets, sub int64
	if _, err := fmt.Sscanf(footer[0], "#[Mean    = %f, StdDeviation   = %f]", &mean, &sd); err != nil {
		t.Fatalf("footer %q: %v", footer[0], err)
	}
	if _, err := fmt.Sscanf(footer[1], "#[Max     = %f, Total count    = %d]", &maxV, &total); err != nil {
		t.Fatalf("footer %q: %v", footer[1], err)
	}
	if _, err := fmt.Sscanf(footer[2], "#[Buckets = %d, SubBuckets     = %d]", &buckets, &sub); err != nil {
		t.Fatalf("footer %q: %v", footer[2], err)
	}
	var rows []hgrmRow
	plotted, hdrPlotted := 0, 0
	for i, l := range lines {
		// HdrHistogram's plotter: trim, split on spaces, four fields, not a
		// comment, first and fourth fields numbers.
		v := strings.Split(strings.TrimSpace(l), " ")
		v = slicesDeleteEmpty(v)
		if !strings.HasPrefix(strings.TrimSpace(l), "#") && len(v) == 4 &&
			!math.IsNaN(jsParseFloat(v[0])) && !math.IsNaN(jsParseFloat(v[3])) {
			plotted++
		}
		if hdrPlotRow.MatchString(l) {
			hdrPlotted++
		}
		if i < 2 || i >= len(lines)-3 {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 4 || strings.Contains(l, "\t") {
			t.Fatalf("row %d %q: want four space-separated fields", i, l)
		}
		var r hgrmRow
		var err error
		if r.value, err = strconv.ParseFloat(f[0], 64); err != nil {
			t.Fatalf("row %q: value: %v", l, err)
		}
		if r.pct, err = strconv.ParseFloat(f[1], 64); err != nil {
			t.Fatalf("row %q: percentile: %v", l, err)
		}
		if r.count, err = strconv.ParseInt(f[2], 10, 64); err != nil {
			t.Fatalf("row %q: count: %v", l, err)
		}
		if f[3] == "inf" && i == len(lines)-4 {
			r.inv = math.Inf(1)
		} else if r.inv, err = strconv.ParseFloat(f[3], 64); err != nil {
			t.Fatalf("row %q: 1/(1-Percentile): %v", l, err)
		}
		if n := len(rows); n > 0 {
			p := rows[n-1]
			if r.value < p.value || r.pct < p.pct || r.count < p.count || r.inv < p.inv {
				t.Fatalf("row %q goes back after %+v", l, p)
			}
		}
		rows = append(rows, r)
	}
	last := rows[len(rows)-1]
	if last.pct != 1 || last.count != total || math.Abs(last.value-maxV) > 0.001 {
		t.Fatalf("last row %+v; footer max %v total %d", last, maxV, total)
	}
	// Every row but the last ("inf") is a point for both plotters.
	if want := len(rows) - 1; total > 0 && (plotted != want || hdrPlotted != want) {
		t.Fatalf("plotFiles.html takes %d lines, hdr-plot %d, of %d rows", plotted, hdrPlotted, len(rows))
	}
	return rows, total
}

func slicesDeleteEmpty(v []string) []string {
	out := v[:0]
	for _, s := range v {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

var summaryRE = regexp.MustCompile(`^(\S+( \S+)?): (\d+) IOs, p50 ([0-9.]+) µs, p99 ([0-9.]+) µs, p99\.9 ([0-9.]+) µs, max ([0-9.]+) µs; wrote (.+) \(values in µs\)\n$`)

// TestHistogramDumpLive dumps the histogram of a malloc bdev of a live
// in-process daemon after real IO and reads the file back.
func TestHistogramDumpLive(t *testing.T) {
	d, sock := startDaemon(t)
	ctl := func(args ...string) (string, int) { return hpctl(t, "", append([]string{"-s", sock}, args...)...) }
	if out, rc := ctl("bdev_malloc_create", "-b", "Malloc0", "8", "512"); rc != 0 || out != "Malloc0\n" {
		t.Fatalf("create: %d %q", rc, out)
	}
	if out, rc := ctl("bdev_enable_histogram", "Malloc0", "--histogram"); rc != 0 {
		t.Fatalf("enable: %d %q", rc, out)
	}
	const n = 400
	doIO(t, d, "Malloc0", n)
	dir := t.TempDir()
	for i, c := range []struct {
		opc   []string
		count int64
	}{{nil, n}, {[]string{"--opc", "read"}, n / 2}, {[]string{"-o", "write"}, n / 2}, {[]string{"--opc", "unmap"}, 0}} {
		file := filepath.Join(dir, fmt.Sprintf("dump%d.hgrm", i))
		out, rc := ctl(append([]string{"bdev_histogram_dump", "Malloc0", file}, c.opc...)...)
		m := summaryRE.FindStringSubmatch(out)
		if rc != 0 || m == nil || m[8] != file {
			t.Fatalf("dump %v: rc %d %q", c.opc, rc, out)
		}
		if got, _ := strconv.ParseInt(m[3], 10, 64); got != c.count {
			t.Fatalf("dump %v: %d IOs, want %d", c.opc, got, c.count)
		}
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rows, total := parseHgrm(t, string(text))
		if total != c.count {
			t.Fatalf("dump %v: file total %d, want %d", c.opc, total, c.count)
		}
		if c.count == 0 {
			continue
		}
		// The summary's percentiles are the file's: the first row at or
		// past each percentile has that value.
		p50, _ := strconv.ParseFloat(m[4], 64)
		p99, _ := strconv.ParseFloat(m[5], 64)
		maxV, _ := strconv.ParseFloat(m[7], 64)
		if !(0 < p50 && p50 <= p99 && p99 <= maxV) || math.Abs(rows[len(rows)-1].value-maxV) > 0.001 {
			t.Fatalf("summary %q vs rows %+v", out, rows[len(rows)-1])
		}
		for _, r := range rows {
			if r.pct >= 0.5 {
				if math.Abs(r.value-p50) > 0.001 {
					t.Fatalf("p50 %v but the 50%% row says %v", p50, r.value)
				}
				break
			}
		}
		t.Logf("%s", strings.TrimSpace(out))
	}

	// Errors come back as rpc.py would print them; no file is written.
	none := filepath.Join(dir, "none.hgrm")
	ctl("bdev_null_create", "Null0", "1", "512")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"Null0", none}, "histogram not enabled"},
		{[]string{"NoSuch", none}, `"code": -19`},
		{[]string{"Malloc0", none, "--opc", "bogus"}, "Invalid Io type"},
	} {
		out, rc := ctl(append([]string{"bdev_histogram_dump"}, c.args...)...)
		if rc != 1 || !strings.HasPrefix(out, "request:\n") || !strings.Contains(out, c.want) {
			t.Errorf("%v: rc %d %q", c.args, rc, out)
		}
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("a failed dump left %s: %v", none, err)
	}
	out, rc := hpctl(t, "", "--dry-run", "bdev_histogram_dump", "Malloc0", none, "-o", "read")
	want := "Request:\n{\n  \"method\": \"bdev_get_histogram_hdr\",\n  \"params\": {\n    \"name\": \"Malloc0\",\n    \"opc\": \"read\"\n  }\n}\n"
	if rc != 0 || out != want {
		t.Errorf("dry run: %d %q", rc, out)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote %s", none)
	}
	if out, rc := ctl("bdev_histogram_dump", "Malloc0"); rc != 1 || !strings.Contains(out, "missing argument <file>") {
		t.Errorf("missing file: %d %q", rc, out)
	}
}

// encodeResult builds a bdev_get_histogram_hdr result for h.
func encodeResult(t testing.TB, unit string, total int64, h *hdr.Histogram) []byte {
	enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"unit": unit, "total_count": total, "histogram": string(enc)})
	return b
}

func sampleHist() *hdr.Histogram {
	h := hdr.New(1, 3_600_000_000_000, 3)
	for i := int64(1); i <= 1000; i++ {
		h.RecordValue(i * 1000) // 1 µs .. 1 ms
	}
	return h
}

func TestDecodeHdrResult(t *testing.T) {
	defer func(n int) { maxHistogramB64 = n }(maxHistogramB64)
	maxHistogramB64 = 64 << 10
	h := sampleHist()
	good := encodeResult(t, "ns", 1000, h)
	enc, _ := h.Encode(hdr.V2CompressedEncodingCookieBase)
	for _, c := range []struct {
		name string
		raw  []byte
		err  string
	}{
		{"ns", good, ""},
		{"us", encodeResult(t, "us", 1000, h), ""},
		{"unknown unit", encodeResult(t, "s", 1000, h), `unknown unit "s"`},
		{"count mismatch", encodeResult(t, "ns", 999, h), "holds 1000 values but total_count is 999"},
		{"no total", []byte(`{"unit":"ns","histogram":"` + string(enc) + `"}`), "no total_count"},
		{"no histogram", []byte(`{"unit":"ns","total_count":0}`), "no histogram"},
		{"bad base64", []byte(`{"unit":"ns","total_count":0,"histogram":"@@@"}`), "histogram: illegal base64"},
		{"truncated", []byte(`{"unit":"ns","total_count":1000,"histogram":"` + string(enc[:len(enc)/2]) + `"}`), "histogram:"},
		{"not an object", []byte(`[1]`), "result:"},
		{"too big", []byte(`{"unit":"ns","total_count":0,"histogram":"` + strings.Repeat("A", maxHistogramB64+1) + `"}`), "more than"},
		{"reply too big", []byte(`{"x":"` + strings.Repeat("A", maxHistogramB64+4096) + `"}`), "result is"},
	} {
		got, scale, err := decodeHdrResult(c.raw)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || got != nil):
			t.Errorf("%s: %v (%v), want error with %q", c.name, err, got, c.err)
		case c.err == "" && (got.TotalCount() != 1000 || (c.name == "ns") != (scale == 1000)):
			t.Errorf("%s: count %d scale %v", c.name, got.TotalCount(), scale)
		}
	}

	// Microseconds in the file; an empty histogram still gives a file.
	var b bytes.Buffer
	s, err := writeHgrm(&b, h, 1000)
	if err != nil || s.Count != 1000 || math.Abs(s.P50-500) > 1 || math.Abs(s.P99-990) > 2 || math.Abs(s.Max-1000) > 1 {
		t.Fatalf("%+v %v", s, err)
	}
	if rows, total := parseHgrm(t, b.String()); total != 1000 || rows[0].value < 0.999 || rows[0].value > 1.001 {
		t.Fatalf("first row %+v total %d", rows[0], total)
	}
	b.Reset()
	if s, err := writeHgrm(&b, hdr.New(1, 1000, 3), 1000); err != nil || s.Count != 0 {
		t.Fatalf("empty: %+v %v", s, err)
	}
	if _, total := parseHgrm(t, b.String()); total != 0 {
		t.Fatal(total)
	}
}

// FuzzHgrmResult: whatever the server sends, decoding never panics, an
// error comes with no histogram, and what decodes writes a file.
func FuzzHgrmResult(f *testing.F) {
	h := sampleHist()
	f.Add(encodeResult(f, "ns", 1000, h))
	f.Add(encodeResult(f, "us", 0, hdr.New(1, 1000, 2)))
	f.Add([]byte(`{"unit":"ns","total_count":0,"histogram":"HISTFAAAAB14nJNpmSzMwMDAzAABzFCaEUIBAAOsAJI="}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, scale, err := decodeHdrResult(raw)
		if err != nil {
			if got != nil || scale != 0 {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		var b bytes.Buffer
		s, err := writeHgrm(&b, got, scale)
		if err != nil || s.Count != got.TotalCount() || !strings.HasPrefix(b.String(), hgrmHeader+"\n\n") {
			t.Fatalf("%+v %v", s, err)
		}
	})
}

// FuzzHgrmHistogram fuzzes the encoded histogram itself (the bytes under
// the base64), with total_count set to what it decodes to, so that
// decodable inputs go on to be written.
func FuzzHgrmHistogram(f *testing.F) {
	for _, h := range []*hdr.Histogram{sampleHist(), hdr.New(1, 1000, 1)} {
		enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(string(enc))
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, enc []byte) {
		b64 := base64.StdEncoding.EncodeToString(enc)
		var total int64
		func() {
			defer func() { recover() }()
			if h, err := hdr.Decode([]byte(b64)); err == nil {
				total = h.TotalCount()
			}
		}()
		raw, _ := json.Marshal(map[string]any{"unit": "ns", "total_count": total, "histogram": b64})
		got, scale, err := decodeHdrResult(raw)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		var b bytes.Buffer
		if s, err := writeHgrm(&b, got, scale); err != nil || s.Count != total {
			t.Fatalf("%+v %v (total %d)", s, err, total)
		}
	})
}
