package main

import (
	"flag"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// This file holds the block device commands of rpc.py's
// python/spdk/cli/bdev.py and bdev_nvme.py (the virtio ones are in
// vhost.go, as in rpc.py), and pyArgs, the argparse look-alike that the
// bdev, vhost and nvmf commands are declared with.
//
// # Declaring a command like rpc.py does
//
// Each argument is declared in the order rpc.py's add_argument calls
// make them, with the same dest, option names, type and action:
//
//	cmd("bdev_aio_create", "Add a bdev with aio backend", PrintJSON, func(p *pyArgs) func() (any, error) {
//		p.pos("filename", argStr, "Path to device or file (ex: /dev/sda)")
//		p.pos("name", argStr, "Block device name")
//		p.pos("block_size", argInt, "Block size for this bdev").opt()
//		p.flag("readonly", "r,readonly", argStoreTrue, "Set this bdev as read-only")
//		return func() (any, error) { return p.params("filename", "name", "block_size", "readonly"), nil }
//	})
//
// The returned function builds the params once the positional arguments
// are parsed: p.params lists the keys in the order rpc.py passes them to
// the client (dropping unset ones, as rpc.py's remove_null does), p.all
// gives them in declaration order (rpc.py's strip_globals(vars(args))),
// and applyDefaults / groupAs mirror rpc.py's helpers of the same names.
//
// Where hpctl differs from argparse: flags are Go flags (no abbreviated
// long options, no -bName), a negative number as a positional argument
// needs "--" before it, and the checks rpc.py makes itself after parsing
// (bdev_null_create's --dif-type without --md-size, nvmf_create_transport's
// mask names), which exit 1 there, are usage errors (status 2) here.

// argKind is how an argument is read: argparse's type= and action=.
type argKind int

const (
	// argStr is a string (argparse's default type).
	argStr argKind = iota
	// argInt is type=int: Python int() syntax, sent as a JSON integer.
	argInt
	// argFloat is type=float; used only to compute other params.
	argFloat
	// argStoreTrue is action='store_true': always sent, false by default.
	argStoreTrue
	// argStoreFalse is action='store_false': always sent, true by default.
	argStoreFalse
	// argOptBool is action=BooleanOptionalAction (--x and --no-x): sent
	// only when one of them is given.
	argOptBool
	// argList is type=partial(str.split, sep=','): a JSON array of strings.
	argList
)

// pyArg is one declared argument.
type pyArg struct {
	dest     string
	names    []string // option names without dashes; nil for a positional
	kind     argKind
	required bool
	optional bool // a positional with nargs='?'
	ours     bool // a Hyperpath extension rpc.py's parser does not have
	choices  []string

	raw   string // the text given (argStr, argInt, argFloat, argList)
	b     bool   // argStoreTrue, argStoreFalse, argOptBool
	given bool
}

// req marks an option required=True.
func (a *pyArg) req() *pyArg { a.required = true; return a }

// extension marks an option rpc.py does not have (the parity test skips
// it).
func (a *pyArg) extension() *pyArg { a.ours = true; return a }

// opt marks a positional nargs='?'.
func (a *pyArg) opt() *pyArg { a.optional = true; return a }

// label is the argument as argparse names it in errors: "name" or
// "-b/--name".
func (a *pyArg) label() string {
	if a.names == nil {
		return a.dest
	}
	var ns []string
	for _, n := range a.names {
		ns = append(ns, dashed(n))
		if a.kind == argOptBool && len(n) > 1 {
			ns = append(ns, "--no-"+n)
		}
	}
	return strings.Join(ns, "/")
}

func dashed(n string) string {
	if len(n) == 1 {
		return "-" + n
	}
	return "--" + n
}

// set validates and stores s as the argument's value.
func (a *pyArg) set(s string) error {
	switch a.kind {
	case argInt:
		if _, ok := pyInt(s); !ok {
			return fmt.Errorf("argument %s: invalid int value: %s", a.label(), pyRepr(s))
		}
	case argFloat:
		if _, ok := pyFloat(s); !ok {
			return fmt.Errorf("argument %s: invalid float value: %s", a.label(), pyRepr(s))
		}
	}
	if a.choices != nil {
		// argparse compares the converted value and shows the choices
		// as Python reprs: quoted strings, bare ints.
		v, show := s, pyRepr
		if a.kind == argInt {
			v, _ = pyInt(s)
			show = func(s string) string { return s }
		}
		if !slices.Contains(a.choices, v) {
			var cs []string
			for _, c := range a.choices {
				cs = append(cs, show(c))
			}
			return fmt.Errorf("argument %s: invalid choice: %s (choose from %s)", a.label(), show(v), strings.Join(cs, ", "))
		}
	}
	a.raw, a.given = s, true
	return nil
}

// value is the argument as rpc.py passes it to the client: nil when not
// given (remove_null drops it).
func (a *pyArg) value() any {
	switch a.kind {
	case argStoreTrue, argStoreFalse:
		return a.b
	case argOptBool:
		if !a.given {
			return nil
		}
		return a.b
	}
	if !a.given {
		return nil
	}
	switch a.kind {
	case argInt:
		n, _ := pyInt(a.raw)
		return jsonInt(n)
	case argFloat:
		f, _ := pyFloat(a.raw)
		return f
	case argList:
		return strings.Split(a.raw, ",")
	}
	return a.raw
}

// jsonInt is a decimal integer of any size, written as a JSON number.
type jsonInt string

// MarshalJSON implements json.Marshaler.
func (n jsonInt) MarshalJSON() ([]byte, error) { return []byte(n), nil }

// argBool is the flag.Value of a boolean option; neg is set for
// store_false and for the --no- form of a BooleanOptionalAction.
type argBool struct {
	a   *pyArg
	neg bool
}

func (v argBool) String() string {
	if v.a == nil {
		return "false"
	}
	return strconv.FormatBool(v.a.b)
}

func (v argBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	v.a.b, v.a.given = b != v.neg, true
	return nil
}

func (v argBool) IsBoolFlag() bool { return true }

// pyArgs is one command's arguments, declared like its argparse parser in
// rpc.py.
type pyArgs struct {
	fs     *flag.FlagSet
	list   []*pyArg
	byDest map[string]*pyArg
	byFlag map[string]*pyArg // option name (no dashes) to argument
	excl   [][2]string       // mutually exclusive dests
}

func newPyArgs(fs *flag.FlagSet) *pyArgs {
	return &pyArgs{fs: fs, byDest: map[string]*pyArg{}, byFlag: map[string]*pyArg{}}
}

func (p *pyArgs) add(a *pyArg) *pyArg {
	if _, dup := p.byDest[a.dest]; dup {
		panic("hpctl: argument " + a.dest + " declared twice")
	}
	p.list = append(p.list, a)
	p.byDest[a.dest] = a
	return a
}

// pos declares a positional argument. help is rpc.py's text, kept with
// the declaration; -h shows only the positional names (a Command has no
// place for their descriptions).
func (p *pyArgs) pos(dest string, kind argKind, help string) *pyArg {
	return p.add(&pyArg{dest: dest, kind: kind})
}

// flag declares an option under comma-separated names ("b,name" gives -b
// and --name) storing into dest.
func (p *pyArgs) flag(dest, names string, kind argKind, help string) *pyArg {
	a := p.add(&pyArg{dest: dest, names: strings.Split(names, ","), kind: kind})
	if kind == argStoreFalse {
		a.b = true
	}
	// Valued options are plain string flags (so -h shows STRING, or the
	// type named in back quotes); parse checks what was given.
	switch kind {
	case argInt:
		help += " (`int`)"
	case argFloat:
		help += " (`float`)"
	}
	for _, n := range a.names {
		p.byFlag[n] = a
		switch kind {
		case argStoreTrue, argOptBool:
			p.fs.Var(argBool{a: a}, n, help)
		case argStoreFalse:
			p.fs.Var(argBool{a: a, neg: true}, n, help)
		default:
			p.fs.StringVar(&a.raw, n, "", help)
		}
	}
	if kind == argOptBool {
		for _, n := range a.names {
			if len(n) > 1 {
				p.fs.Var(argBool{a: a, neg: true}, "no-"+n, "negates --"+n)
			}
		}
	}
	return a
}

// choice declares an option (or, with names "", a positional) that takes
// one of choices.
func (p *pyArgs) choice(dest, names string, kind argKind, help string, choices ...string) *pyArg {
	help += " (one of: " + strings.Join(choices, ", ") + ")"
	var a *pyArg
	if names == "" {
		a = p.pos(dest, kind, help)
	} else {
		a = p.flag(dest, names, kind, help)
	}
	a.choices = choices
	return a
}

// exclusive puts two options in a mutually exclusive group.
func (p *pyArgs) exclusive(a, b string) { p.excl = append(p.excl, [2]string{a, b}) }

// synopsis is the positional part of the usage line: "<a> <b> [<c>]".
func (p *pyArgs) synopsis() string {
	var s []string
	for _, a := range p.list {
		if a.names != nil {
			continue
		}
		if a.optional {
			s = append(s, "[<"+a.dest+">]")
		} else {
			s = append(s, "<"+a.dest+">")
		}
	}
	return strings.Join(s, " ")
}

// parse takes the positional arguments and checks what argparse checks:
// types and choices, required arguments (reported together, in
// declaration order), extra arguments and mutually exclusive options.
func (p *pyArgs) parse(args []string) error {
	var err error
	p.fs.Visit(func(f *flag.Flag) {
		a := p.byFlag[f.Name]
		if a == nil || a.given || err != nil {
			return // not ours (--json), a bool (already marked), or failed
		}
		err = a.set(a.raw)
	})
	if err != nil {
		return err
	}
	var missing []string
	for _, a := range p.list {
		if a.names == nil {
			if len(args) > 0 {
				if err := a.set(args[0]); err != nil {
					return err
				}
				args = args[1:]
				continue
			}
			if !a.optional {
				missing = append(missing, a.label())
			}
			continue
		}
		if a.required && !a.given {
			missing = append(missing, a.label())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the following arguments are required: %s", strings.Join(missing, ", "))
	}
	if len(args) > 0 {
		return fmt.Errorf("unrecognized arguments: %s", strings.Join(args, " "))
	}
	for _, x := range p.excl {
		a, b := p.byDest[x[0]], p.byDest[x[1]]
		if a.given && b.given {
			return fmt.Errorf("argument %s: not allowed with argument %s", b.label(), a.label())
		}
	}
	return nil
}

// get is the value of dest as rpc.py passes it (nil: not given).
func (p *pyArgs) get(dest string) any {
	a, ok := p.byDest[dest]
	if !ok {
		panic("hpctl: no argument " + dest)
	}
	return a.value()
}

// given reports whether dest was given on the command line.
func (p *pyArgs) given(dest string) bool { return p.byDest[dest].given }

// params is {key: value} for each dest, in that order, without the unset
// ones; nil when none is set (rpc.py then sends no params).
func (p *pyArgs) params(dests ...string) any {
	var o orderedParams
	for _, d := range dests {
		o = append(o, kv(d, p.get(d)))
	}
	return finish(o)
}

// all is every argument in declaration order, unset ones included (as
// nil): rpc.py's strip_globals(vars(args)). Pass it through finish.
func (p *pyArgs) all() orderedParams {
	var o orderedParams
	for _, a := range p.list {
		o = append(o, kv(a.dest, a.value()))
	}
	return o
}

func kv(k string, v any) struct {
	Key   string
	Value any
} {
	return struct {
		Key   string
		Value any
	}{k, v}
}

// finish drops nil values (rpc.py's remove_null, which also reaches into
// nothing nested) and returns nil for an empty object.
func finish(o orderedParams) any {
	var out orderedParams
	for _, e := range o {
		if e.Value != nil {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// applyDefaults is rpc.py's apply_defaults: {**defaults, **params}. The
// defaults' keys come first, taking the params' values where they have
// the key.
func applyDefaults(o orderedParams, defaults orderedParams) orderedParams {
	out := append(orderedParams(nil), defaults...)
	for _, e := range o {
		found := false
		for i := range out {
			if out[i].Key == e.Key {
				out[i].Value, found = e.Value, true
				break
			}
		}
		if !found {
			out = append(out, e)
		}
	}
	return out
}

// groupAs is rpc.py's group_as: the set values among keys move, in their
// order in o, into a nested object under name, appended at the end; unset
// ones are dropped.
func groupAs(o orderedParams, name string, keys ...string) orderedParams {
	var group, rest orderedParams
	for _, e := range o {
		in := false
		for _, k := range keys {
			in = in || e.Key == k
		}
		switch {
		case !in:
			rest = append(rest, e)
		case e.Value != nil:
			group = append(group, e)
		}
	}
	if len(group) > 0 {
		rest = append(rest, kv(name, group))
	}
	return rest
}

// setParam replaces key's value in o (keeping its place) or appends it.
func setParam(o orderedParams, key string, v any) orderedParams {
	for i := range o {
		if o[i].Key == key {
			o[i].Value = v
			return o
		}
	}
	return append(o, kv(key, v))
}

// argSpecs holds each pyArgs command's declarations, so that tests can
// hold them against rpc.py's parsers.
var argSpecs = map[string]func(p *pyArgs) func() (any, error){}

// cmd defines a command whose arguments spec declares (see pyArgs). The
// positional synopsis for --help comes from the declarations.
func cmd(name, help string, print Printer, spec func(p *pyArgs) func() (any, error)) Command {
	probe := newPyArgs(flag.NewFlagSet(name, flag.ContinueOnError))
	spec(probe)
	argSpecs[name] = spec
	return Command{
		Name:  name,
		Args:  probe.synopsis(),
		Help:  help,
		Print: print,
		Params: func(fs *flag.FlagSet) ParamsFunc {
			p := newPyArgs(fs)
			build := spec(p)
			return func(args []string) (any, error) {
				if err := p.parse(args); err != nil {
					return nil, err
				}
				return build()
			}
		},
	}
}

// nameOnly is a command whose single positional argument is sent as
// {dest: value} and whose result is not printed (the *_delete commands).
func nameOnly(method, help, dest, argHelp string) Command {
	return cmd(method, help, nil, func(p *pyArgs) func() (any, error) {
		p.pos(dest, argStr, argHelp)
		return func() (any, error) { return p.params(dest), nil }
	})
}

// pyRepr quotes s as Python's repr does for a plain string.
func pyRepr(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

// pyInt parses s as Python's int() does (surrounding whitespace, a sign,
// decimal digits with single underscores between them) and returns it in
// canonical decimal form.
func pyInt(s string) (string, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	digits, ok := pyDigits(s)
	if !ok {
		return "", false
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "0", true
	}
	if neg {
		digits = "-" + digits
	}
	return digits, true
}

// pyDigits strips the underscores of a run of decimal digits, which
// Python allows one at a time between digits.
func pyDigits(s string) (string, bool) {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '_' && s[i-1] != '_':
		default:
			return "", false
		}
	}
	return b.String(), true
}

// pyFloat parses s as Python's float() does, for the decimal forms
// (digits with underscores, exponent, inf, nan; no hexadecimal).
func pyFloat(s string) (float64, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	lower := strings.ToLower(strings.TrimLeft(s, "+-"))
	switch lower {
	case "inf", "infinity", "nan":
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	}
	if strings.ContainsAny(lower, "xp") {
		return 0, false
	}
	// Underscores: only between digits.
	clean := strings.Builder{}
	for i := 0; i < len(s); i++ {
		if s[i] == '_' {
			if i == 0 || i == len(s)-1 || !isDigit(s[i-1]) || !isDigit(s[i+1]) {
				return 0, false
			}
			continue
		}
		clean.WriteByte(s[i])
	}
	f, err := strconv.ParseFloat(clean.String(), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// floorDivInt is Python's a // b on integers.
func floorDivInt(a, b string) (jsonInt, error) {
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	if y.Sign() == 0 {
		return "", fmt.Errorf("integer division or modulo by zero (block_size is 0)")
	}
	q, m := new(big.Int).QuoRem(x, y, new(big.Int))
	if m.Sign() != 0 && (m.Sign() < 0) != (y.Sign() < 0) {
		q.Sub(q, big.NewInt(1))
	}
	return jsonInt(q.String()), nil
}

// floorDivFloat is Python's int(a // b) for a float a and an int b.
func floorDivFloat(a float64, b string) (jsonInt, error) {
	bi, _ := new(big.Int).SetString(b, 10)
	w, _ := new(big.Float).SetInt(bi).Float64()
	if w == 0 {
		return "", fmt.Errorf("float floor division by zero (block_size is 0)")
	}
	if math.IsInf(w, 0) {
		return "", fmt.Errorf("int too large to convert to float")
	}
	// CPython's float_floor_div.
	mod := math.Mod(a, w)
	div := (a - mod) / w
	if mod != 0 && (w < 0) != (mod < 0) {
		div -= 1
	}
	var q float64
	if div != 0 {
		q = math.Floor(div)
		if div-q > 0.5 {
			q += 1
		}
	}
	if math.IsInf(q, 0) {
		return "", fmt.Errorf("cannot convert float infinity to integer")
	}
	if math.IsNaN(q) {
		return "", fmt.Errorf("cannot convert float NaN to integer")
	}
	n, _ := big.NewFloat(q).Int(nil)
	return jsonInt(n.String()), nil
}

// sizeMB is rpc.py's num_blocks = (total_size * 1024 * 1024) // block_size.
func sizeMB(p *pyArgs) (jsonInt, error) {
	bs := p.byDest["block_size"].raw
	bsn, _ := pyInt(bs)
	ts := p.byDest["total_size"]
	if ts.kind == argFloat {
		f, _ := pyFloat(ts.raw)
		return floorDivFloat(f*1024*1024, bsn)
	}
	n, _ := pyInt(ts.raw)
	x, _ := new(big.Int).SetString(n, 10)
	x.Mul(x, big.NewInt(1024*1024))
	return floorDivInt(x.String(), bsn)
}

var resetModes = []string{"all", "maxmin", "error", "none"}

func init() {
	register(
		cmd("bdev_set_options", "Set options of bdev subsystem", nil, func(p *pyArgs) func() (any, error) {
			p.flag("bdev_io_pool_size", "p,bdev-io-pool-size", argInt, "Number of bdev_io structures in shared buffer pool")
			p.flag("bdev_io_cache_size", "c,bdev-io-cache-size", argInt, "Maximum number of bdev_io structures cached per thread")
			p.flag("bdev_auto_examine", "auto-examine", argOptBool, "Enable or disable auto examine")
			p.flag("iobuf_small_cache_size", "iobuf-small-cache-size", argInt, "Size of the small iobuf per thread cache")
			p.flag("iobuf_large_cache_size", "iobuf-large-cache-size", argInt, "Size of the large iobuf per thread cache")
			return func() (any, error) {
				return p.params("bdev_io_pool_size", "bdev_io_cache_size", "bdev_auto_examine",
					"iobuf_small_cache_size", "iobuf_large_cache_size"), nil
			}
		}),
		cmd("bdev_examine", "examine a bdev if it exists, or will examine it after it is created", nil, func(p *pyArgs) func() (any, error) {
			p.flag("name", "b,name", argStr, "Name or alias of the bdev").req()
			return func() (any, error) { return p.params("name"), nil }
		}),
		Command{Name: "bdev_wait_for_examine", Help: "Report when all bdevs have been examined"},

		cmd("bdev_malloc_create", "Create a bdev with malloc backend", PrintJSON, func(p *pyArgs) func() (any, error) {
			p.flag("name", "b,name", argStr, "Name of the bdev")
			p.flag("uuid", "u,uuid", argStr, "UUID of the bdev (optional)")
			p.pos("total_size", argFloat, "Size of malloc bdev in MB (float > 0)")
			p.pos("block_size", argInt, "Data block size for this bdev")
			p.flag("physical_block_size", "p,physical-block-size", argInt, "Physical block size for this bdev.")
			p.flag("optimal_io_boundary", "o,optimal-io-boundary", argInt, "Split on optimal IO boundary, in number of blocks, default 0 (disabled)")
			p.flag("md_size", "m,md-size", argInt, "Metadata size for this bdev (0, 8, 16, 32, 64, or 128). Default is 0.")
			p.flag("md_interleave", "i,md-interleave", argStoreTrue, "Metadata location, interleaved if set, and separated if omitted.")
			p.choice("dif_type", "t,dif-type", argInt, "Protection information type. Parameter --md-size needs to be set along --dif-type. Default=0 - no protection.", "0", "1", "2", "3")
			p.flag("dif_is_head_of_md", "d,dif-is-head-of-md", argStoreTrue, "Protection information is in the first 8 bytes of metadata. Default=false.")
			p.choice("dif_pi_format", "f,dif-pi-format", argInt, "Protection information format. Parameter --dif-type needs to be set together. 0=16b Guard PI, 1=32b Guard PI, 2=64b Guard PI. Default=0.", "0", "1", "2")
			p.flag("numa_id", "n,numa-id", argInt, "NUMA node ID where memory is allocated, if -1 then any NUMA node ID can be used. Default is -1.")
			return func() (any, error) {
				nb, err := sizeMB(p)
				if err != nil {
					return nil, err
				}
				o := orderedParams{kv("num_blocks", nb)}
				for _, d := range []string{"block_size", "physical_block_size", "name", "uuid", "optimal_io_boundary",
					"md_size", "md_interleave", "dif_type", "dif_is_head_of_md", "dif_pi_format", "numa_id"} {
					o = append(o, kv(d, p.get(d)))
				}
				return finish(o), nil
			}
		}),
		nameOnly("bdev_malloc_delete", "Delete a malloc disk", "name", "malloc bdev name"),

		cmd("bdev_null_create", "Add a bdev with null backend", PrintJSON, func(p *pyArgs) func() (any, error) {
			p.pos("name", argStr, "Block device name")
			p.flag("uuid", "u,uuid", argStr, "UUID of the bdev (optional)")
			p.pos("total_size", argInt, "Size of null bdev in MB (int > 0). Includes only data blocks.")
			p.pos("block_size", argInt, "Data block size for this bdev.")
			p.flag("physical_block_size", "p,physical-block-size", argInt, "Physical block size for this bdev.")
			p.flag("md_size", "m,md-size", argInt, "Metadata size for this bdev. Default=0.")
			p.choice("dif_type", "t,dif-type", argInt, "Protection information type. Parameter --md-size needs to be set along --dif-type. Default=0 - no protection.", "0", "1", "2", "3")
			p.flag("dif_is_head_of_md", "d,dif-is-head-of-md", argStoreTrue, "Protection information is in the first 8 bytes of metadata. Default=false.")
			p.choice("dif_pi_format", "f,dif-pi-format", argInt, "Protection information format. Parameter --dif-type needs to be set together. 0=16b Guard PI, 1=32b Guard PI, 2=64b Guard PI. Default=0.", "0", "1", "2")
			p.flag("preferred_write_alignment", "a,preferred-write-alignment", argInt, "Preferred write alignment in blocks.")
			p.flag("preferred_write_granularity", "g,preferred-write-granularity", argInt, "Preferred write granularity in blocks.")
			p.flag("optimal_write_size", "s,optimal-write-size", argInt, "Optimal write size in blocks.")
			p.flag("preferred_unmap_alignment", "c,preferred-unmap-alignment", argInt, "Preferred unmap alignment in blocks.")
			p.flag("preferred_unmap_granularity", "r,preferred-unmap-granularity", argInt, "Preferred unmap granularity in blocks.")
			return func() (any, error) {
				nb, err := sizeMB(p)
				if err != nil {
					return nil, err
				}
				// rpc.py refuses a non-zero --dif-type without --md-size
				// (it prints this and exits 1; here it is a usage error).
				dt, _ := p.get("dif_type").(jsonInt)
				md, _ := p.get("md_size").(jsonInt)
				if dt != "" && dt != "0" && (md == "" || md == "0") {
					return nil, fmt.Errorf("ERROR: --md-size must be > 0 when --dif-type is > 0")
				}
				o := orderedParams{kv("num_blocks", nb)}
				for _, d := range []string{"block_size", "physical_block_size", "name", "uuid", "md_size", "dif_type",
					"dif_is_head_of_md", "dif_pi_format", "preferred_write_alignment", "preferred_write_granularity",
					"optimal_write_size", "preferred_unmap_alignment", "preferred_unmap_granularity"} {
					o = append(o, kv(d, p.get(d)))
				}
				return finish(o), nil
			}
		}),
		nameOnly("bdev_null_delete", "Delete a null bdev", "name", "null bdev name"),

		cmd("bdev_aio_create", "Add a bdev with aio backend", PrintJSON, func(p *pyArgs) func() (any, error) {
			p.pos("filename", argStr, "Path to device or file (ex: /dev/sda)")
			p.pos("name", argStr, "Block device name")
			p.pos("block_size", argInt, "Block size for this bdev").opt()
			p.flag("readonly", "r,readonly", argStoreTrue, "Set this bdev as read-only")
			p.flag("fallocate", "fallocate", argStoreTrue, "Support unmap/writezeros by fallocate")
			p.flag("uuid", "u,uuid", argStr, "UUID of the bdev (optional)")
			p.flag("nowait", "no-wait", argStoreTrue, "Enable the RWF_NOWAIT flag for block devices (creation fails on anything but a block device)")
			return func() (any, error) {
				return p.params("filename", "name", "block_size", "readonly", "fallocate", "uuid", "nowait"), nil
			}
		}),
		nameOnly("bdev_aio_delete", "Delete an aio disk", "name", "aio bdev name"),

		cmd("bdev_uring_create", "Create a bdev with io_uring backend", PrintJSON, func(p *pyArgs) func() (any, error) {
			p.pos("filename", argStr, "Path to device or file (ex: /dev/nvme0n1)")
			p.pos("name", argStr, "bdev name")
			p.pos("block_size", argInt, "Block size for this bdev").opt()
			p.flag("uuid", "u,uuid", argStr, "UUID of the bdev")
			return func() (any, error) { return p.params("filename", "name", "block_size", "uuid"), nil }
		}),
		nameOnly("bdev_uring_delete", "Delete a uring bdev", "name", "uring bdev name"),

		cmd("bdev_delay_create", "Add a delay bdev on existing bdev", PrintJSON, func(p *pyArgs) func() (any, error) {
			p.flag("base_bdev_name", "b,base-bdev-name", argStr, "Name of the existing bdev").req()
			p.flag("name", "d,name", argStr, "Name of the delay bdev").req()
			p.flag("uuid", "u,uuid", argStr, "UUID of the bdev (optional)")
			p.flag("avg_read_latency", "r,avg-read-latency", argInt, "Average latency to apply before completing read ops (in microseconds)").req()
			p.flag("p99_read_latency", "t,nine-nine-read-latency", argInt, "latency to apply to 1 in 100 read ops (in microseconds)").req()
			p.flag("avg_write_latency", "w,avg-write-latency", argInt, "Average latency to apply before completing write ops (in microseconds)").req()
			p.flag("p99_write_latency", "n,nine-nine-write-latency", argInt, "latency to apply to 1 in 100 write ops (in microseconds)").req()
			return func() (any, error) {
				return p.params("base_bdev_name", "name", "uuid", "avg_read_latency", "p99_read_latency",
					"avg_write_latency", "p99_write_latency"), nil
			}
		}),
		nameOnly("bdev_delay_delete", "Delete a delay bdev", "name", "delay bdev name"),
		cmd("bdev_delay_update_latency", "Update one of the latency values for a given delay bdev", PrintJSON, func(p *pyArgs) func() (any, error) {
			p.pos("delay_bdev_name", argStr, "The name of the given delay bdev")
			p.choice("latency_type", "", argStr, "Latency bucket to update", "avg_read", "avg_write", "p99_read", "p99_write")
			p.pos("latency_us", argInt, "new latency value in microseconds.")
			return func() (any, error) { return p.params("delay_bdev_name", "latency_type", "latency_us"), nil }
		}),

		cmd("bdev_error_create", "Add bdev with error injection backend", PrintJSON, func(p *pyArgs) func() (any, error) {
			p.pos("base_name", argStr, "base bdev name")
			p.flag("uuid", "uuid", argStr, "UUID for this bdev")
			return func() (any, error) { return p.params("base_name", "uuid"), nil }
		}),
		nameOnly("bdev_error_delete", "Delete an error bdev", "name", "error bdev name"),
		cmd("bdev_error_inject_error", "bdev inject error", nil, func(p *pyArgs) func() (any, error) {
			p.pos("name", argStr, "the name of the error injection bdev")
			p.choice("io_type", "", argStr, "IO type", "clear", "read", "write", "unmap", "flush", "all")
			p.choice("error_type", "", argStr, "Error type", "failure", "nvme_failure", "pending", "corrupt_data", "nomem")
			p.flag("nvme_sct", "nvme-sct", argInt, "The NVMe SCT error for 'nvme_failure' type. Default is 0.")
			p.flag("nvme_sc", "nvme-sc", argInt, "The NVMe SC error for 'nvme_failure' type. Default is 0.")
			p.flag("num", "n,num", argInt, "the number of commands you want to fail")
			p.flag("queue_depth", "q,queue-depth", argInt, "the queue depth at which to trigger the error")
			p.flag("corrupt_offset", "o,corrupt-offset", argInt, "the offset in bytes to xor with corrupt_value")
			p.flag("corrupt_value", "v,corrupt-value", argInt, "the value for xor (1-255, 0 is invalid)")
			return func() (any, error) {
				return p.params("name", "io_type", "error_type", "nvme_sct", "nvme_sc", "num", "queue_depth",
					"corrupt_offset", "corrupt_value"), nil
			}
		}),

		cmd("bdev_get_bdevs", "Display current blockdev list or required blockdev", PrintDict, func(p *pyArgs) func() (any, error) {
			p.flag("name", "b,name", argStr, "Name of the Blockdev. Example: Nvme0n1")
			p.flag("timeout", "t,timeout-ms", argInt, "Time in ms to wait for the bdev to appear (only used with the -b|--name option). The default timeout is 0, meaning the RPC returns immediately whether the bdev exists or not.")
			return func() (any, error) { return p.params("name", "timeout"), nil }
		}),
		cmd("bdev_get_iostat", "Display current I/O statistics of all the blockdevs or specified blockdev.", PrintDict, func(p *pyArgs) func() (any, error) {
			p.flag("per_channel", "c,per-channel", argStoreTrue, "Display per channel IO stats for specified device")
			p.choice("reset_mode", "reset-mode", argStr, "Mode to reset I/O statistics after getting", resetModes...)
			p.flag("names", "names", argList, "Bdev names to obtain I/O statistics from, comma-separated list in quotes")
			return func() (any, error) { return p.params("per_channel", "reset_mode", "names"), nil }
		}),
		cmd("bdev_reset_iostat", "Reset I/O statistics of all the blockdevs or specified blockdev.", nil, func(p *pyArgs) func() (any, error) {
			p.flag("name", "b,name", argStr, "Name of the Blockdev. Example: Nvme0n1")
			p.choice("mode", "m,mode", argStr, "Mode to reset I/O statistics", resetModes...)
			return func() (any, error) { return p.params("name", "mode"), nil }
		}),
		cmd("bdev_enable_histogram", "Enable or disable histogram for specified bdev", nil, func(p *pyArgs) func() (any, error) {
			p.flag("enable", "histogram", argOptBool, "Enable or disable histograms on specified device").req()
			p.flag("opc", "o,opc", argStr, "Enable histogram for specified io type. Defaults to all io types if not specified. Refer to bdev_get_bdevs RPC for the list of io types.")
			p.flag("granularity", "granularity", argInt, "Histogram bucket granularity.")
			p.flag("min_nsec", "min-nsec", argInt, "Histogram min value in nanoseconds.")
			p.flag("max_nsec", "max-nsec", argInt, "Histogram max value in nanoseconds.")
			p.pos("name", argStr, "bdev name")
			return func() (any, error) {
				return p.params("name", "enable", "opc", "granularity", "min_nsec", "max_nsec"), nil
			}
		}),
		cmd("bdev_get_histogram", "Get histogram for specified bdev", PrintDict, func(p *pyArgs) func() (any, error) {
			p.pos("name", argStr, "bdev name")
			return func() (any, error) { return p.params("name"), nil }
		}),
		cmd("bdev_set_qos_limit", "Set QoS rate limit on a blockdev", nil, func(p *pyArgs) func() (any, error) {
			p.pos("name", argStr, "Blockdev name to set QoS. Example: Malloc0")
			p.flag("rw_ios_per_sec", "rw-ios-per-sec", argInt, "R/W IOs per second limit (>=1000, example: 20000). 0 means unlimited.")
			p.flag("rw_mbytes_per_sec", "rw-mbytes-per-sec", argInt, "R/W megabytes per second limit (>=1, example: 100). 0 means unlimited.")
			p.flag("r_mbytes_per_sec", "r-mbytes-per-sec", argInt, "Read megabytes per second limit (>=1, example: 100). 0 means unlimited.")
			p.flag("w_mbytes_per_sec", "w-mbytes-per-sec", argInt, "Write megabytes per second limit (>=1, example: 100). 0 means unlimited.")
			return func() (any, error) {
				return p.params("name", "rw_ios_per_sec", "rw_mbytes_per_sec", "r_mbytes_per_sec", "w_mbytes_per_sec"), nil
			}
		}),

		// bdev_nvme.py
		cmd("bdev_nvme_attach_controller", "Add bdevs with nvme backend", PrintArray, func(p *pyArgs) func() (any, error) {
			p.flag("name", "b,name", argStr, "Name of the NVMe controller, prefix for each bdev name").req()
			p.flag("trtype", "t,trtype", argStr, "NVMe-oF target trtype: e.g., rdma, pcie").req()
			p.flag("traddr", "a,traddr", argStr, "NVMe-oF target address: e.g., an ip address or BDF").req()
			p.flag("adrfam", "f,adrfam", argStr, "NVMe-oF target adrfam: e.g., ipv4, ipv6, ib, fc, intra_host")
			p.flag("trsvcid", "s,trsvcid", argStr, "NVMe-oF target trsvcid: e.g., a port number")
			p.flag("priority", "p,priority", argStr, "NVMe-oF connection priority: e.g., a priority number")
			p.flag("subnqn", "n,subnqn", argStr, "NVMe-oF target subnqn")
			p.flag("hostnqn", "q,hostnqn", argStr, "NVMe-oF host subnqn")
			p.flag("hostaddr", "i,hostaddr", argStr, "NVMe-oF host address: e.g., an ip address")
			p.flag("hostsvcid", "c,hostsvcid", argStr, "NVMe-oF host svcid: e.g., a port number")
			p.flag("prchk_reftag", "r,prchk-reftag", argStoreTrue, "Enable checking of PI reference tag for I/O processing.")
			p.flag("prchk_guard", "g,prchk-guard", argStoreTrue, "Enable checking of PI guard for I/O processing.")
			p.flag("hdgst", "e,hdgst", argStoreTrue, "Enable TCP header digest.")
			p.flag("ddgst", "d,ddgst", argStoreTrue, "Enable TCP data digest.")
			p.flag("fabrics_connect_timeout_us", "fabrics-timeout", argInt, "Fabrics connect timeout in microseconds")
			p.choice("multipath", "x,multipath", argStr, "Set multipath behavior", "disable", "failover", "multipath")
			p.flag("num_io_queues", "num-io-queues", argInt, "Set the number of IO queues to request during initialization.")
			p.flag("ctrlr_loss_timeout_sec", "l,ctrlr-loss-timeout-sec", argInt, "Time to wait until ctrlr is reconnected before deleting ctrlr. -1 means infinite reconnect retries. 0 means no reconnect retry.")
			p.flag("reconnect_delay_sec", "o,reconnect-delay-sec", argInt, "Time to delay a reconnect retry.")
			p.flag("fast_io_fail_timeout_sec", "u,fast-io-fail-timeout-sec", argInt, "Time to wait until ctrlr is reconnected before failing I/O to ctrlr. 0 means no such timeout.")
			p.flag("psk", "k,psk", argStr, "Name of the pre-shared key to be used for TLS (Enables SSL socket implementation for TCP)")
			p.flag("max_bdevs", "m,max-bdevs", argInt, "The size of the name array for newly created bdevs. Default is 128")
			p.flag("dhchap_key", "dhchap-key", argStr, "DH-HMAC-CHAP key name")
			p.flag("dhchap_ctrlr_key", "dhchap-ctrlr-key", argStr, "DH-HMAC-CHAP controller key name")
			p.flag("allow_unrecognized_csi", "U,allow-unrecognized-csi", argStoreTrue, "Allow attaching namespaces with unrecognized command set identifiers. These will only support NVMe passthrough.")
			p.choice("policy", "policy", argStr, "Multipath policy", "active_passive", "active_active")
			p.choice("selector", "selector", argStr, "Multipath selector", "round_robin", "queue_depth")
			p.flag("min_io", "min-io", argInt, "Number of IO to route to a path before switching (round_robin selector only)")
			p.flag("disable_sq_flow_control", "disable-sq-flow-control", argStoreTrue, "Disable SQ flow control (set bit 2 of cattr in Fabrics Connect command).")
			return func() (any, error) {
				return finish(groupAs(p.all(), "multipath_opts", "policy", "selector", "min_io")), nil
			}
		}),
		cmd("bdev_nvme_get_controllers", "Display current NVMe controllers list or required NVMe controller", PrintDict, func(p *pyArgs) func() (any, error) {
			p.flag("name", "n,name", argStr, "Name of the NVMe controller. Example: Nvme0")
			return func() (any, error) { return p.params("name"), nil }
		}),
		cmd("bdev_nvme_detach_controller", "Detach an NVMe controller and delete any associated bdevs", nil, func(p *pyArgs) func() (any, error) {
			p.pos("name", argStr, "Name of the controller")
			p.flag("trtype", "t,trtype", argStr, "NVMe-oF target trtype: e.g., rdma, pcie")
			p.flag("traddr", "a,traddr", argStr, "NVMe-oF target address: e.g., an ip address or BDF")
			p.flag("adrfam", "f,adrfam", argStr, "NVMe-oF target adrfam: e.g., ipv4, ipv6, ib, fc, intra_host")
			p.flag("trsvcid", "s,trsvcid", argStr, "NVMe-oF target trsvcid: e.g., a port number")
			p.flag("subnqn", "n,subnqn", argStr, "NVMe-oF target subnqn")
			p.flag("hostaddr", "i,hostaddr", argStr, "NVMe-oF host address: e.g., an ip address")
			p.flag("hostsvcid", "c,hostsvcid", argStr, "NVMe-oF host svcid: e.g., a port number")
			return func() (any, error) {
				return p.params("name", "trtype", "traddr", "adrfam", "trsvcid", "subnqn", "hostaddr", "hostsvcid"), nil
			}
		}),
	)
}
