package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

type fuzzParams struct {
	Name   string          `json:"name" rpc:"required"`
	N      uint64          `json:"n"`
	I      int8            `json:"i"`
	F      float64         `json:"f"`
	B      bool            `json:"b"`
	Opt    *uint32         `json:"opt,omitempty"`
	Nested *nsParams       `json:"nested,omitempty"`
	List   []nsParams      `json:"list,omitempty"`
	Strs   []string        `json:"strs,omitempty"`
	Map    map[string]int  `json:"map,omitempty"`
	Raw    json.RawMessage `json:"raw"`
}

// fuzzServer has the built-ins plus methods that decode strictly and
// relaxed, return errno errors, and panic, so fuzzed requests reach every
// path of the dispatcher and of Decode.
func fuzzServer() *Server {
	s := NewServer(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.OnKill(func(syscall.Signal) error { return nil })
	s.Register("echo", Startup|Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var v fuzzParams
		if err := Decode(p, &v); err != nil {
			return nil, DecodeFailed(err)
		}
		return v, nil
	})
	s.Register("echo_relaxed", Startup|Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var v fuzzParams
		if err := DecodeRelaxed(p, &v); err != nil {
			return nil, InvalidParams("Invalid parameters").WithCause(err)
		}
		return v, nil
	})
	s.Register("fail", Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return nil, syscall.ENODEV
	})
	s.Register("boom", Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		panic("boom")
	})
	s.RegisterSubsystem("a", nil, func() []ConfigEntry { return []ConfigEntry{{Method: "echo", Params: map[string]string{"name": "x"}}} })
	s.RegisterSubsystem("b", []string{"a"}, nil)
	return s
}

// checkReply validates one reply object.
func checkReply(t *testing.T, raw json.RawMessage) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("reply is not an object: %s", raw)
	}
	if string(m["jsonrpc"]) != `"2.0"` {
		t.Fatalf("reply without jsonrpc 2.0: %s", raw)
	}
	id, ok := m["id"]
	if !ok || !strings.HasPrefix(string(raw), `{"jsonrpc":"2.0","id":`) {
		t.Fatalf("reply without id first: %s", raw)
	}
	switch jsonKind(id) {
	case "string", "number", "null":
	default:
		t.Fatalf("bad id in reply: %s", raw)
	}
	_, hasRes := m["result"]
	e, hasErr := m["error"]
	if hasRes == hasErr || len(m) != 3 {
		t.Fatalf("reply must have exactly one of result/error: %s", raw)
	}
	if hasErr {
		var eo struct {
			Code    *int    `json:"code"`
			Message *string `json:"message"`
		}
		if json.Unmarshal(e, &eo) != nil || eo.Code == nil || eo.Message == nil {
			t.Fatalf("bad error object: %s", raw)
		}
	} else if string(id) == "null" {
		t.Fatalf("success reply to a notification: %s", raw)
	}
}

// FuzzRequest feeds arbitrary bytes to the connection's decoder and
// dispatcher, as a socket would: it must never panic, and every line it
// writes must be a well-formed reply or batch of replies, with a parse
// error only as the last line.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		rpcPyVersion,
		`{"jsonrpc":"2.0","method":"echo","id":1,"params":{"name":"a","n":1,"nested":{"bdev_name":"x"},"list":[{"bdev_name":"y","nsid":2}]}}`,
		`[{"method":"echo_relaxed","id":"x","params":{"name":"b","zzz":[1]}},{"method":"framework_start_init"},{"method":"fail","id":2}]`,
		`{"method":"framework_wait_init","id":1}{"method":"framework_start_init","id":2}{"method":"framework_get_config","id":3,"params":{"name":"a","with_batches":true}}`,
		`{"method":"boom","id":1}`,
		"{\"method\": \"x\", \"id\": [1]} 42 \"s\" [] {",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := fuzzServer()
		var out lockedBuffer
		s.serveStream(context.Background(), bytes.NewReader(in), &out)
		lines := strings.Split(out.b.String(), "\n")
		if last := lines[len(lines)-1]; last != "" {
			t.Fatalf("output does not end in a newline: %q", last)
		}
		lines = lines[:len(lines)-1]
		for i, l := range lines {
			if strings.Contains(l, `"code":-32700,"message":"Parse error"`) && i != len(lines)-1 {
				t.Fatalf("output after a parse error: %q", lines[i+1:])
			}
			switch {
			case strings.HasPrefix(l, "["):
				var parts []json.RawMessage
				if err := json.Unmarshal([]byte(l), &parts); err != nil || len(parts) == 0 {
					t.Fatalf("bad batch reply: %s", l)
				}
				for _, p := range parts {
					checkReply(t, p)
				}
			case strings.HasPrefix(l, "{"):
				checkReply(t, json.RawMessage(l))
			default:
				t.Fatalf("reply line is neither object nor array: %q", l)
			}
		}
	})
}

// FuzzDecode checks Decode on arbitrary params: it never panics, and what
// it accepts re-encodes to params that decode to the same value.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","n":18446744073709551615,"i":-128,"f":1e300,"b":true,"opt":7}`,
		`{"name":"a","nested":{"bdev_name":"b","nsid":4294967295},"list":[{"bdev_name":"c"}],"strs":["x","\u00e9"],"map":{"k":-1},"raw":{"z":[null]}}`,
		`{"name":"a","name":"b"}`,
		`{"name":"a","zzz":1}`,
		`[1,2]`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, relaxed bool) {
		var v fuzzParams
		dec := Decode
		if relaxed {
			dec = DecodeRelaxed
		}
		if err := dec(in, &v); err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if v.Name != "" || v.Nested != nil || v.List != nil || v.Raw != nil {
				t.Fatalf("value changed on error: %+v", v)
			}
			return
		}
		b1, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w fuzzParams
		if err := Decode(b1, &w); err != nil {
			t.Fatalf("re-decoding %s: %v", b1, err)
		}
		b2, _ := json.Marshal(w)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip differs:\n%s\n%s", b1, b2)
		}
	})
}
