package main

import (
	"context"
	"fmt"
	"log/slog"

	"hyperpath/app/daemon"
	"hyperpath/bdev"
	"hyperpath/reactor"
	"hyperpath/rpc"
)

// env is Hyperpath as bdevperf uses it: reactors on -m, the bdev registry
// with every module, and, with -r or -z, the JSON-RPC server. It wraps
// app/daemon, so configs given with -c may use every module the daemon
// wires.
type env struct{ d *daemon.Daemon }

// startEnv brings Hyperpath up and applies -c through the RPC methods,
// then creates the --malloc/--null bdevs the same way.
func startEnv(ctx context.Context, o *options, logger *slog.Logger) (*env, error) {
	d, err := daemon.New(daemon.Options{
		CoreMask:   o.coreMask,
		RPCSocket:  o.rpcSocket,
		NoRPC:      o.rpcSocket == "",
		ConfigFile: o.config,
		Poll:       o.poll,
		Logger:     logger,
	})
	if err != nil {
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		return nil, err
	}
	e := &env{d: d}
	if err := e.createBdevs(ctx, o); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// createBdevs creates --malloc Malloc0 and --null Null0.
func (e *env) createBdevs(ctx context.Context, o *options) error {
	for _, c := range []struct {
		method, name string
		mb           int
	}{{"bdev_malloc_create", "Malloc0", o.mallocMB}, {"bdev_null_create", "Null0", o.nullMB}} {
		if c.mb == 0 {
			continue
		}
		params := map[string]any{"name": c.name, "block_size": o.blockSize,
			"num_blocks": uint64(c.mb) << 20 / uint64(o.blockSize)}
		if err := e.d.RPC().Call(ctx, c.method, params, nil); err != nil {
			return fmt.Errorf("%s %s (%d MiB): %w", c.method, c.name, c.mb, err)
		}
	}
	return nil
}

func (e *env) Group() *reactor.Group    { return e.d.Group() }
func (e *env) Registry() *bdev.Registry { return e.d.Registry() }
func (e *env) RPC() *rpc.Server         { return e.d.RPC() }

// Wait blocks until SIGINT/SIGTERM or spdk_kill_instance, then stops.
func (e *env) Wait() error { return e.d.Wait() }

// Stop stops the RPC server, removes the bdevs and stops the reactors.
func (e *env) Stop() error { return e.d.Stop() }
