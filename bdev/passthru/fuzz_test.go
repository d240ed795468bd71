package passthru_test

import (
	"encoding/json"
	"testing"

	"hyperpath/bdev/internal/bdevtest"
)

var fuzzMethods = []string{"bdev_passthru_create", "bdev_passthru_delete"}

// FuzzRPCParams sends arbitrary params to the module's methods: every
// answer is a result or a JSON-RPC error, never a handler panic (which the
// server would turn into -32603 "Internal error").
func FuzzRPCParams(f *testing.F) {
	for _, s := range []struct {
		m uint8
		p string
	}{
		{0, `{"base_bdev_name":"M0","name":"P1"}`},
		{0, `{"base_bdev_name":"Later","name":"P2","uuid":"7a55c0de-0000-4000-8000-000000000007"}`},
		{0, `{"base_bdev_name":"","name":""}`},
		{0, `{"base_bdev_name":"M0","name":"P0"}`},
		{1, `{"name":"P0"}`},
		{1, `{"name":"M0"}`},
		{1, `[1,{"name":null}]`},
	} {
		f.Add(s.m, []byte(s.p))
	}
	f.Fuzz(func(t *testing.T, m uint8, params []byte) {
		if !json.Valid(params) {
			t.Skip()
		}
		e := newRPCEnv(t)
		// Always have a passthru bdev to aim at (on M1, leaving M0 free).
		e.Malloc("M1", 512, 16)
		if err := e.call("bdev_passthru_create", map[string]any{"base_bdev_name": "M1", "name": "P0"}, nil); err != nil {
			t.Fatal(err)
		}
		err := e.call(fuzzMethods[int(m)%len(fuzzMethods)], json.RawMessage(params), nil)
		bdevtest.CheckFuzzAnswer(t, params, err)
		e.Poll(5)
	})
}
