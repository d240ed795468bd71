// Command hpctl drives Hyperpath's JSON-RPC socket the way SPDK's
// scripts/rpc.py does: the same command names (which are the RPC method
// names), the same positional arguments and flags where rpc.py has them,
// and the same output (results printed as Python's json.dumps(indent=2)
// would, strings without quotes where rpc.py strips them, rpc.py's report
// for error replies, exit status 1 on failure).
//
//	hpctl [-s socket] [-t timeout] [-r retries] [-v] [--dry-run] <command> [args] [--json '{...}']
//
// -s defaults to /var/tmp/spdk.sock. -t is a per-call timeout (rpc.py's is
// an idle timeout measured in CPU time; here it is wall time). Any command,
// and any method name hpctl has no command for, accepts --json with the raw
// params object, which is sent as is instead of what the flags would build:
//
//	hpctl bdev_malloc_create --json '{"name":"Malloc0","num_blocks":2048,"block_size":512}'
//
// # Adding commands
//
// Commands live in a table; each file registers its own from an init
// function, so a module's commands go in their own file (app/hpctl/bdev.go,
// app/hpctl/nvmf.go, ...) without touching the others:
//
//	func init() {
//		register(Command{
//			Name: "bdev_get_bdevs", // the RPC method
//			Help: "Display current blockdev list or required blockdev",
//			Params: func(fs *flag.FlagSet) ParamsFunc {
//				var name string
//				var timeout int
//				StringFlag(fs, &name, "b,name", "Name of the Blockdev")
//				IntFlag(fs, &timeout, "t,timeout", "Time in ms to wait for the bdev")
//				return func(args []string) (any, error) {
//					if err := Args(args); err != nil {
//						return nil, err
//					}
//					p := map[string]any{}
//					if name != "" {
//						p["name"] = name
//					}
//					if timeout != 0 {
//						p["timeout"] = timeout
//					}
//					return p, nil // an empty map sends no params, like rpc.py
//				}
//			},
//			Print: PrintDict,
//		})
//	}
//
// Params declares flags (BoolFlag, OptionalBool, StringFlag, IntFlag, or
// the flag package directly) and returns the builder that checks the
// positional arguments (Args, Choice) and returns the params: mirror
// rpc.py, which drops arguments that were not given and sends store_true
// flags as false. Print is PrintDict, PrintJSON or PrintArray as rpc.py's
// command uses print_dict, print_json or print_array; nil prints nothing.
// A command that makes several calls sets Custom and calls Env.Call
// itself (see save_config in config.go). Flags may come before, between or
// after positional arguments. Test a new command against rpc.py's output
// for the same call (see hpctl_test.go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"hyperpath/rpc/client"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is hpctl with its arguments and standard streams; it returns the
// exit status: 0, 1 for a failed call, 2 for a usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	gfs := flag.NewFlagSet("hpctl", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	e.Socket = client.DefaultSocket
	timeout := 60.0
	StringFlag(gfs, &e.Socket, "s", "RPC domain `socket` path (default /var/tmp/spdk.sock)")
	gfs.Float64Var(&timeout, "t", timeout, "`Timeout` in seconds waiting for each response (default 60)")
	IntFlag(gfs, &e.Retries, "r", "Retry connecting `N` times, 0.2 s apart (default 0)")
	BoolFlag(gfs, &e.Verbose, "v", "Log requests and responses to stderr")
	BoolFlag(gfs, &e.DryRun, "dry-run", "Print the requests instead of sending them")
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: hpctl [options] <command> [args]   (hpctl <command> -h for its arguments)\n\noptions:\n")
		flagHelp(w, gfs)
		fmt.Fprintf(w, "\ncommands (any other method name is sent as is, with --json params if given):\n")
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-30s %s\n", n, commands[n].Help)
		}
	}
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "hpctl: %v\n", err)
		usage(stderr)
		return 2
	}
	if timeout <= 0 {
		fmt.Fprintf(stderr, "hpctl: -t must be positive, got %v\n", timeout)
		return 2
	}
	e.Timeout = time.Duration(timeout * float64(time.Second))
	if gfs.NArg() == 0 {
		usage(stderr)
		return 2
	}
	name, cargs := gfs.Arg(0), gfs.Args()[1:]
	cmd, known := commands[name]
	if !known {
		cmd = &Command{Name: name, Help: "send the method as is", Print: PrintDict}
	}

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var jsonParams string
	var build ParamsFunc
	var custom RunFunc
	switch {
	case cmd.Custom != nil:
		custom = cmd.Custom(fs)
	case cmd.Params != nil:
		build = cmd.Params(fs)
	}
	if custom == nil {
		StringFlag(fs, &jsonParams, "json", "Raw params (a JSON object or array) sent instead of what the arguments build")
	}
	pos, err := parseArgs(fs, cargs)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: hpctl [options] %s [options] %s\n\n%s\n\n", name, cmd.Args, cmd.Help)
			flagHelp(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "hpctl %s: %v\n", name, err)
		return 2
	}

	ctx := context.Background()
	defer e.close()
	if custom != nil {
		return report(e, name, custom(ctx, e, pos))
	}
	var params any
	switch {
	case jsonParams != "":
		if len(pos) > 0 {
			fmt.Fprintf(stderr, "hpctl %s: positional arguments cannot be combined with --json\n", name)
			return 2
		}
		raw := json.RawMessage(jsonParams)
		if !json.Valid(raw) || (raw[0] != '{' && raw[0] != '[') {
			fmt.Fprintf(stderr, "hpctl %s: --json: want a JSON object or array\n", name)
			return 2
		}
		params = raw
	case build != nil:
		p, err := build(pos)
		if err != nil {
			fmt.Fprintf(stderr, "hpctl %s: %v\n", name, err)
			return 2
		}
		if m, ok := p.(map[string]any); ok && len(m) == 0 {
			p = nil // rpc.py sends no params key for an empty dict
		}
		params = p
	default:
		if err := Args(pos); err != nil {
			fmt.Fprintf(stderr, "hpctl %s: %v\n", name, err)
			return 2
		}
	}
	var res json.RawMessage
	err = e.Call(ctx, name, params, &res)
	if err != nil && name == "spdk_kill_instance" && errors.Is(err, client.ErrClosed) {
		err = nil // the instance may die before it replies (rpc.py ignores that too)
		res = nil
	}
	if err == nil && cmd.Print != nil && res != nil && !e.DryRun {
		err = cmd.Print(stdout, res)
	}
	return report(e, name, err)
}

// report prints a failure the way rpc.py does (on stdout) and returns the
// exit status.
func report(e *Env, name string, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, client.ErrSkipped), errors.Is(err, client.ErrSubsystemSkipped):
		fmt.Fprintln(e.Stdout, err)
		return 0
	}
	fmt.Fprintln(e.Stdout, err)
	return 1
}
