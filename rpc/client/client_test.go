package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"hyperpath/rpc"
	"hyperpath/rpc/client"
	"hyperpath/rpc/rpctest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func dial(t *testing.T, path string) *client.Client {
	t.Helper()
	c, err := client.Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCall(t *testing.T) {
	s := rpc.NewServer(rpc.Options{Logger: quiet()})
	release := make(chan struct{})
	s.Register("slow", rpc.Startup, func(ctx context.Context, p json.RawMessage) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "slow done", nil
	}, rpc.Detached())
	s.Register("echo", rpc.Startup, func(_ context.Context, p json.RawMessage) (any, error) {
		return p, nil
	})
	c := dial(t, rpctest.Serve(t, s))
	ctx := context.Background()

	var v struct {
		Version string `json:"version"`
	}
	if err := c.Call(ctx, "spdk_get_version", nil, &v); err != nil || !strings.Contains(v.Version, "hyperpath") {
		t.Fatalf("%v %+v", err, v)
	}
	var raw json.RawMessage
	if err := c.Call(ctx, "echo", map[string]int{"a": 1}, &raw); err != nil || string(raw) != `{"a":1}` {
		t.Fatalf("%v %s", err, raw)
	}
	if err := c.Call(ctx, "echo", json.RawMessage(`[1, 2]`), &raw); err != nil || string(raw) != `[1,2]` {
		t.Fatalf("%v %s", err, raw)
	}
	// Error replies are *rpc.Error.
	err := c.Call(ctx, "framework_get_subsystems", nil, nil)
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeInvalidState {
		t.Fatalf("state error: %v", err)
	}
	if err := c.Call(ctx, "nope", nil, nil); !errors.As(err, &re) || re.Code != rpc.CodeMethodNotFound {
		t.Fatalf("unknown: %v", err)
	}

	// Ids match replies that come out of order: slow replies after fast.
	slowErr := make(chan error, 1)
	var slowRes string
	go func() { slowErr <- c.Call(ctx, "slow", nil, &slowRes) }()
	for i := 0; i < 10; i++ {
		var n json.RawMessage
		if err := c.Call(ctx, "echo", []int{i}, &n); err != nil || string(n) != fmt.Sprintf("[%d]", i) {
			t.Fatalf("echo %d: %v %s", i, err, n)
		}
	}
	close(release)
	if err := <-slowErr; err != nil || slowRes != "slow done" {
		t.Fatalf("slow: %v %q", err, slowRes)
	}

	// Concurrent callers.
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				var n []int
				if err := c.Call(ctx, "echo", []int{g, i}, &n); err != nil || n[0] != g || n[1] != i {
					t.Errorf("concurrent %d/%d: %v %v", g, i, err, n)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestTimeoutAndClose(t *testing.T) {
	s := rpc.NewServer(rpc.Options{Logger: quiet()})
	s.Register("hang", rpc.Startup, func(ctx context.Context, p json.RawMessage) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, rpc.Detached())
	c := dial(t, rpctest.Serve(t, s))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Call(ctx, "hang", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline, got %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("timeout took too long")
	}
	// The connection still works after a timed-out call.
	if err := c.Call(context.Background(), "spdk_get_version", nil, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Call(context.Background(), "spdk_get_version", nil, nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestServerSideQuirks uses a scripted peer: replies split across writes,
// a reply with id null, and a connection closed mid-call.
func TestServerSideQuirks(t *testing.T) {
	a, b := net.Pipe()
	c := client.New(a)
	defer c.Close()
	go func() {
		buf := make([]byte, 4096)
		b.Read(buf) // request id 1
		b.Write([]byte(`{"jsonrpc":"2.0",`))
		b.Write([]byte(` "id": 1, "result": {"x": 1}}`))
		b.Read(buf) // request id 2
		b.Write([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}` + "\n"))
		b.Read(buf) // request id 3
		b.Write([]byte(`{"jsonrpc":"2.0","id":3}`))
		b.Read(buf) // request id 4
		b.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var r struct{ X int }
	if err := c.Call(ctx, "a", nil, &r); err != nil || r.X != 1 {
		t.Fatalf("split reply: %v %+v", err, r)
	}
	var re *rpc.Error
	if err := c.Call(ctx, "b", nil, nil); !errors.As(err, &re) || re.Code != -32600 {
		t.Fatalf("null-id error: %v", err)
	}
	if err := c.Call(ctx, "c", nil, nil); err == nil || !strings.Contains(err.Error(), "neither result nor error") {
		t.Fatalf("empty reply: %v", err)
	}
	if err := c.Call(ctx, "d", nil, nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("closed mid-call: %v", err)
	}
}

func TestRequestBytes(t *testing.T) {
	a, b := net.Pipe()
	c := client.New(a)
	defer c.Close()
	got := make(chan string, 2)
	go func() {
		buf := make([]byte, 4096)
		for i := 1; i <= 2; i++ {
			n, _ := b.Read(buf)
			got <- string(buf[:n])
			fmt.Fprintf(b, `{"jsonrpc":"2.0","id":%d,"result":true}`+"\n", i)
		}
	}()
	ctx := context.Background()
	c.Call(ctx, "spdk_get_version", nil, nil)
	c.Call(ctx, "log_set_flag", map[string]string{"flag": "<all>"}, nil)
	if s := <-got; s != `{"jsonrpc":"2.0","method":"spdk_get_version","id":1}`+"\n" {
		t.Fatalf("request 1: %q", s)
	}
	if s := <-got; s != `{"jsonrpc":"2.0","method":"log_set_flag","id":2,"params":{"flag":"\u003call\u003e"}}`+"\n" {
		t.Fatalf("request 2: %q", s)
	}
}
