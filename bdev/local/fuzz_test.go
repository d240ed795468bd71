package local

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"hyperpath/rpc"
)

var fuzzMethods = []string{"bdev_aio_create", "bdev_aio_delete", "bdev_uring_create", "bdev_uring_delete"}

// FuzzRPCParams sends arbitrary params to the module's methods: every
// answer is a result or a JSON-RPC error, never a handler panic (which the
// server would turn into -32603 "Internal error"). Filenames other than
// the test's own file are skipped, so the fuzzer never opens the machine's
// devices.
func FuzzRPCParams(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "fuzz.img")
	if err := os.WriteFile(path, make([]byte, 64<<10), 0o600); err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		m uint8
		p string
	}{
		{0, `{"name":"A","filename":"FILE","block_size":4096,"readonly":true,"fallocate":true,"nowait":false,"uuid":"0d4b3b8a-5c65-4a5e-9b3c-2c8c8c7a1b20"}`},
		{0, `{"name":"A","filename":"FILE","block_size":4294967295}`},
		{2, `{"filename":"FILE","name":"U","block_size":512}`},
		{2, `{"filename":"FILE","name":""}`},
		{1, `{"name":"U0"}`},
		{3, `{"name":"U0"}`},
		{0, `["FILE"]`},
	} {
		f.Add(s.m, []byte(s.p))
	}
	f.Fuzz(func(t *testing.T, m uint8, params []byte) {
		if !json.Valid(params) {
			t.Skip()
		}
		var obj map[string]any
		if json.Unmarshal(params, &obj) == nil {
			if fn, ok := obj["filename"].(string); ok {
				if fn != "FILE" {
					t.Skip("filename outside the test")
				}
				obj["filename"] = path
				params, _ = json.Marshal(obj)
			}
		}
		e := newRPCEnv(t)
		if err := e.call("bdev_uring_create", map[string]any{"name": "U0", "filename": path}, nil); err != nil {
			t.Fatal(err)
		}
		err := e.call(fuzzMethods[int(m)%len(fuzzMethods)], json.RawMessage(params), nil)
		var re *rpc.Error
		if err != nil && (!errors.As(err, &re) || re.Code == rpc.CodeInternalError && re.Message == "Internal error") {
			t.Fatalf("params %s: %v", params, err)
		}
	})
}
