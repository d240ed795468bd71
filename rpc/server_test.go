package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const versionReply = `{"jsonrpc":"2.0","id":1,"result":{"version":"SPDK v26.09-pre hyperpath 0.1.0","fields":{"major":26,"minor":9,"patch":0,"suffix":"-pre"}}}`

// rpcPyVersion is the exact request rpc.py sends for spdk_get_version.
const rpcPyVersion = "{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"spdk_get_version\",\n  \"id\": 1\n}"

func TestFramingPrettyNoNewline(t *testing.T) {
	c := dialRaw(t, startServer(t, NewServer(Options{})))
	if got := c.call(rpcPyVersion); got != versionReply {
		t.Fatalf("got  %s\nwant %s", got, versionReply)
	}
	// The same connection keeps working (rpc.py piping several commands).
	if got := c.call(rpcPyVersion); got != versionReply {
		t.Fatalf("second request: %s", got)
	}
}

func TestFramingTwoRequestsOneWrite(t *testing.T) {
	c := dialRaw(t, startServer(t, NewServer(Options{})))
	c.send(`{"jsonrpc":"2.0","method":"spdk_get_version","id":1}{"jsonrpc":"2.0","method":"spdk_get_version","id":2}`)
	if got := c.line(); got != versionReply {
		t.Fatalf("first: %s", got)
	}
	if got := c.line(); got != strings.Replace(versionReply, `"id":1`, `"id":2`, 1) {
		t.Fatalf("second: %s", got)
	}
}

func TestFramingSplitWrites(t *testing.T) {
	c := dialRaw(t, startServer(t, NewServer(Options{})))
	req := rpcPyVersion + "  " + strings.Replace(rpcPyVersion, `"id": 1`, `"id": 2`, 1)
	for i := 0; i < len(req); i += 7 {
		c.send(req[i:min(i+7, len(req))])
		time.Sleep(time.Millisecond)
	}
	if got := c.line(); got != versionReply {
		t.Fatalf("first: %s", got)
	}
	if got := c.line(); !strings.HasPrefix(got, `{"jsonrpc":"2.0","id":2,"result":`) {
		t.Fatalf("second: %s", got)
	}
}

func TestBatch(t *testing.T) {
	s := NewServer(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.SetState(Runtime)
	c := dialRaw(t, startServer(t, s))
	// Pretty-printed like rpc.py -b; one invalid element, one notification.
	got := c.call("[\n  {\"jsonrpc\": \"2.0\", \"method\": \"log_set_flag\", \"id\": 1, \"params\": {\"flag\": \"rpc\"}},\n" +
		"  {\"jsonrpc\": \"2.0\", \"method\": \"log_clear_flag\", \"params\": {\"flag\": \"rpc\"}},\n" +
		"  42,\n" +
		"  {\"jsonrpc\": \"2.0\", \"method\": \"nope\", \"id\": \"x\"}\n]")
	want := `[{"jsonrpc":"2.0","id":1,"result":true},` +
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}},` +
		`{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found"}}]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// A batch of notifications only gets no reply at all.
	c.send(`[{"jsonrpc":"2.0","method":"log_set_flag","params":{"flag":"rpc"}}]`)
	if got := c.call(`{"method":"spdk_get_version","id":1}`); got != versionReply {
		t.Fatalf("after notification batch: %s", got)
	}
	if got := c.call(`[]`); got != `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}` {
		t.Fatalf("empty batch: %s", got)
	}
}

// TestBatchCompletionOrder: a detached element that finishes last is
// appended last.
func TestBatchCompletionOrder(t *testing.T) {
	s := NewServer(Options{})
	c := dialRaw(t, startServer(t, s))
	got := c.call(`[{"method":"framework_wait_init","id":1},{"method":"framework_start_init","id":2}]`)
	want := `[{"jsonrpc":"2.0","id":2,"result":true},{"jsonrpc":"2.0","id":1,"result":true}]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestParseErrorsCloseConnection(t *testing.T) {
	path := startServer(t, NewServer(Options{}))
	parseErr := `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`
	for name, req := range map[string]string{
		"garbage":         "\x00\x01hello",
		"bad token":       `{"method":"spdk_get_version","id":1,}`,
		"truncated+junk":  `{"jsonrpc":"2.0","method":]`,
		"comment":         `/* c */ {"method":"spdk_get_version"}`,
		"too many values": "[" + strings.Repeat("1,", MaxValues) + "1]",
		"deep nesting":    strings.Repeat("[", 20000),
	} {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, path)
			if name == "deep nesting" {
				c.send(req)
			} else {
				c.send(req)
			}
			if got := c.line(); got != parseErr {
				t.Fatalf("got %s", got)
			}
			c.expectClosed()
		})
	}
	// The server is still up.
	if got := dialRaw(t, path).call(`{"method":"spdk_get_version","id":1}`); got != versionReply {
		t.Fatal(got)
	}
}

func TestOversizedRequest(t *testing.T) {
	path := startServer(t, NewServer(Options{}))
	c := dialRaw(t, path)
	// 1 MiB: a string param far beyond the 256 KiB limit. The server
	// stops reading, so write from a goroutine and ignore EPIPE.
	big := `{"method":"spdk_get_version","id":1,"params":{"x":"` + strings.Repeat("a", 1<<20) + `"}}`
	go c.nc.Write([]byte(big))
	if got := c.line(); got != `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}` {
		t.Fatalf("got %s", got)
	}
	c.expectClosed()
	// A request just under the limit is fine, whitespace included.
	c2 := dialRaw(t, path)
	pad := strings.Repeat(" ", MaxRequestBytes-200)
	if got := c2.call(`{"method":"spdk_get_version",` + pad + `"id":1}`); got != versionReply {
		t.Fatalf("near-limit request: %s", got)
	}
	// Endless whitespace counts too.
	c3 := dialRaw(t, path)
	go c3.nc.Write([]byte(strings.Repeat(" ", MaxRequestBytes+10)))
	if got := c3.line(); !strings.Contains(got, "-32700") {
		t.Fatalf("whitespace flood: %s", got)
	}
}

func TestTruncatedThenEOF(t *testing.T) {
	c := dialRaw(t, startServer(t, NewServer(Options{})))
	c.send(`{"method":"spdk_get_version","id":1}{"jsonrpc":"2.0","method":`)
	c.nc.(*net.UnixConn).CloseWrite()
	// The complete request is answered; the truncated one is dropped
	// when the peer has closed (SPDK does the same).
	if got := c.line(); got != versionReply {
		t.Fatal(got)
	}
	c.expectClosed()
}

func TestInvalidRequests(t *testing.T) {
	s := NewServer(Options{})
	c := dialRaw(t, startServer(t, s))
	inv := func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32600,"message":"Invalid request"}}`
	}
	for _, tc := range []struct{ req, want string }{
		// A top-level scalar ends at the byte after it (encoding/json).
		{`42 `, inv("null")},
		{`"str" `, inv("null")},
		{`true `, inv("null")},
		{`null `, inv("null")},
		{`{"jsonrpc":"2.0","id":1}`, inv("null")},                                         // no method
		{`{"jsonrpc":"2.0","method":7,"id":1}`, inv("null")},                              // method not a string
		{`{"jsonrpc":"1.0","method":"spdk_get_version","id":1}`, inv("null")},             // wrong version
		{`{"jsonrpc":2.0,"method":"spdk_get_version","id":1}`, inv("null")},               // version not a string
		{`{"method":"spdk_get_version","id":{"a":1}}`, inv("null")},                       // id object
		{`{"method":"spdk_get_version","id":[1]}`, inv("null")},                           // id array
		{`{"method":"spdk_get_version","id":true}`, inv("null")},                          // id bool
		{`{"method":"spdk_get_version","id":1,"extra":1}`, inv("null")},                   // unknown key
		{`{"method":"spdk_get_version","method":"spdk_get_version","id":1}`, inv("null")}, // duplicate key
		{`{"method":"spdk_get_version","id":1,"params":"x"}`, inv("1")},                   // params string: id known by then
		{`{"method":"spdk_get_version","id":"a","params":5}`, inv(`"a"`)},
	} {
		if got := c.call(tc.req); got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.req, got, tc.want)
		}
	}
	// The connection survived all of that.
	if got := c.call(`{"method":"spdk_get_version","id":1}`); got != versionReply {
		t.Fatal(got)
	}
}

func TestIDEcho(t *testing.T) {
	c := dialRaw(t, startServer(t, NewServer(Options{})))
	for _, id := range []string{`"abc"`, `"a\"b\u00e9"`, `0`, `-7`, `1.5e3`, `18446744073709551616`, `""`} {
		got := c.call(`{"method":"log_get_level","id":` + id + `}`)
		want := `{"jsonrpc":"2.0","id":` + id + `,"result":"NOTICE"}`
		if got != want {
			t.Errorf("id %s: got %s", id, got)
		}
	}
	// id null and no id: success is silent, errors still come back with id null.
	c.send(`{"method":"log_get_level","id":null}`)
	c.send(`{"method":"log_get_level"}`)
	if got := c.call(`{"method":"nope","id":null}`); got != `{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found"}}` {
		t.Fatal(got)
	}
	if got := c.call(`{"method":"nope"}`); got != `{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found"}}` {
		t.Fatal(got)
	}
	c.expectSilence(50 * time.Millisecond)
}

func TestMethodErrors(t *testing.T) {
	s := NewServer(Options{})
	s.Register("test_errno", Runtime, func(context.Context, json.RawMessage) (any, error) {
		return nil, fmt.Errorf("bdev %q: %w", "x", syscall.ENODEV)
	})
	s.Register("test_plain", Runtime, func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("something broke")
	})
	s.Register("test_rpcerr", Runtime, func(context.Context, json.RawMessage) (any, error) {
		return nil, fmt.Errorf("wrapped: %w", Errorf(-114, "Operation already in progress"))
	})
	s.Register("test_panic", Runtime, func(context.Context, json.RawMessage) (any, error) {
		var m map[string]int
		m["x"] = 1
		return nil, nil
	})
	s.Register("test_unmarshalable", Runtime, func(context.Context, json.RawMessage) (any, error) {
		return make(chan int), nil
	})
	s.Register("test_html", Runtime, func(context.Context, json.RawMessage) (any, error) {
		return "<a&b>", nil
	})
	path := startServer(t, s)
	c := dialRaw(t, path)
	e := func(id int, code int, msg string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"error":{"code":%d,"message":%q}}`, id, code, msg)
	}
	stateStartup := "Method may only be called after framework is initialized using framework_start_init RPC."
	stateRuntime := "Method may only be called before framework is initialized. Use --wait-for-rpc command line parameter and then issue this RPC before the framework_start_init RPC."
	steps := []struct{ req, want string }{
		{`{"method":"test_errno","id":1}`, e(1, -1, stateStartup)},
		{`{"method":"framework_get_subsystems","id":2}`, e(2, -1, stateStartup)},
		{`{"method":"no_such_method","id":3}`, e(3, -32601, "Method not found")},
		{`{"method":"framework_start_init","id":4}`, `{"jsonrpc":"2.0","id":4,"result":true}`},
		{`{"method":"framework_start_init","id":5}`, e(5, -1, stateRuntime)},
		{`{"method":"test_errno","id":6}`, e(6, -19, "No such device")},
		{`{"method":"test_plain","id":7}`, e(7, -32603, "something broke")},
		{`{"method":"test_rpcerr","id":8}`, e(8, -114, "Operation already in progress")},
		{`{"method":"test_panic","id":9}`, e(9, -32603, "Internal error")},
		{`{"method":"test_unmarshalable","id":10}`, e(10, -32603, "Internal error")},
		{`{"method":"test_html","id":11}`, `{"jsonrpc":"2.0","id":11,"result":"<a&b>"}`},
		// params to no-arg methods, SPDK's texts
		{`{"method":"spdk_get_version","id":12,"params":{}}`, e(12, -32602, "spdk_get_version method requires no parameters")},
		{`{"method":"spdk_get_version","id":13,"params":[]}`, e(13, -32602, "spdk_get_version method requires no parameters")},
		{`{"method":"framework_get_subsystems","id":14,"params":{}}`, e(14, -32602, "'framework_get_subsystems' requires no arguments")},
		{`{"method":"log_get_flags","id":15,"params":{"a":1}}`, e(15, -32602, "log_get_flags requires no parameters")},
		{`{"method":"spdk_get_version","id":1,"params":null}`, versionReply},
		// strict params: wrong type, unknown key, duplicate key, missing key
		{`{"method":"log_set_flag","id":16,"params":{"flag":1}}`, e(16, -32603, "spdk_json_decode_object failed")},
		{`{"method":"log_set_flag","id":17,"params":{"flag":"rpc","x":1}}`, e(17, -32603, "spdk_json_decode_object failed")},
		{`{"method":"log_set_flag","id":18,"params":{"flag":"rpc","flag":"rpc"}}`, e(18, -32603, "spdk_json_decode_object failed")},
		{`{"method":"log_set_flag","id":19}`, e(19, -32603, "spdk_json_decode_object failed")},
		{`{"method":"log_set_flag","id":20,"params":{"flag":"nosuch"}}`, e(20, -32602, "invalid log flag")},
		{`{"method":"rpc_get_methods","id":21,"params":{"current":"yes"}}`, e(21, -32602, "Invalid parameters")},
		{`{"method":"rpc_get_methods","id":22,"params":{"bogus":true}}`, e(22, -32602, "Invalid parameters")},
		{`{"method":"framework_get_config","id":23,"params":{"name":"bdev"}}`, e(23, -32602, "Subsystem 'bdev' not found")},
		{`{"method":"framework_get_config","id":24}`, e(24, -32602, "Invalid arguments")},
		{`{"method":"framework_get_config","id":25,"params":{"name":"x","with_batches":1}}`, e(25, -32602, "Invalid arguments")},
		{`{"method":"spdk_kill_instance","id":26,"params":{"sig_name":"SIGSEGV"}}`, e(26, -32602, "Invalid parameters")},
		{`{"method":"spdk_kill_instance","id":27,"params":{"sig":"SIGTERM"}}`, e(27, -32602, "Invalid parameters")},
		{`{"method":"log_set_level","id":28,"params":{"level":"debug"}}`, e(28, -32603, "spdk_json_decode_object failed")},
		{`{"method":"framework_start_init","id":29,"params":{}}`, e(29, -1, stateRuntime)},
	}
	for _, st := range steps {
		if got := c.call(st.req); got != st.want {
			t.Errorf("%s:\n got  %s\n want %s", st.req, got, st.want)
		}
	}
}

func TestStartInitHook(t *testing.T) {
	s := NewServer(Options{})
	calls := 0
	fail := true
	s.OnStartInit(func(context.Context) error {
		calls++
		if fail {
			return errors.New("no hugepages")
		}
		return nil
	})
	c := dialRaw(t, startServer(t, s))
	if got := c.call(`{"method":"framework_start_init","id":1,"params":{}}`); got != `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"framework_start_init requires no parameters"}}` {
		t.Fatal(got)
	}
	if got := c.call(`{"method":"framework_start_init","id":1}`); got != `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"framework_initialization failed"}}` {
		t.Fatal(got)
	}
	if s.State() != Startup {
		t.Fatal("state changed after failed init")
	}
	fail = false
	if got := c.call(`{"method":"framework_start_init","id":1}`); got != `{"jsonrpc":"2.0","id":1,"result":true}` {
		t.Fatal(got)
	}
	if s.State() != Runtime || calls != 2 {
		t.Fatalf("state %v calls %d", s.State(), calls)
	}
	if err := s.StartInit(context.Background()); err == nil || err.(*Error).Code != CodeInvalidState {
		t.Fatalf("StartInit in Runtime: %v", err)
	}
}

func TestWaitInit(t *testing.T) {
	s := NewServer(Options{})
	path := startServer(t, s)
	a := dialRaw(t, path)
	a.send(`{"method":"framework_wait_init","id":1}`)
	// The waiting call does not block later requests on its connection.
	if got := a.call(`{"method":"spdk_get_version","id":1}`); got != versionReply {
		t.Fatal(got)
	}
	a.expectSilence(50 * time.Millisecond)
	b := dialRaw(t, path)
	if got := b.call(`{"method":"framework_start_init","id":7}`); got != `{"jsonrpc":"2.0","id":7,"result":true}` {
		t.Fatal(got)
	}
	if got := a.line(); got != `{"jsonrpc":"2.0","id":1,"result":true}` {
		t.Fatal(got)
	}
	// In Runtime it answers at once.
	if got := b.call(`{"method":"framework_wait_init","id":2}`); got != `{"jsonrpc":"2.0","id":2,"result":true}` {
		t.Fatal(got)
	}
}

func TestShutdownWithPendingWaitInit(t *testing.T) {
	s := NewServer(Options{})
	path := filepath.Join(sockDir(t), "s")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	c := dialRaw(t, path)
	c.send(`{"method":"framework_wait_init","id":1}`)
	c.expectSilence(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if got := c.line(); got != `{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"context canceled"}}` {
		t.Fatal(got)
	}
	c.expectClosed()
	for _, p := range []string{path, path + ".lock"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after Shutdown: %v", p, err)
		}
	}
	if err := s.Listen(path); err == nil {
		t.Fatal("Listen after Shutdown succeeded")
	}
}

func TestListenLock(t *testing.T) {
	dir := sockDir(t)
	path := filepath.Join(dir, "spdk.sock")
	// A stale socket from a dead instance is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	a := NewServer(Options{})
	if err := a.Listen(path); err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	b := NewServer(Options{})
	if err := b.Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the first server's socket is gone after the failed second Listen: %v", err)
	}
	a.Close()
	if err := b.Listen(path); err != nil {
		t.Fatalf("Listen after the first closed: %v", err)
	}
	b.Close()
	// Not a socket: refuse to delete it.
	os.WriteFile(path, []byte("x"), 0o600)
	if err := NewServer(Options{}).Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if err := NewServer(Options{}).Listen(filepath.Join(dir, strings.Repeat("x", 120))); err == nil {
		t.Fatal("Listen with a too-long path succeeded")
	}
}

// TestConnectionLimit opens 100 connections at once against the default
// cap of 64: each gets an answer or a clean close, and the server stays up.
func TestConnectionLimit(t *testing.T) {
	path := startServer(t, NewServer(Options{}))
	const n = 100
	conns := make([]net.Conn, n)
	results := make([]string, n)
	var wg sync.WaitGroup
	for i := range conns {
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = nc
		defer nc.Close()
	}
	for i, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := nc.Write([]byte(`{"method":"spdk_get_version","id":1}`)); err != nil {
				results[i] = "closed"
				return
			}
			buf := make([]byte, 4096)
			got := ""
			for {
				k, err := nc.Read(buf)
				got += string(buf[:k])
				if strings.HasSuffix(got, "\n") {
					results[i] = strings.TrimSuffix(got, "\n")
					return
				}
				if err != nil {
					if got != "" {
						results[i] = "partial: " + got
					} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
						results[i] = "timeout"
					} else {
						results[i] = "closed"
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	answered, closed := 0, 0
	for i, r := range results {
		switch r {
		case versionReply:
			answered++
		case "closed":
			closed++
		default:
			t.Errorf("conn %d: %s", i, r)
		}
	}
	if answered != MaxConns || closed != n-MaxConns {
		t.Fatalf("answered %d, closed %d; want %d and %d", answered, closed, MaxConns, n-MaxConns)
	}
	for _, nc := range conns {
		nc.Close()
	}
	// Slots free up and the server stays up.
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(2 * time.Second))
		nc.Write([]byte(`{"method":"spdk_get_version","id":1}`))
		buf := make([]byte, 4096)
		k, _ := nc.Read(buf)
		nc.Close()
		if strings.TrimSpace(string(buf[:k])) == versionReply {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server does not answer after the burst")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRPCGetMethods(t *testing.T) {
	s := NewServer(Options{})
	nop := func(context.Context, json.RawMessage) (any, error) { return true, nil }
	s.Register("a_startup", Startup, nop)
	s.Register("b_runtime", Runtime, nop)
	s.RegisterAlias("b_old", "b_runtime")
	ctx := context.Background()
	var got []string
	if err := s.Call(ctx, "rpc_get_methods", map[string]bool{"current": true}, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"a_startup", "spdk_kill_instance", "log_get_level", "log_set_level", "log_get_print_level",
		"log_set_print_level", "log_get_flags", "log_clear_flag", "log_set_flag", "framework_wait_init",
		"framework_start_init", "rpc_get_methods", "spdk_get_version"}
	want = filter(want, "spdk_kill_instance") // Runtime only
	if !equal(got, want) {
		t.Fatalf("current in Startup:\n got  %v\n want %v", got, want)
	}
	if err := s.Call(ctx, "rpc_get_methods", map[string]bool{"include_aliases": true}, &got); err != nil {
		t.Fatal(err)
	}
	if got[0] != "b_old" || got[1] != "b_runtime" || got[2] != "a_startup" || got[len(got)-1] != "spdk_get_version" {
		t.Fatalf("all with aliases: %v", got)
	}
	if err := s.Call(ctx, "rpc_get_methods", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got[0] != "b_runtime" {
		t.Fatalf("aliases listed without include_aliases: %v", got)
	}
	// Calling through an alias works and keeps the target's states.
	if err := s.Call(ctx, "b_old", nil, nil); err == nil || err.(*Error).Code != CodeInvalidState {
		t.Fatalf("alias in Startup: %v", err)
	}
	s.SetState(Runtime)
	if err := s.Call(ctx, "b_old", nil, nil); err != nil {
		t.Fatal(err)
	}
	// Allow-list.
	s.SetAllowlist([]string{"rpc_get_methods", "b_runtime"})
	if err := s.Call(ctx, "rpc_get_methods", nil, &got); err != nil || !equal(got, []string{"b_runtime", "rpc_get_methods"}) {
		t.Fatalf("allow-listed: %v %v", got, err)
	}
	if err := s.Call(ctx, "spdk_get_version", nil, nil); err == nil || err.(*Error).Code != CodeMethodNotFound {
		t.Fatalf("not allowed: %v", err)
	}
}

func filter(in []string, drop string) []string {
	var out []string
	for _, s := range in {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestRegisterPanics(t *testing.T) {
	s := NewServer(Options{})
	nop := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	for name, f := range map[string]func(){
		"duplicate":       func() { s.Register("spdk_get_version", Runtime, nop) },
		"no states":       func() { s.Register("x", 0, nop) },
		"nil handler":     func() { s.Register("x", Runtime, nil) },
		"alias of none":   func() { s.RegisterAlias("y", "none") },
		"alias taken":     func() { s.RegisterAlias("rpc_get_methods", "spdk_get_version") },
		"dup subsystem":   func() { s.RegisterSubsystem("a", nil, nil); s.RegisterSubsystem("a", nil, nil) },
		"empty subsystem": func() { s.RegisterSubsystem("", nil, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestSubsystems(t *testing.T) {
	s := NewServer(Options{})
	s.SetState(Runtime)
	// Registered out of order, as modules may be; deps as in SPDK.
	s.RegisterSubsystem("nvmf", []string{"bdev", "sock", "iobuf"}, func() []ConfigEntry {
		return []ConfigEntry{
			{Method: "nvmf_set_config", Params: map[string]int{"a": 1}},
			{Batch: []ConfigEntry{{Method: "nvmf_create_subsystem", Params: map[string]string{"nqn": "n"}}, {Method: "nvmf_subsystem_add_ns"}}},
			{Method: "nvmf_last"},
		}
	})
	s.RegisterSubsystem("bdev", []string{"accel", "iobuf"}, func() []ConfigEntry { return nil })
	s.RegisterSubsystem("scsi", []string{"bdev"}, nil)
	s.RegisterSubsystem("iobuf", nil, func() []ConfigEntry { return []ConfigEntry{{Method: "iobuf_set_options", Params: struct{}{}}} })
	s.RegisterSubsystem("sock", nil, nil)
	s.RegisterSubsystem("accel", []string{"iobuf"}, nil)
	names, err := s.Subsystems()
	if err != nil {
		t.Fatal(err)
	}
	// Like SPDK's subsystem_sort: pass 1 places iobuf, sock, accel (its
	// dep iobuf was placed earlier in the same pass); pass 2 skips nvmf
	// (bdev not placed yet), places bdev, then scsi; pass 3 nvmf.
	if got := strings.Join(names, ","); got != "iobuf,sock,accel,bdev,scsi,nvmf" {
		t.Fatalf("order %s", got)
	}
	c := dialRaw(t, startServer(t, s))
	if got := c.call(`{"method":"framework_get_subsystems","id":1}`); got != `{"jsonrpc":"2.0","id":1,"result":[`+
		`{"subsystem":"iobuf","depends_on":[]},{"subsystem":"sock","depends_on":[]},{"subsystem":"accel","depends_on":["iobuf"]},`+
		`{"subsystem":"bdev","depends_on":["accel","iobuf"]},{"subsystem":"scsi","depends_on":["bdev"]},`+
		`{"subsystem":"nvmf","depends_on":["bdev","sock","iobuf"]}]}` {
		t.Fatal(got)
	}
	for _, tc := range []struct{ params, want string }{
		{`{"name":"scsi","with_batches":false}`, `null`},
		{`{"name":"bdev","with_batches":false}`, `[]`},
		{`{"name":"iobuf"}`, `[{"method":"iobuf_set_options","params":{}}]`},
		{`{"name":"nvmf","with_batches":false}`, `[{"method":"nvmf_set_config","params":{"a":1}},{"method":"nvmf_create_subsystem","params":{"nqn":"n"}},{"method":"nvmf_subsystem_add_ns"},{"method":"nvmf_last"}]`},
		{`{"name":"nvmf","with_batches":true}`, `[{"method":"nvmf_set_config","params":{"a":1}},[{"method":"nvmf_create_subsystem","params":{"nqn":"n"}},{"method":"nvmf_subsystem_add_ns"}],{"method":"nvmf_last"}]`},
	} {
		want := `{"jsonrpc":"2.0","id":1,"result":` + tc.want + `}`
		if got := c.call(`{"method":"framework_get_config","id":1,"params":` + tc.params + `}`); got != want {
			t.Errorf("%s:\n got  %s\n want %s", tc.params, got, want)
		}
	}

	bad := NewServer(Options{})
	bad.RegisterSubsystem("a", []string{"missing"}, nil)
	if _, err := bad.Subsystems(); err == nil || !strings.Contains(err.Error(), `unknown subsystem "missing"`) {
		t.Fatalf("missing dep: %v", err)
	}
	cyc := NewServer(Options{})
	cyc.RegisterSubsystem("a", []string{"b"}, nil)
	cyc.RegisterSubsystem("b", []string{"a"}, nil)
	if _, err := cyc.Subsystems(); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: %v", err)
	}
	cyc.SetState(Runtime)
	if err := cyc.Call(context.Background(), "framework_get_subsystems", nil, nil); err == nil || err.(*Error).Code != CodeInternalError {
		t.Fatalf("framework_get_subsystems with a cycle: %v", err)
	}
}

func TestLogMethods(t *testing.T) {
	s := NewServer(Options{})
	s.LogFlags().MustRegister("bdev")
	s.LogFlags().MustRegister("Nvmf_tcp")
	s.LogFlags().MustRegister("nvmf")
	ctx := context.Background()
	var flags json.RawMessage
	get := func() string {
		t.Helper()
		if err := s.Call(ctx, "log_get_flags", nil, &flags); err != nil {
			t.Fatal(err)
		}
		return string(flags)
	}
	if got := get(); got != `{"bdev":false,"nvmf":false,"Nvmf_tcp":false,"rpc":false}` {
		t.Fatal(got)
	}
	if err := s.Call(ctx, "log_set_flag", map[string]string{"flag": "NVMF*"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != `{"bdev":false,"nvmf":true,"Nvmf_tcp":true,"rpc":false}` {
		t.Fatal(got)
	}
	if err := s.Call(ctx, "log_set_flag", map[string]string{"flag": "all"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Call(ctx, "log_clear_flag", map[string]string{"flag": "nvmf_tcp"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != `{"bdev":true,"nvmf":true,"Nvmf_tcp":false,"rpc":true}` {
		t.Fatal(got)
	}
	if err := s.Call(ctx, "log_clear_flag", map[string]string{"flag": "xyz"}, nil); err == nil || err.(*Error).Message != "invalid log flag" {
		t.Fatal(err)
	}
	var lvl string
	for _, name := range []string{"ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"} {
		if err := s.Call(ctx, "log_set_level", map[string]string{"level": name}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Call(ctx, "log_get_level", nil, &lvl); err != nil || lvl != name {
			t.Fatalf("level %s: got %s %v", name, lvl, err)
		}
		if err := s.Call(ctx, "log_set_print_level", map[string]string{"level": name}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Call(ctx, "log_get_print_level", nil, &lvl); err != nil || lvl != name {
			t.Fatalf("print level %s: got %s %v", name, lvl, err)
		}
	}
	if s.LogLevel().Level() != -4 || s.PrintLevel().Level() != -4 {
		t.Fatal("levels not applied to the LevelVars")
	}
}

func TestKillInstance(t *testing.T) {
	s := NewServer(Options{})
	var got []syscall.Signal
	s.OnKill(func(sig syscall.Signal) error { got = append(got, sig); return nil })
	ctx := context.Background()
	if err := s.Call(ctx, "spdk_kill_instance", map[string]string{"sig_name": "SIGTERM"}, nil); err == nil {
		t.Fatal("kill in Startup accepted")
	}
	s.SetState(Runtime)
	for _, name := range []string{"SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1"} {
		var ok bool
		if err := s.Call(ctx, "spdk_kill_instance", map[string]string{"sig_name": name}, &ok); err != nil || !ok {
			t.Fatalf("%s: %v", name, err)
		}
	}
	want := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGKILL, syscall.SIGUSR1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hook got %v", got)
	}
	s.OnKill(func(syscall.Signal) error { return syscall.EPERM })
	if err := s.Call(ctx, "spdk_kill_instance", map[string]string{"sig_name": "SIGINT"}, nil); err == nil || err.(*Error).Code != -1 {
		t.Fatalf("hook error: %v", err)
	}
}

func TestCallInProcess(t *testing.T) {
	s := NewServer(Options{Version: Version{Version: "SPDK v1.2.3 test", Major: 1, Minor: 2, Patch: 3, Commit: "abc"}})
	var v json.RawMessage
	if err := s.Call(context.Background(), "spdk_get_version", nil, &v); err != nil {
		t.Fatal(err)
	}
	if string(v) != `{"version":"SPDK v1.2.3 test","fields":{"major":1,"minor":2,"patch":3,"suffix":"","commit":"abc"}}` {
		t.Fatal(string(v))
	}
	if err := s.Call(context.Background(), "nope", nil, nil); err == nil || err.(*Error).Code != CodeMethodNotFound {
		t.Fatal(err)
	}
	if err := s.Call(context.Background(), "framework_start_init", nil, nil); err != nil || s.State() != Runtime {
		t.Fatal(err)
	}
}
