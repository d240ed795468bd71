package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"hyperpath/rpc"
	"hyperpath/rpc/client"
)

// Command is one hpctl sub-command. Most commands send one RPC whose name
// is the command's Name: Params builds its params from the parsed flags
// and positional arguments, and Print prints the result. Commands that do
// more than one call (save_config) set Custom instead.
type Command struct {
	Name string // the RPC method name, as in rpc.py
	Args string // synopsis of the positional arguments for --help, e.g. "<name>"
	Help string // one line

	// Params declares the command's flags on fs and returns the function
	// that turns the parsed flags and the positional arguments into the
	// request params (nil: no "params" key). A nil Params means the
	// command takes no arguments and sends no params.
	Params func(fs *flag.FlagSet) ParamsFunc

	// Print prints the result; nil prints nothing (rpc.py prints nothing
	// for setters). See PrintDict, PrintJSON, PrintArray.
	Print Printer

	// Custom, when set, replaces Params and Print: it declares flags and
	// returns the function that does the whole job through Env.Call.
	Custom func(fs *flag.FlagSet) RunFunc
}

// ParamsFunc builds request params from positional arguments.
type ParamsFunc func(args []string) (any, error)

// RunFunc runs a Custom command.
type RunFunc func(ctx context.Context, e *Env, args []string) error

// Printer prints a result.
type Printer func(w io.Writer, result json.RawMessage) error

var commands = map[string]*Command{}

// register adds commands to the table; each command file calls it from
// its init function. Duplicate names are a bug and panic at start-up.
func register(cmds ...Command) {
	for i := range cmds {
		c := cmds[i]
		if _, dup := commands[c.Name]; dup {
			panic("hpctl: command " + c.Name + " registered twice")
		}
		commands[c.Name] = &c
	}
}

// PrintDict prints like rpc.py's print_dict: json.dumps(indent=2).
func PrintDict(w io.Writer, result json.RawMessage) error {
	b, err := pyDumps(result, 2)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// PrintJSON prints like rpc.py's print_json: print_dict with the quotes
// around a string result stripped.
func PrintJSON(w io.Writer, result json.RawMessage) error {
	b, err := pyDumps(result, 2)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", strings.Trim(string(b), `"`))
	return err
}

// PrintArray prints like rpc.py's print_array: the strings of an array
// result, shell-quoted, space-separated.
func PrintArray(w io.Writer, result json.RawMessage) error {
	var a []string
	if err := json.Unmarshal(result, &a); err != nil {
		return fmt.Errorf("result is not an array of strings: %s", result)
	}
	for i := range a {
		a[i] = shQuote(a[i])
	}
	_, err := fmt.Fprintln(w, strings.Join(a, " "))
	return err
}

// Env is what a command runs with: the global options and the connection,
// opened on the first call. It implements client.Caller.
type Env struct {
	Socket  string
	Timeout time.Duration
	Retries int
	Verbose bool
	DryRun  bool
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer

	c     *client.Client
	calls int // requests sent on c; its ids are 1, 2, ...
}

// connectError, timeoutError and replyError carry what rpc.py prints for
// each kind of failure.
type connectError struct {
	socket string
	err    error
}

func (e *connectError) Error() string {
	return fmt.Sprintf("Error while connecting to %s\nIs the Hyperpath daemon running?\nError details: %v", e.socket, e.err)
}

type replyError struct {
	method string
	params json.RawMessage
	id     int
	err    *rpc.Error
}

func (e *replyError) Error() string {
	// rpc.py adds "method" and "req_id" to the params dict and prints it.
	req := []byte("{")
	if len(e.params) > 0 && e.params[0] == '{' && strings.TrimSpace(string(e.params[1:len(e.params)-1])) != "" {
		req = append(e.params[:len(e.params)-1:len(e.params)-1], ',')
	}
	req = fmt.Appendf(req, `"method":%s,"req_id":%d}`, strconv.Quote(e.method), e.id)
	reqText, _ := pyDumps(req, 2)
	errJSON, _ := json.Marshal(e.err)
	errText, _ := pyDumps(errJSON, 2)
	return fmt.Sprintf("request:\n%s\nGot JSON-RPC error response\nresponse:\n%s", reqText, errText)
}

func (e *replyError) Unwrap() error { return e.err }

// Call sends one request (connecting first if needed) and decodes its
// result into result. An error reply comes back as an error whose text is
// rpc.py's report and which wraps the *rpc.Error.
func (e *Env) Call(ctx context.Context, method string, params, result any) error {
	var raw json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return err
		}
		raw = b
	}
	if e.DryRun {
		// rpc.py's dry run prints {"method","params"} in that order.
		req := fmt.Appendf(nil, `{"method":%s,"params":%s}`, strconv.Quote(method), orNull(raw))
		out, _ := pyDumps(req, 2)
		fmt.Fprintf(e.Stdout, "Request:\n%s\n", out)
		return nil
	}
	if e.c == nil {
		if err := e.connect(ctx); err != nil {
			return err
		}
	}
	if e.Verbose {
		fmt.Fprintf(e.Stderr, "INFO: request: %s %s\n", method, raw)
	}
	e.calls++
	cctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	var res json.RawMessage
	var p any
	if raw != nil {
		p = raw
	}
	err := e.c.Call(cctx, method, p, &res)
	if e.Verbose {
		fmt.Fprintf(e.Stderr, "INFO: response: %s %v\n", res, err)
	}
	var re *rpc.Error
	switch {
	case err == nil:
	case errors.As(err, &re):
		return &replyError{method: method, params: raw, id: e.calls, err: re}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("Timeout while waiting for response to %s after %v", method, e.Timeout)
	default:
		return err
	}
	if result != nil {
		return json.Unmarshal(res, result)
	}
	return nil
}

func orNull(b json.RawMessage) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	return b
}

func (e *Env) connect(ctx context.Context) error {
	var err error
	for try := 0; ; try++ {
		if _, serr := os.Stat(e.Socket); serr != nil {
			err = serr
		} else {
			e.c, err = client.DialContext(ctx, e.Socket)
			if err == nil {
				return nil
			}
		}
		if try >= e.Retries {
			return &connectError{socket: e.Socket, err: err}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *Env) close() {
	if e.c != nil {
		e.c.Close()
	}
}

// boolOpt is a bool flag that may have several names and a --no- form
// (argparse's BooleanOptionalAction).
type boolOpt struct {
	p   *bool
	val bool
}

func (b boolOpt) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p)
}
func (b boolOpt) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = v == b.val
	return nil
}
func (b boolOpt) IsBoolFlag() bool { return true }

// BoolFlag defines a store_true flag under each comma-separated name
// ("c,current" gives -c and --current).
func BoolFlag(fs *flag.FlagSet, p *bool, names, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.Var(boolOpt{p: p, val: true}, n, usage)
	}
}

// OptionalBool defines --name and --no-name, like argparse's
// BooleanOptionalAction; *p keeps its default when neither is given.
func OptionalBool(fs *flag.FlagSet, p *bool, name, usage string) {
	fs.Var(boolOpt{p: p, val: true}, name, usage)
	fs.Var(boolOpt{p: p, val: false}, "no-"+name, "negates --"+name)
}

// StringFlag defines a string flag under each comma-separated name.
func StringFlag(fs *flag.FlagSet, p *string, names, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.StringVar(p, n, *p, usage)
	}
}

// IntFlag defines an int flag under each comma-separated name.
func IntFlag(fs *flag.FlagSet, p *int, names, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.IntVar(p, n, *p, usage)
	}
}

// Args checks the number of positional arguments against their names.
func Args(args []string, names ...string) error {
	if len(args) < len(names) {
		return fmt.Errorf("missing argument <%s>", names[len(args)])
	}
	if len(args) > len(names) {
		return fmt.Errorf("unexpected argument %q", args[len(names)])
	}
	return nil
}

// Choice checks that v is one of choices, as argparse's choices= does.
func Choice(name, v string, choices ...string) error {
	if slices.Contains(choices, v) {
		return nil
	}
	return fmt.Errorf("argument %s: invalid choice: %q (choose from %s)", name, v, strings.Join(choices, ", "))
}

// parseArgs parses flags anywhere among the positional arguments, as
// argparse does; "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		used := len(args) - len(rest)
		if used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}

// flagHelp prints a flag set's flags, one line per flag with its aliases.
func flagHelp(w io.Writer, fs *flag.FlagSet) {
	type entry struct {
		names []string
		usage string
		arg   string
	}
	var list []*entry
	seen := map[string]*entry{}
	fs.VisitAll(func(f *flag.Flag) {
		key := f.Usage
		if e, ok := seen[key]; ok && !strings.HasPrefix(f.Usage, "negates") {
			e.names = append(e.names, f.Name)
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		e := &entry{names: []string{f.Name}, usage: usage}
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool {
			e.arg = " " + strings.ToUpper(arg)
		}
		seen[key] = e
		list = append(list, e)
	})
	for _, e := range list {
		sort.Slice(e.names, func(i, j int) bool { return len(e.names[i]) < len(e.names[j]) })
		var ns []string
		for _, n := range e.names {
			if len(n) == 1 {
				ns = append(ns, "-"+n)
			} else {
				ns = append(ns, "--"+n)
			}
		}
		fmt.Fprintf(w, "  %s%s\n        %s\n", strings.Join(ns, ", "), e.arg, e.usage)
	}
}
