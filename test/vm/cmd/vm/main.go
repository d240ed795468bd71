// Command vm builds the cached guest image of hyperpath/test/vm and boots
// guest scripts by hand.
//
//	go run ./test/vm/cmd/vm build [-extra SRC[=DST]]...     # packages, kernel, initramfs
//	go run ./test/vm/cmd/vm run [flags] SCRIPT              # boot, run SCRIPT, exit with its status
//
// run flags: -mem MiB, -cpus N, -hugetlbfs, -vub SOCKET[,QUEUES] (repeatable),
// -net, -fwd HOSTPORT:GUESTPORT (repeatable), -share DIR, -file GUEST=HOST
// (repeatable), -env K=V (repeatable), -karg ARG (repeatable), -timeout D. The console streams to
// stdout. Everything is cached in build/vm (HYPERPATH_VM_CACHE overrides).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"hyperpath/test/vm"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vm build [-extra SRC[=DST]]... | vm run [flags] SCRIPT")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "build":
		build(os.Args[2:])
	case "run":
		run(os.Args[2:])
	default:
		usage()
	}
}

func buildImage(extra []string) *vm.Image {
	start := time.Now()
	img, err := vm.Build(context.Background(), vm.BuildOptions{Install: true, Extra: extra, Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var se *vm.SkipError
		if errors.As(err, &se) {
			os.Exit(3)
		}
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "vm: image ready in %.1fs\n", time.Since(start).Seconds())
	return img
}

func build(args []string) {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	var extra multi
	fs.Var(&extra, "extra", "host file SRC or SRC=DST to put in the base image (repeatable)")
	fs.Parse(args)
	img := buildImage(extra)
	fmt.Printf("kernel  %s (%s)\ninitrd  %s\ntools   %s\nqemu    %s\nqsd     %s\n", img.Kernel, img.KernelPackage, img.Initrd, img.Tools, img.QEMU, img.StorageDaemon)
}

func run(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var vubs, fwds, files, envs, extra, kargs multi
	mem := fs.Int("mem", 512, "guest memory in MiB")
	cpus := fs.Int("cpus", 2, "guest CPUs")
	huge := fs.Bool("hugetlbfs", false, "back guest memory with hugetlbfs (2 MiB pages)")
	netOn := fs.Bool("net", false, "add a user-mode NIC (guest 10.0.2.15, host 10.0.2.2)")
	share := fs.String("share", "", "host directory shared read-write at /host")
	timeout := fs.Duration("timeout", 3*time.Minute, "kill the guest after this long")
	fs.Var(&vubs, "vub", "vhost-user-blk SOCKET[,QUEUES] (repeatable)")
	fs.Var(&fwds, "fwd", "host forward HOSTPORT:GUESTPORT on 127.0.0.1 (repeatable; implies -net)")
	fs.Var(&files, "file", "GUEST=HOST file for this boot (repeatable)")
	fs.Var(&envs, "env", "K=V exported to the script (repeatable)")
	fs.Var(&extra, "extra", "host file SRC or SRC=DST to put in the base image (repeatable)")
	fs.Var(&kargs, "karg", "kernel command line argument (repeatable)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	script, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := vm.Config{Name: "vm", MemoryMiB: *mem, CPUs: *cpus, Share9p: *share, Script: string(script),
		Timeout: *timeout, Console: os.Stdout, Env: map[string]string{}, Files: map[string]string{}, KernelArgs: kargs}
	if *huge {
		cfg.MemBackend = vm.Hugetlbfs
	}
	for _, v := range vubs {
		sock, q, _ := strings.Cut(v, ",")
		n, _ := strconv.Atoi(q)
		cfg.VhostUserBlk = append(cfg.VhostUserBlk, vm.VhostUserBlk{Socket: sock, NumQueues: n})
	}
	if *netOn || len(fwds) > 0 {
		cfg.Net = &vm.Net{}
	}
	for _, f := range fwds {
		h, g, _ := strings.Cut(f, ":")
		hp, err1 := strconv.Atoi(h)
		gp, err2 := strconv.Atoi(g)
		if err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "bad -fwd %q\n", f)
			os.Exit(2)
		}
		cfg.Net.HostForwards = append(cfg.Net.HostForwards, vm.HostForward{HostPort: hp, GuestPort: gp})
	}
	for _, f := range files {
		g, h, _ := strings.Cut(f, "=")
		cfg.Files[g] = h
	}
	for _, e := range envs {
		k, v, _ := strings.Cut(e, "=")
		cfg.Env[k] = v
	}
	img := buildImage(extra)
	g, err := img.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code, _, err := g.Wait()
	g.Kill()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "vm: exit %d after %v\n", code, g.Elapsed().Round(time.Millisecond))
	os.Exit(code)
}
