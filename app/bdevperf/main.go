// Command bdevperf benchmarks Hyperpath bdevs the way SPDK's bdevperf does:
// jobs on the reactors of the core mask keep -q IOs of -o bytes
// outstanding for -t seconds, print a progress line every second and a
// table of IOPS, MiB/s and latency at the end. The engine is package perf;
// this command parses flags, brings Hyperpath up (env.go) and prints.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hyperpath/app/bdevperf/perf"
	"hyperpath/internal/hugemem"
)

const usage = `Usage: bdevperf [options]

Runs an IO workload against Hyperpath bdevs and reports IOPS, bandwidth and
latency per job, like SPDK's bdevperf. Example:

  bdevperf --null 1024 -b Null0 -q 128 -o 4096 -w randread -t 5

Workload:
  -q DEPTH            IOs each job keeps outstanding (default 128).
  -o SIZE             IO size in bytes; k/m/g suffixes allowed (4k). Must be a
                      multiple of each bdev's block size (default 4096).
  -w TYPE             read, write, randread, randwrite, rw, randrw, verify,
                      flush, unmap or write_zeroes (required). verify writes a
                      pattern (LBA, run seed, sequence number) and reads it back;
                      any miscompare makes bdevperf exit 1.
  -M PERCENT          share of reads for rw/randrw, 0..100 (required for them).
  -t SECONDS          run time (default 5; fractions allowed).
  -C                  run a job on every core for every bdev, each over its own
                      slice of the bdev. Default: one job per bdev, the bdevs
                      dealt to the cores round robin (as SPDK's bdevperf).
  -H                  allocate the data buffers from 4 KiB pages instead of
                      hugepages.
      --seed N        seed for random offsets and the verify pattern (default:
                      from the clock; the table's JSON output records it).

Bdevs (give -c, --malloc/--null, or -z):
  -c, --json FILE     SPDK JSON config (save_config output) or, for a .toml
                      file, its TOML form ([[bdev_malloc_create]] tables);
                      applied through the RPC methods, so every module works.
  -b, -T NAME         bdev(s) to test; comma-separated or repeated. Default:
                      every bdev not claimed by another bdev.
      --malloc MB     create a RAM bdev Malloc0 of MB MiB (no config needed).
      --null MB       create a null bdev Null0 of MB MiB.
      --block-size N  block size of --malloc/--null bdevs (default 512).

Reactors and RPC:
  -m MASK             reactor cores: hex mask (0x3) or list ([0,1]); default 0x1.
      --poll          keep reactors spinning (SPDK's behaviour); the default
                      adaptive mode lets idle reactors sleep.
  -r PATH             serve JSON-RPC on PATH (default: none, or
                      /var/tmp/spdk.sock with -z), e.g. to inspect bdevs with
                      rpc.py while the test runs.
  -z                  do not run at once: wait for perform_tests RPCs (SPDK's
                      bdevperf.py perform_tests; params time_in_sec,
                      workload_type, queue_depth, io_size, rw_percentage
                      override the flags). Ends on SIGINT/SIGTERM or
                      spdk_kill_instance.

Output:
  -S SECONDS          progress line period (default 1; 0 turns it off).
      --hgrm FILE     write the latency distribution of all jobs merged as an
                      HdrHistogram percentile file (.hgrm), in microseconds.
      --json-output FILE
                      write the results as JSON.
      --write-log FILE
                      with -w verify: append each write that completed (job,
                      offset, blocks, sequence number) to FILE every 10 ms,
                      for crash tests that kill bdevperf and check the device
                      (format and checker: package perf, WriteLog).
  -h, --help          this help.

Exit status: 0 on success, 1 when the run failed (IO errors, verify
miscompares, setup errors), 2 on bad usage.
`

// options are the parsed command line.
type options struct {
	cfg         perf.Config
	workload    string
	ioSize      string
	seconds     float64
	mix         int
	coreMask    string
	config      string
	bdevs       listFlag
	rpcSocket   string
	wait        bool
	poll        bool
	hgrm        string
	jsonOut     string
	writeLog    string
	mallocMB    int
	nullMB      int
	blockSize   int
	progressSec float64
	noHuge      bool
}

// listFlag collects repeated, comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// errUsage marks errors that exit with status 2.
var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bdevperf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	o := &options{}
	fs.IntVar(&o.cfg.QueueDepth, "q", 128, "")
	fs.StringVar(&o.ioSize, "o", "4096", "")
	fs.StringVar(&o.workload, "w", "", "")
	fs.IntVar(&o.mix, "M", -1, "")
	fs.Float64Var(&o.seconds, "t", 5, "")
	fs.BoolVar(&o.cfg.EveryCore, "C", false, "")
	fs.BoolVar(&o.noHuge, "H", false, "")
	fs.Uint64Var(&o.cfg.Seed, "seed", 0, "")
	for _, n := range []string{"c", "json", "config"} {
		fs.StringVar(&o.config, n, "", "")
	}
	fs.Var(&o.bdevs, "b", "")
	fs.Var(&o.bdevs, "T", "")
	fs.IntVar(&o.mallocMB, "malloc", 0, "")
	fs.IntVar(&o.nullMB, "null", 0, "")
	fs.IntVar(&o.blockSize, "block-size", 512, "")
	fs.StringVar(&o.coreMask, "m", "0x1", "")
	fs.BoolVar(&o.poll, "poll", false, "")
	fs.StringVar(&o.rpcSocket, "r", "", "")
	fs.BoolVar(&o.wait, "z", false, "")
	fs.Float64Var(&o.progressSec, "S", 1, "")
	fs.StringVar(&o.hgrm, "hgrm", "", "")
	fs.StringVar(&o.jsonOut, "json-output", "", "")
	fs.StringVar(&o.writeLog, "write-log", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage // the flag package has printed why
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if err := o.finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return o, nil
}

// finish validates the flags and fills cfg from them.
func (o *options) finish() error {
	if o.workload == "" {
		if !o.wait {
			return errors.New("-w is required (read, write, randread, randwrite, rw, randrw, verify, flush, unmap, write_zeroes)")
		}
	} else if err := o.setWorkload(o.workload); err != nil {
		return err
	}
	n, err := parseSize(o.ioSize)
	if err != nil {
		return fmt.Errorf("-o: %v", err)
	}
	o.cfg.IOSizeBytes = n
	if o.seconds <= 0 || o.seconds > 365*24*3600 {
		return fmt.Errorf("-t %v: want a positive number of seconds", o.seconds)
	}
	o.cfg.Duration = secondsDuration(o.seconds)
	if o.progressSec < 0 {
		return fmt.Errorf("-S %v: want seconds, or 0 for no progress lines", o.progressSec)
	}
	o.cfg.ProgressInterval = secondsDuration(o.progressSec)
	if o.mallocMB < 0 || o.nullMB < 0 {
		return errors.New("--malloc and --null take a size in MiB")
	}
	if o.blockSize < 512 || o.blockSize%512 != 0 {
		return fmt.Errorf("--block-size %d: want a multiple of 512", o.blockSize)
	}
	if o.config == "" && o.mallocMB == 0 && o.nullMB == 0 && !o.wait {
		if len(o.bdevs) > 0 {
			return fmt.Errorf("-b %s: bdevs come from -c CONFIG (or --malloc/--null), and none was given", o.bdevs.String())
		}
		return errors.New("no bdevs: give -c CONFIG, --malloc MB or --null MB (or -z to create them over RPC)")
	}
	o.cfg.Bdevs = o.bdevs
	if o.noHuge {
		o.cfg.Buffers = hugemem.SmallPages
	}
	if o.wait && o.rpcSocket == "" {
		o.rpcSocket = "/var/tmp/spdk.sock"
	}
	return o.checkWriteLog()
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// setWorkload applies -w (and -M) to cfg, as SPDK's bdevperf checks them.
func (o *options) setWorkload(name string) error {
	w, err := perf.ParseWorkload(name)
	if err != nil {
		return fmt.Errorf("-w: %v", err)
	}
	o.cfg.Workload = w
	if w.Mixed() {
		if o.mix < 0 || o.mix > 100 {
			return fmt.Errorf("-M must be given, 0..100, for -w %s", w)
		}
		o.cfg.ReadPercent = o.mix
	}
	return nil
}

// parseSize parses a byte count with an optional k, m or g suffix (powers
// of 1024, optionally followed by "b" or "ib").
func parseSize(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := 1
	switch {
	case strings.HasSuffix(t, "k"):
		mult = 1 << 10
	case strings.HasSuffix(t, "m"):
		mult = 1 << 20
	case strings.HasSuffix(t, "g"):
		mult = 1 << 30
	}
	if mult != 1 {
		t = t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 || n > perf.MaxIOSize/mult {
		return 0, fmt.Errorf("size %q: want a positive byte count up to %d, like 4096 or 4k", s, perf.MaxIOSize)
	}
	return n * mult, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if err != errUsage {
			fmt.Fprintf(stderr, "bdevperf: %v (see --help)\n", err)
		}
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := startEnv(ctx, o, logger)
	if err != nil {
		fmt.Fprintf(stderr, "bdevperf: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(stderr, "bdevperf: shutdown: %v\n", err)
		}
	}()

	if o.wait {
		return waitForTests(ctx, env, o, stdout, stderr)
	}
	res, err := runOnce(ctx, env, o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "bdevperf: %v\n", err)
		return 1
	}
	if err := res.Failure(); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	return 0
}

// runOnce runs the configured test, prints the table and writes the
// requested files.
func runOnce(ctx context.Context, env *env, o *options, stdout io.Writer) (*perf.Result, error) {
	printPlan(stdout, o)
	wl, err := startWriteLog(o)
	if err != nil {
		return nil, err
	}
	res, err := perf.Run(ctx, o.cfg, env.Registry(), env.Group(), stdout)
	if werr := wl.Close(); err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	if err := res.WriteTable(stdout); err != nil {
		return nil, err
	}
	if o.hgrm != "" {
		if err := writeFile(o.hgrm, res.WriteHgrm); err != nil {
			return nil, fmt.Errorf("--hgrm: %w", err)
		}
	}
	if o.jsonOut != "" {
		if err := writeFile(o.jsonOut, res.WriteJSON); err != nil {
			return nil, fmt.Errorf("--json-output: %w", err)
		}
	}
	return res, nil
}

func printPlan(w io.Writer, o *options) {
	c := &o.cfg
	fmt.Fprintf(w, "Running %s for %v: depth %d, IO size %d", c.Workload, c.Duration, c.QueueDepth, c.IOSizeBytes)
	if c.Workload.Mixed() {
		fmt.Fprintf(w, ", %d%% reads", c.ReadPercent)
	}
	fmt.Fprintf(w, ", core mask %s\n", o.coreMask)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
