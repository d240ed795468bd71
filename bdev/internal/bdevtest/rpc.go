package bdevtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// NewRPC returns an RPC server in the Runtime state with the generic bdev
// methods and those that each of register adds for reg.
func NewRPC(reg *bdev.Registry, register ...func(*rpc.Server, *bdev.Registry)) *rpc.Server {
	s := rpc.NewServer(rpc.Options{})
	bdev.RegisterRPC(s, reg)
	for _, f := range register {
		f(s, reg)
	}
	s.SetState(rpc.Runtime)
	return s
}

// Call is s.Call with a background context.
func Call(s *rpc.Server, method string, params, result any) error {
	return s.Call(context.Background(), method, params, result)
}

// WantErr checks that err is the JSON-RPC error code/message.
func WantErr(t testing.TB, what string, err error, code int, msg string) {
	t.Helper()
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != code || re.Message != msg {
		t.Errorf("%s: got %v, want %d %q", what, err, code, msg)
	}
}

// Listen serves s on a fresh Unix socket until the test ends and returns
// the socket's path.
func Listen(t testing.TB, s *rpc.Server) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hpbdev")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "spdk.sock")
	if err := s.Listen(sock); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return sock
}

// SPDKRPCPy finds python3 and $SPDK_DIR/scripts/rpc.py, or skips the
// test saying what is missing.
func SPDKRPCPy(t testing.TB) (py, rpcPy string) {
	t.Helper()
	spdk := os.Getenv("SPDK_DIR")
	if spdk == "" {
		t.Skip("SPDK_DIR not set (point it at an SPDK tree with scripts/rpc.py, e.g. /opt/spdk)")
	}
	rpcPy = filepath.Join(spdk, "scripts", "rpc.py")
	if _, err := os.Stat(rpcPy); err != nil {
		t.Skipf("no %s: %v", rpcPy, err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	return py, rpcPy
}

// PyResult is one command's answer from rpc.py --server.
type PyResult struct {
	// Status is the number after "**STATUS=" ("0" for success).
	Status string
	// OK is Status == "0".
	OK bool
	// Out is what the command printed, trimmed.
	Out string
}

// RPCPyServer runs each command line (rpc.py's arguments after the socket
// and timeout options) through one `rpc.py --server` process talking to
// sock, and returns every command's answer. It fails the test if rpc.py
// fails or answers another number of commands.
func RPCPyServer(t testing.TB, py, rpcPy, sock string, lines ...string) []PyResult {
	t.Helper()
	var in strings.Builder
	for _, l := range lines {
		in.WriteString("-s " + sock + " -t 10 " + l + "\n")
	}
	cmd := exec.Command(py, rpcPy, "--server")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rpc.py --server: %v: %s", err, out)
	}
	var res []PyResult
	var cur strings.Builder
	for _, l := range strings.SplitAfter(string(out), "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "**STATUS="); ok {
			res = append(res, PyResult{Status: s, OK: s == "0", Out: strings.TrimSpace(cur.String())})
			cur.Reset()
			continue
		}
		cur.WriteString(l)
	}
	if len(res) != len(lines) {
		t.Fatalf("rpc.py --server answered %d of %d commands:\n%s", len(res), len(lines), out)
	}
	return res
}

// CheckFuzzAnswer fails t unless err, the answer of a call with params
// from a fuzzer, is nil or a JSON-RPC error that is not a handler panic
// (which the server turns into -32603 "Internal error").
func CheckFuzzAnswer(t testing.TB, params []byte, err error) {
	t.Helper()
	var re *rpc.Error
	if err != nil && (!errors.As(err, &re) || re.Code == rpc.CodeInternalError && re.Message == "Internal error") {
		t.Fatalf("params %s: %v", params, err)
	}
}
