package delay

import (
	"encoding/json"
	"testing"

	"hyperpath/bdev/internal/bdevtest"
)

var fuzzMethods = []string{"bdev_delay_create", "bdev_delay_delete", "bdev_delay_update_latency"}

// FuzzRPCParams sends arbitrary params to the module's methods: every
// answer is a result or a JSON-RPC error, never a handler panic (which the
// server would turn into -32603 "Internal error").
func FuzzRPCParams(f *testing.F) {
	for _, s := range []struct {
		m uint8
		p string
	}{
		{0, `{"name":"D1","base_bdev_name":"M1","avg_read_latency":1,"p99_read_latency":2,"avg_write_latency":3,"p99_write_latency":4}`},
		{0, `{"name":"D1","base_bdev_name":"M0","avg_read_latency":18446744073709551615,"p99_read_latency":18446744073709551615,"avg_write_latency":0,"p99_write_latency":0,"uuid":"0b0e5c1e-0000-4000-8000-0000000000aa"}`},
		{1, `{"name":"D0"}`},
		{2, `{"delay_bdev_name":"D0","latency_type":"p99_write","latency_us":18446744073709551615}`},
		{2, `{"delay_bdev_name":"D0","latency_type":"avg_read","latency_us":0}`},
		{1, `[]`},
	} {
		f.Add(s.m, []byte(s.p))
	}
	f.Fuzz(func(t *testing.T, m uint8, params []byte) {
		if !json.Valid(params) {
			t.Skip()
		}
		e := newRPCEnv(t)
		if err := e.call("bdev_delay_create", map[string]any{"name": "D0", "base_bdev_name": "M0", "avg_read_latency": 1,
			"p99_read_latency": 1, "avg_write_latency": 1, "p99_write_latency": 1}, nil); err != nil {
			t.Fatal(err)
		}
		err := e.call(fuzzMethods[int(m)%len(fuzzMethods)], json.RawMessage(params), nil)
		bdevtest.CheckFuzzAnswer(t, params, err)
		e.pollAt(0)
	})
}
