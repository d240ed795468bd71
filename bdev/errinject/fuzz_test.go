package errinject

import (
	"encoding/json"
	"testing"

	"hyperpath/bdev/internal/bdevtest"
)

var fuzzMethods = []string{"bdev_error_create", "bdev_error_delete", "bdev_error_inject_error", "bdev_error_resume_pending"}

// FuzzRPCParams sends arbitrary params to the module's methods: every
// answer is a result or a JSON-RPC error, never a handler panic (which the
// server would turn into -32603 "Internal error").
func FuzzRPCParams(f *testing.F) {
	for _, s := range []struct {
		m uint8
		p string
	}{
		{0, `{"base_name":"M0"}`},
		{0, `{"base_name":"M0","uuid":"6a4f5c1e-0000-4000-8000-000000000001"}`},
		{1, `{"name":"EE_M0"}`},
		{2, `{"name":"EE_M0","io_type":"all","error_type":"corrupt_data","num":3,"queue_depth":1,"corrupt_offset":18446744073709551615,"corrupt_value":255}`},
		{2, `{"name":"EE_M0","io_type":"read","error_type":"nvme_failure","nvme_sct":1,"nvme_sc":4294967295}`},
		{3, `{"name":"EE_M0"}`},
		{2, `[1,{"name":null}]`},
	} {
		f.Add(s.m, []byte(s.p))
	}
	f.Fuzz(func(t *testing.T, m uint8, params []byte) {
		if !json.Valid(params) {
			t.Skip()
		}
		e := newRPCEnv(t)
		// Always have an error bdev to aim at.
		if err := e.call("bdev_error_create", map[string]any{"base_name": "M0"}, nil); err != nil {
			t.Fatal(err)
		}
		err := e.call(fuzzMethods[int(m)%len(fuzzMethods)], json.RawMessage(params), nil)
		bdevtest.CheckFuzzAnswer(t, params, err)
		e.Poll(5)
	})
}
