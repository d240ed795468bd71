package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"hyperpath/rpc"
	"hyperpath/rpc/rpctest"
)

// target starts a server with the stand-in target of package rpctest
// (populated: Runtime, with config), plus the app-level methods hpctl has
// commands for, returning fixed results.
func target(t *testing.T, populate bool) (*rpc.Server, *rpctest.Target, string) {
	t.Helper()
	s := rpc.NewServer(rpc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tg := &rpctest.Target{}
	tg.Register(s)
	s.LogFlags().MustRegister("bdev")
	fixed := func(v string) rpc.Handler {
		return func(context.Context, json.RawMessage) (any, error) { return json.RawMessage(v), nil }
	}
	s.Register("framework_get_reactors", rpc.Runtime, fixed(`{"tick_rate":2300000000,"pid":42,"reactors":[{"lcore":0,"busy":1,"idle":2,"lw_threads":[{"name":"app_thread","id":1,"cpumask":"1","elapsed":3}]}]}`))
	s.Register("thread_get_stats", rpc.Runtime, fixed(`{"tick_rate":2300000000,"threads":[{"name":"ñ\u2028😀\u007f<>&","id":1,"cpumask":"1","busy":0,"idle":0}]}`))
	s.Register("thread_get_pollers", rpc.Runtime, fixed(`{"tick_rate":1,"threads":[]}`))
	if populate {
		if err := tg.Populate(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return s, tg, rpctest.Serve(t, s)
}

// hpctl runs the command in process and returns stdout and the status.
func hpctl(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := run(args, strings.NewReader(stdin), &out, &errb)
	if errb.Len() > 0 && rc != 2 {
		t.Logf("hpctl %v stderr: %s", args, errb.String())
	}
	if rc == 2 {
		return errb.String(), rc
	}
	return out.String(), rc
}

// TestSameOutputAsRPCPy runs each command with rpc.py and with hpctl
// against the same server and requires byte-identical output and status.
func TestSameOutputAsRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t)
	s, _, sock := target(t, true)
	var killed []syscall.Signal
	s.OnKill(func(sig syscall.Signal) error { killed = append(killed, sig); return nil })
	for _, args := range [][]string{
		{"spdk_get_version"},
		{"rpc_get_methods"},
		{"rpc_get_methods", "-c"},
		{"rpc_get_methods", "--current", "-i"},
		{"framework_get_subsystems"},
		{"framework_get_config", "bdev"},
		{"framework_get_config", "nvmf", "--with-batches"},
		{"framework_get_config", "--with-batches", "nvmf", "--no-with-batches"},
		{"framework_get_config", "scsi"},
		{"framework_get_config", "nosuch"},
		{"framework_get_reactors"},
		{"thread_get_stats"},
		{"thread_get_pollers"},
		{"log_set_flag", "bdev"},
		{"log_get_flags"},
		{"log_set_flag", "nosuch"},
		{"log_clear_flag", "all"},
		{"log_set_level", "INFO"},
		{"log_get_level"},
		{"log_set_print_level", "ERROR"},
		{"log_get_print_level"},
		{"framework_start_init"},
		{"framework_wait_init"},
		{"save_config"},
		{"save_config", "-i", "-1"},
		{"save_config", "-i", "0"},
		{"save_config", "--indent", "4", "-s", "bdev"},
		{"save_config", "--with-batches"},
		{"save_subsystem_config", "-n", "nvmf"},
		{"save_subsystem_config", "-n", "nvmf", "--with-batches", "-i", "-1"},
		{"spdk_kill_instance", "SIGTERM"},
	} {
		want, wantRC := rpctest.RPCPy(t, sock, "", args...)
		got, gotRC := hpctl(t, "", append([]string{"-s", sock}, args...)...)
		if got != want || gotRC != wantRC {
			t.Errorf("%s: rc %d vs rpc.py %d\n--- hpctl\n%s--- rpc.py\n%s", strings.Join(args, " "), gotRC, wantRC, got, want)
		}
	}
	if len(killed) != 2 {
		t.Errorf("kill hook called %d times, want 2", len(killed))
	}
}

// TestLoadConfigLikeRPCPy loads one saved config with rpc.py into one
// fresh server and with hpctl into another: both make the same calls and
// save the same document as the original.
func TestLoadConfigLikeRPCPy(t *testing.T) {
	rpctest.RPCPyPath(t)
	_, _, src := target(t, true)
	saved, rc := hpctl(t, "", "-s", src, "save_config", "--with-batches")
	if rc != 0 {
		t.Fatal(saved)
	}
	flat, _ := hpctl(t, "", "-s", src, "save_config")
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(saved), 0o600)

	_, pyTg, pySock := target(t, false)
	if out, rc := rpctest.RPCPy(t, pySock, "", "load_config", "-j", file); rc != 0 || out != "" {
		t.Fatalf("rpc.py load_config: %d %s", rc, out)
	}
	_, goTg, goSock := target(t, false)
	if out, rc := hpctl(t, saved, "-s", goSock, "load_config"); rc != 0 || out != "" { // from stdin
		t.Fatalf("hpctl load_config: %d %s", rc, out)
	}
	if p, g := strings.Join(pyTg.Calls(), ","), strings.Join(goTg.Calls(), ","); p != g {
		t.Fatalf("calls differ:\n rpc.py %s\n hpctl  %s", p, g)
	}
	for _, sock := range []string{pySock, goSock} {
		if again, _ := hpctl(t, "", "-s", sock, "save_config"); again != flat {
			t.Fatalf("save after load differs:\n%s\n---\n%s", again, flat)
		}
	}

	// Into a Runtime server: both skip the Startup-only entries and say so.
	_, _, rtSock := target(t, true)
	want, wantRC := rpctest.RPCPy(t, rtSock, "", "load_config", "-j", file)
	_, _, rtSock2 := target(t, true)
	got, gotRC := hpctl(t, "", "-s", rtSock2, "load_config", "-j", file)
	if got != want || gotRC != wantRC {
		t.Fatalf("load into Runtime: %d %q vs rpc.py %d %q", gotRC, got, wantRC, want)
	}

	// load_subsystem_config of the bdev part in Runtime (same output,
	// same calls), and of the iobuf part (skipped: Startup only).
	var doc struct {
		Subsystems []json.RawMessage `json:"subsystems"`
	}
	json.Unmarshal([]byte(saved), &doc)
	for _, i := range []int{0, 2} {
		part := filepath.Join(t.TempDir(), "s.json")
		os.WriteFile(part, doc.Subsystems[i], 0o600)
		_, pyTg, a := target(t, true)
		_, goTg, b := target(t, true)
		want, wantRC := rpctest.RPCPy(t, a, "", "load_subsystem_config", "-j", part)
		got, gotRC := hpctl(t, "", "-s", b, "load_subsystem_config", "-j", part)
		if got != want || gotRC != wantRC || strings.Join(pyTg.Calls(), ",") != strings.Join(goTg.Calls(), ",") {
			t.Fatalf("load_subsystem_config %d: %d %q vs rpc.py %d %q\n%v\n%v", i, gotRC, got, wantRC, want, goTg.Calls(), pyTg.Calls())
		}
	}
}

// TestSaveLoadRoundTrip needs no rpc.py: save, load into a fresh server in
// Startup state, save again.
func TestSaveLoadRoundTrip(t *testing.T) {
	_, _, src := target(t, true)
	saved, rc := hpctl(t, "", "-s", src, "save_config")
	if rc != 0 {
		t.Fatal(saved)
	}
	if !strings.HasPrefix(saved, "{\n  \"subsystems\": [\n    {\n      \"subsystem\": \"iobuf\",\n      \"config\": [\n") ||
		!strings.Contains(saved, `"name": "M\u00e4lloc <1> & \"quoted\""`) || !strings.Contains(saved, "\"config\": null") {
		t.Fatalf("save_config output:\n%s", saved)
	}
	dst, _, dsock := target(t, false)
	if out, rc := hpctl(t, "", "-s", dsock, "load_config", "-j", saved); rc != 0 { // -j with the JSON itself
		t.Fatal(out)
	}
	if dst.State() != rpc.Runtime {
		t.Fatal("not started")
	}
	if again, _ := hpctl(t, "", "-s", dsock, "save_config"); again != saved {
		t.Fatalf("round trip:\n%s\n---\n%s", saved, again)
	}
}

func TestCLIBehaviour(t *testing.T) {
	s, _, sock := target(t, false)
	var killed []syscall.Signal
	s.OnKill(func(sig syscall.Signal) error { killed = append(killed, sig); return nil })
	for _, tc := range []struct {
		args []string
		rc   int
		want string // exact stdout (or stderr for rc 2)
	}{
		{[]string{"log_get_level"}, 0, "\"NOTICE\"\n"},
		{[]string{"spdk_get_version", "--json", `{}`}, 1, "request:\n{\n  \"method\": \"spdk_get_version\",\n  \"req_id\": 1\n}\nGot JSON-RPC error response\nresponse:\n{\n  \"code\": -32602,\n  \"message\": \"spdk_get_version method requires no parameters\"\n}\n"},
		{[]string{"log_set_flag", "--json", `{"flag": "nope", "x": [1]}`}, 1, "request:\n{\n  \"flag\": \"nope\",\n  \"x\": [\n    1\n  ],\n  \"method\": \"log_set_flag\",\n  \"req_id\": 1\n}\nGot JSON-RPC error response\nresponse:\n{\n  \"code\": -32603,\n  \"message\": \"spdk_json_decode_object failed\"\n}\n"},
		// A method hpctl has no command for, with raw params
		// (bdev_set_options has a command now, which prints nothing).
		{[]string{"iobuf_set_options", "--json", `{"small_pool_count": 8192}`}, 0, "true\n"},
		{[]string{"bdev_set_options", "--json", `{"bdev_io_pool_size": 1}`}, 0, ""},
		{[]string{"no_such_method"}, 1, "request:\n{\n  \"method\": \"no_such_method\",\n  \"req_id\": 1\n}\nGot JSON-RPC error response\nresponse:\n{\n  \"code\": -32601,\n  \"message\": \"Method not found\"\n}\n"},
		{[]string{"framework_get_subsystems"}, 1, "request:\n{\n  \"method\": \"framework_get_subsystems\",\n  \"req_id\": 1\n}\nGot JSON-RPC error response\nresponse:\n{\n  \"code\": -1,\n  \"message\": \"Method may only be called after framework is initialized using framework_start_init RPC.\"\n}\n"},
		{[]string{"--dry-run", "log_set_flag", "x"}, 0, "Request:\n{\n  \"method\": \"log_set_flag\",\n  \"params\": {\n    \"flag\": \"x\"\n  }\n}\n"},
		{[]string{"--dry-run", "framework_start_init"}, 0, "Request:\n{\n  \"method\": \"framework_start_init\",\n  \"params\": null\n}\n"},
		// Usage errors: status 2, message on stderr.
		{[]string{"log_set_flag"}, 2, "hpctl log_set_flag: missing argument <flag>\n"},
		{[]string{"log_set_level", "debug"}, 2, "hpctl log_set_level: argument level: invalid choice: \"debug\" (choose from ERROR, WARNING, NOTICE, INFO, DEBUG)\n"},
		{[]string{"spdk_kill_instance", "SIGTERM", "extra"}, 2, "hpctl spdk_kill_instance: unexpected argument \"extra\"\n"},
		{[]string{"rpc_get_methods", "--bogus"}, 2, "hpctl rpc_get_methods: flag provided but not defined: -bogus\n"},
		{[]string{"log_set_flag", "x", "--json", "{}"}, 2, "hpctl log_set_flag: positional arguments cannot be combined with --json\n"},
		{[]string{"log_set_flag", "--json", "7"}, 2, "hpctl log_set_flag: --json: want a JSON object or array\n"},
		{[]string{"framework_start_init"}, 0, ""},
		{[]string{"spdk_kill_instance", "SIGINT"}, 0, ""},
		{[]string{"framework_get_config", "scsi", "--", "extra"}, 2, "hpctl framework_get_config: unexpected argument \"extra\"\n"},
	} {
		got, rc := hpctl(t, "", append([]string{"-s", sock}, tc.args...)...)
		if rc != tc.rc || got != tc.want {
			t.Errorf("%v: rc %d\n got  %q\n want %q", tc.args, rc, got, tc.want)
		}
	}
	if len(killed) != 1 || killed[0] != syscall.SIGINT {
		t.Errorf("kill hook: %v", killed)
	}

	// Not running: rpc.py's message, status 1.
	got, rc := hpctl(t, "", "-s", filepath.Join(t.TempDir(), "none.sock"), "spdk_get_version")
	if rc != 1 || !strings.HasPrefix(got, "Error while connecting to ") || !strings.Contains(got, "Is the Hyperpath daemon running?") {
		t.Errorf("no daemon: %d %q", rc, got)
	}
	if got, rc := hpctl(t, "", "-t", "0", "spdk_get_version"); rc != 2 || !strings.Contains(got, "-t must be positive") {
		t.Errorf("-t 0: %d %q", rc, got)
	}
	// Help.
	if got, rc := hpctl(t, "", "-h"); rc != 0 || !strings.Contains(got, "save_config") || !strings.Contains(got, "-s SOCKET") {
		t.Errorf("-h: %d %q", rc, got)
	}
	if got, rc := hpctl(t, "", "rpc_get_methods", "-h"); rc != 0 || !strings.Contains(got, "-c, --current") {
		t.Errorf("command -h: %d %q", rc, got)
	}
}

func TestTimeout(t *testing.T) {
	s, _, sock := target(t, false)
	s.Register("test_hang", rpc.Startup, func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, rpc.Detached())
	got, rc := hpctl(t, "", "-s", sock, "-t", "0.1", "test_hang")
	if rc != 1 || !strings.HasPrefix(got, "Timeout while waiting for response to test_hang") {
		t.Fatalf("%d %q", rc, got)
	}
}

// TestPyDumps compares the formatter with Python's json.dumps.
func TestPyDumps(t *testing.T) {
	docs := []string{
		`{"a":1,"b":[],"c":{},"d":[1,{"e":null,"f":true,"g":false}],"h":"x\"\\\n\r\t\b\f\u0001\u007f","i":-0.5,"j":1e-07,"k":12345678901234567890}`,
		// (A lone surrogate such as "\ud800" is left out: Go decodes it as
		// U+FFFD, so the server can never send one.)
		`["ñ", "\u2028", "😀", "<>&", "€", "\u00e9\u0000"]`,
		`"plain"`, `[]`, `{}`, `null`, `[[[]],[{}]]`,
	}
	indents := []int{2, -1, 0, 4}
	var cases [][2]any
	for _, d := range docs {
		for _, ind := range indents {
			cases = append(cases, [2]any{d, ind})
		}
	}
	quotes := []string{"", "abc", "a b", "it's", "Malloc0", "x@y%z+=:,./-_", "é", "$HOME"}
	// One Python process computes every reference output.
	var ref struct {
		Dumps  []string `json:"dumps"`
		Quotes []string `json:"quotes"`
	}
	python(t, `
import json, shlex, sys
req = json.loads(sys.stdin.read())
dumps = [json.dumps(json.loads(d), indent=(None if i < 0 else i)) for d, i in req["cases"]]
print(json.dumps({"dumps": dumps, "quotes": [shlex.quote(q) for q in req["quotes"]]}))
`, map[string]any{"cases": cases, "quotes": quotes}, &ref)
	for i, c := range cases {
		got, err := pyDumps([]byte(c[0].(string)), c[1].(int))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != ref.Dumps[i] {
			t.Errorf("indent %d %s:\n got  %s\n want %s", c[1], c[0], got, ref.Dumps[i])
		}
	}
	for i, q := range quotes {
		if got := shQuote(q); got != ref.Quotes[i] {
			t.Errorf("shQuote(%q) = %q, Python %q", q, got, ref.Quotes[i])
		}
	}
}

// python runs script with in (as JSON) on stdin and decodes its stdout
// into out.
func python(t *testing.T, script string, in, out any) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found: it is the reference for the output format")
	}
	b, _ := json.Marshal(in)
	cmd := exec.Command("python3", "-c", script)
	cmd.Stdin = bytes.NewReader(b)
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatal(err)
	}
}

func TestPrintArray(t *testing.T) {
	var b bytes.Buffer
	if err := PrintArray(&b, json.RawMessage(`["Nvme0n1","a b","it's"]`)); err != nil || b.String() != "Nvme0n1 'a b' 'it'\"'\"'s'\n" {
		t.Fatalf("%v %q", err, b.String())
	}
	if err := PrintArray(&b, json.RawMessage(`{}`)); err == nil {
		t.Fatal("object accepted")
	}
}
