// Command hyperpath is the Hyperpath storage daemon: reactors pinned to the
// cores of -m serve bdevs to vhost-user-blk guests and NVMe-oF hosts, all
// configured over an SPDK-compatible JSON-RPC socket (-r) that SPDK's
// scripts/rpc.py and our hpctl drive.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"hyperpath/app/daemon"
	"hyperpath/rpc"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

const usage = `Usage: hyperpath [options]

Hyperpath storage daemon. With no config it starts on an embedded default:
a 64 MiB RAM bdev "Malloc0" exported as the vhost-user-blk socket <-S dir>/vhost.0
and over NVMe/TCP on 127.0.0.1:4420 (nqn.2016-06.io.hyperpath:cnode1), with
JSON-RPC on /var/tmp/spdk.sock.

Options:
  -m, --cpumask MASK      reactor cores: hex mask (0x3) or list ([0,1], [0-3]);
                          default 0x1. Each core must be usable by this process.
  -r, --rpc-socket PATH   JSON-RPC Unix socket (default /var/tmp/spdk.sock);
                          a PATH.lock file keeps two daemons off one socket.
  -c, --config, --json F  SPDK JSON config (save_config output) applied at start:
                          startup methods, framework init, then the rest.
      --config-toml F     the same calls written as TOML ([[method]] tables);
                          a -c file ending in .toml is read as TOML too.
      --no-default        start with no bdevs when no config is given.
  -s, --mem-size SIZE     memory budget for hugepage regions: MiB, or 512m, 2g.
      --wait-for-rpc      stay in the startup state until framework_start_init.
  -S DIR                  directory for vhost-user sockets (default: cwd).
  -f FILE                 write the daemon's pid to FILE.
  -L FLAG                 enable a debug log flag (repeatable; "all" for every flag).
      --poll              keep reactors spinning at 100% (lowest latency); the
                          default adaptive mode sleeps idle reactors.
      --log-json          log as JSON lines instead of text.
  -h, --help              this help.

Stop it with SIGINT/SIGTERM or the spdk_kill_instance RPC: it stops accepting
RPCs, quiesces IO, stops the reactors, removes its sockets and exits 0.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("hyperpath", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	var o daemon.Options
	var memSize, tomlFile string
	var logFlags multiFlag
	var noDefault, logJSON bool
	for _, n := range []string{"m", "cpumask"} {
		fs.StringVar(&o.CoreMask, n, "0x1", "")
	}
	for _, n := range []string{"r", "rpc-socket"} {
		fs.StringVar(&o.RPCSocket, n, "/var/tmp/spdk.sock", "")
	}
	for _, n := range []string{"c", "config", "json"} {
		fs.StringVar(&o.ConfigFile, n, "", "")
	}
	fs.StringVar(&tomlFile, "config-toml", "", "")
	for _, n := range []string{"s", "mem-size"} {
		fs.StringVar(&memSize, n, "", "")
	}
	fs.BoolVar(&o.WaitForRPC, "wait-for-rpc", false, "")
	fs.StringVar(&o.VhostSockDir, "S", "", "")
	fs.StringVar(&o.PidFile, "f", "", "")
	fs.Var(&logFlags, "L", "")
	fs.BoolVar(&o.Poll, "poll", false, "")
	fs.BoolVar(&noDefault, "no-default", false, "")
	fs.BoolVar(&logJSON, "log-json", false, "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hyperpath: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	o.LogFlags = logFlags

	var level slog.LevelVar
	hopts := &slog.HandlerOptions{Level: &level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if logJSON {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	if len(logFlags) > 0 {
		level.Set(slog.LevelDebug)
	}
	o.Logger = slog.New(h)
	slog.SetDefault(o.Logger)

	if memSize != "" {
		n, err := daemon.ParseMemSize(memSize)
		if err != nil {
			fmt.Fprintf(stderr, "hyperpath: -s: %v\n", err)
			return 2
		}
		o.MemSize = n
	}
	if tomlFile != "" {
		if o.ConfigFile != "" {
			fmt.Fprintln(stderr, "hyperpath: give either -c or --config-toml, not both")
			return 2
		}
		o.ConfigFile, o.ConfigFormat = tomlFile, "toml"
	}
	if o.ConfigFile == "" && !noDefault && !o.WaitForRPC {
		o.ConfigData, o.ConfigFormat = daemon.DefaultConfig, "json"
	}
	d, err := daemon.New(o)
	if err != nil {
		fmt.Fprintf(stderr, "hyperpath: %v\n", err)
		return 2
	}
	if err := d.Start(context.Background()); err != nil {
		fmt.Fprintf(stderr, "hyperpath: %v\n", err)
		return 1
	}
	eff := d.Options()
	o.Logger.Info("hyperpath started", "version", rpc.DefaultVersion.Version, "cores", eff.CoreMask,
		"rpc", eff.RPCSocket, "config", configLabel(eff), "bdevs", strings.Join(d.Registry().Names(), ","))
	if err := d.Wait(); err != nil {
		fmt.Fprintf(stderr, "hyperpath: %v\n", err)
		return 1
	}
	return 0
}

func configLabel(o daemon.Options) string {
	switch {
	case o.ConfigFile != "":
		return o.ConfigFile
	case o.ConfigData != nil:
		return "embedded default"
	}
	return "none"
}
