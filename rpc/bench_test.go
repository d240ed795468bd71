package rpc_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"hyperpath/rpc"
	"hyperpath/rpc/client"
	"hyperpath/rpc/rpctest"
)

// BenchmarkCall measures calls per second over one Unix-socket connection
// with the Go client: "serial" waits for each reply (rpc.py's pattern),
// "pipelined" keeps 16 calls in flight on the same connection.
//
// Reference, 2 vCPU AMD EPYC shared with other builds (load average 3-7),
// Go 1.26.8, -benchtime 1s: serial 17k-25k calls/s (40-60 us per call),
// pipelined 19k-44k calls/s; 53 allocs and 2.5 KiB per call, client and
// server together. Expect wide swings on a loaded machine.
func BenchmarkCall(b *testing.B) {
	s := rpc.NewServer(rpc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.Register("bench_echo", rpc.Startup|rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name" rpc:"required"`
			N    uint64 `json:"n"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		return req, nil
	})
	path := rpctest.Serve(b, s)
	c, err := client.Dial(path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	params := map[string]any{"name": "Malloc0", "n": 42}

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		var out struct{ Name string }
		for b.Loop() {
			if err := c.Call(ctx, "bench_echo", params, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	b.Run("pipelined", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16) // 16 × GOMAXPROCS callers share the one connection
		b.RunParallel(func(pb *testing.PB) {
			var out struct{ Name string }
			for pb.Next() {
				if err := c.Call(ctx, "bench_echo", params, &out); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
}
