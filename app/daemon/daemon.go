// Package daemon wires Hyperpath together: reactors on the core mask, the
// bdev registry with every module, the vhost-user and NVMe-oF targets, and
// the JSON-RPC server with all methods; it applies JSON or TOML configs by
// calling those RPC methods in process. app/hyperpath and app/bdevperf are
// thin commands around it.
//
// Lifecycle: New (validates options) -> Start (reactors, RPC socket,
// config) -> Wait (until SIGINT/SIGTERM or spdk_kill_instance) -> Stop
// (stop accepting RPCs, quiesce, remove bdevs, stop reactors, remove
// sockets and the pid file). Everything here is control plane; the data
// path lives on the reactors.
package daemon

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/malloc"
	"hyperpath/bdev/null"
	"hyperpath/bdev/remote"
	"hyperpath/internal/hugemem"
	"hyperpath/internal/logflag"
	"hyperpath/nvmf/target"
	"hyperpath/reactor"
	"hyperpath/rpc"
	"hyperpath/rpc/client"
	"hyperpath/vhost"
)

// DefaultConfig is the embedded configuration used when the daemon starts
// with no -c: it serves at once.
//
//go:embed default.json
var DefaultConfig []byte

// Options are the daemon's command-line settings (SPDK spdk_tgt names).
type Options struct {
	// CoreMask is -m: "0x3" or "[0,1]"; default "0x1".
	CoreMask string
	// RPCSocket is -r; default /var/tmp/spdk.sock. Empty with NoRPC
	// disables the server socket.
	RPCSocket string
	NoRPC     bool
	// ConfigFile is -c/--json (SPDK JSON) or a .toml file. ConfigData, when
	// set, is used instead of reading a file (ConfigFormat "json"/"toml").
	ConfigFile   string
	ConfigData   []byte
	ConfigFormat string
	// MemSize is -s: the memory budget in bytes for hugepage regions (0:
	// unlimited).
	MemSize int64
	// WaitForRPC keeps the RPC state at Startup until framework_start_init.
	WaitForRPC bool
	// VhostSockDir is -S, the directory for vhost-user sockets (default
	// the current directory).
	VhostSockDir string
	// PidFile is -f.
	PidFile string
	// LogFlags are -L flags to enable.
	LogFlags []string
	// Poll keeps reactors spinning (--poll); default adaptive.
	Poll bool
	// SpinTime for adaptive reactors (0: reactor default).
	SpinTime time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Daemon is a running Hyperpath instance.
type Daemon struct {
	opts   Options
	log    *slog.Logger
	flags  *logflag.Set
	group  *reactor.Group
	reg    *bdev.Registry
	rpc    *rpc.Server
	serve  chan error
	killed chan syscall.Signal
	sigs   chan os.Signal
	vhost  *vhost.Target
	nvmf   *target.Target
	remote *remote.Module

	stopOnce sync.Once
	stopErr  error
}

// ParseMemSize parses -s: plain numbers are MiB; k/m/g suffixes (any
// case, optional trailing b) are bytes multiples, as SPDK does.
func ParseMemSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "b")
	mult := int64(1 << 20)
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("memory size %q: want a positive number of MiB or a size like 512m or 2g", s)
	}
	return n * mult, nil
}

// New validates opts.
func New(o Options) (*Daemon, error) {
	if o.CoreMask == "" {
		o.CoreMask = "0x1"
	}
	if o.RPCSocket == "" && !o.NoRPC {
		o.RPCSocket = client.DefaultSocket
	}
	if o.VhostSockDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		o.VhostSockDir = wd
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if _, err := reactor.ParseCoreMask(o.CoreMask); err != nil {
		return nil, fmt.Errorf("-m: %w", err)
	}
	if o.ConfigFile != "" && o.ConfigData == nil {
		data, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		o.ConfigData = data
		if o.ConfigFormat == "" {
			o.ConfigFormat = "json"
			if strings.EqualFold(filepath.Ext(o.ConfigFile), ".toml") {
				o.ConfigFormat = "toml"
			}
		}
	}
	return &Daemon{opts: o, log: o.Logger, flags: logflag.NewSet(), killed: make(chan syscall.Signal, 1)}, nil
}

// Group returns the reactors.
func (d *Daemon) Group() *reactor.Group { return d.group }

// Registry returns the bdev registry.
func (d *Daemon) Registry() *bdev.Registry { return d.reg }

// RPC returns the RPC server.
func (d *Daemon) RPC() *rpc.Server { return d.rpc }

// Options returns the effective options.
func (d *Daemon) Options() Options { return d.opts }

// Start brings the daemon up: reactors, modules, the RPC socket, then the
// config (startup-state methods, framework init, runtime methods).
func (d *Daemon) Start(ctx context.Context) error {
	// Catch SIGINT/SIGTERM before anything is visible (the RPC socket), so
	// a supervisor that signals as soon as the socket appears gets a clean
	// shutdown.
	d.sigs = make(chan os.Signal, 1)
	signal.Notify(d.sigs, syscall.SIGINT, syscall.SIGTERM)
	cores, _ := reactor.ParseCoreMask(d.opts.CoreMask)
	mode := reactor.ModeAdaptive
	if d.opts.Poll {
		mode = reactor.ModePoll
	}
	g, err := reactor.NewGroup(reactor.GroupOptions{Cores: cores,
		Reactor: reactor.Options{Mode: mode, SpinTime: d.opts.SpinTime}})
	if err != nil {
		return fmt.Errorf("-m %s: %w", d.opts.CoreMask, err)
	}
	d.group = g
	g.Start()
	if d.opts.MemSize > 0 {
		hugemem.SetLimit(d.opts.MemSize)
	}

	d.reg = bdev.NewRegistry(bdev.Options{Reactors: g.Reactors()})
	d.rpc = rpc.NewServer(rpc.Options{Logger: d.log, LogFlags: d.flags})
	for _, f := range d.opts.LogFlags {
		if err := d.flags.Enable(f); err != nil {
			d.Stop()
			return fmt.Errorf("-L %s: %w", f, err)
		}
	}
	d.registerFramework()
	d.registerModules()
	d.rpc.OnKill(func(sig syscall.Signal) error {
		select {
		case d.killed <- sig:
		default:
		}
		return nil
	})

	if d.opts.PidFile != "" {
		if err := os.WriteFile(d.opts.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			d.Stop()
			return fmt.Errorf("-f %s: %w", d.opts.PidFile, err)
		}
	}
	// Without --wait-for-rpc the config is applied in process before the
	// socket appears, so no client sees a half-configured daemon.
	if !d.opts.WaitForRPC || d.opts.ConfigData == nil {
		if err := d.applyConfig(ctx); err != nil {
			d.Stop()
			return err
		}
	}
	if !d.opts.NoRPC {
		if err := d.rpc.Listen(d.opts.RPCSocket); err != nil {
			d.Stop()
			return fmt.Errorf("RPC socket %s: %w", d.opts.RPCSocket, err)
		}
		d.serve = make(chan error, 1)
		go func() { d.serve <- d.rpc.Serve() }()
	}
	if d.opts.WaitForRPC && d.opts.ConfigData != nil {
		if err := d.applyConfig(ctx); err != nil {
			d.Stop()
			return err
		}
	}
	return nil
}

// applyConfig loads the config the way SPDK's app does with -c: methods
// allowed at startup, framework_start_init, then the rest. With
// --wait-for-rpc the framework waits for framework_start_init first and
// the runtime part is applied after it.
func (d *Daemon) applyConfig(ctx context.Context) error {
	doc := d.opts.ConfigData
	if d.opts.ConfigFormat == "toml" {
		var err error
		if doc, err = TOMLToJSON(doc); err != nil {
			return fmt.Errorf("config %s: %w", d.opts.ConfigFile, err)
		}
	}
	if d.opts.ConfigFormat != "toml" && doc != nil {
		doc = StripJSONComments(doc)
	}
	if doc == nil {
		if d.opts.WaitForRPC {
			return nil
		}
		return d.rpc.StartInit(ctx)
	}
	if d.opts.WaitForRPC {
		go func() {
			for d.rpc.State() != rpc.Runtime {
				time.Sleep(10 * time.Millisecond)
				if d.stopped() {
					return
				}
			}
			if err := client.LoadConfig(context.Background(), d.rpc, doc, false); err != nil && !errors.Is(err, client.ErrSkipped) {
				d.log.Error("config", "err", err)
			}
		}()
		return nil
	}
	if err := client.LoadConfig(ctx, d.rpc, doc, false); err != nil {
		return fmt.Errorf("config %s: %w", d.configName(), err)
	}
	if d.rpc.State() != rpc.Runtime {
		return d.rpc.StartInit(ctx)
	}
	return nil
}

func (d *Daemon) configName() string {
	if d.opts.ConfigFile != "" {
		return d.opts.ConfigFile
	}
	return "(embedded)"
}

func (d *Daemon) stopped() bool {
	select {
	case <-d.killed:
		return true
	default:
		return false
	}
}

// Wait blocks until SIGINT or SIGTERM arrives, spdk_kill_instance is
// called, or the RPC server fails; then it stops the daemon.
func (d *Daemon) Wait() error {
	defer signal.Stop(d.sigs)
	var serveErr error
	select {
	case s := <-d.sigs:
		d.log.Info("shutting down", "signal", s.String())
	case s := <-d.killed:
		d.log.Info("shutting down", "rpc", "spdk_kill_instance", "signal", s.String())
	case serveErr = <-d.serve:
	}
	if err := d.Stop(); err != nil {
		return err
	}
	return serveErr
}

// Stop shuts the daemon down; it is idempotent.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		var errs []error
		if d.rpc != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := d.rpc.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, err)
			}
			cancel()
		}
		d.stopServices()
		if d.reg != nil {
			// Newest first, and again while that frees claimed bases:
			// stacked bdevs go before the bdevs they claim.
			for progress := true; progress; {
				progress = false
				list := d.reg.List()
				for i := len(list) - 1; i >= 0; i-- {
					if d.unregisterStacked(list[i]) {
						progress = true
					}
				}
			}
		}
		if d.group != nil {
			if err := d.group.Stop(); err != nil {
				errs = append(errs, err)
			}
			d.group.Close()
		}
		if d.opts.PidFile != "" {
			os.Remove(d.opts.PidFile)
		}
		d.stopErr = errors.Join(errs...)
	})
	return d.stopErr
}

// unregisterStacked removes b unless it is claimed, waiting at most a few
// seconds for its descriptors to close; it reports whether b went.
func (d *Daemon) unregisterStacked(b *bdev.Bdev) bool {
	done := make(chan struct{})
	err := d.reg.Unregister(b.Name(), func(error) { close(done) })
	if err != nil {
		return false // claimed: try again once its owner is gone
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		d.log.Warn("bdev still open at shutdown", "bdev", b.Name())
	}
	return true
}

// registerModules adds every bdev module and target with its RPCs and
// save_config sections, in SPDK's subsystem order.
func (d *Daemon) registerModules() {
	d.reg.RegisterModule(malloc.Module{})
	d.reg.RegisterModule(null.Module{})
	bdevConfig := bdev.RegisterRPC(d.rpc, d.reg)
	malloc.RegisterRPC(d.rpc, d.reg)
	null.RegisterRPC(d.rpc, d.reg)
	d.registerExtraModules()
	d.rpc.RegisterSubsystem("bdev", nil, bdevConfig)
	d.registerTargets()
}
