package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"hyperpath/rpc/client"
)

// The config commands of rpc.py's python/spdk/cli/misc.py.
func init() {
	register(
		Command{Name: "spdk_get_version", Help: "Get SPDK version", Print: PrintJSON},
		Command{
			Name:  "framework_get_subsystems",
			Help:  "Print subsystems array in initialization order, each with the subsystems it depends on",
			Print: PrintDict,
		},
		Command{
			Name: "framework_get_config",
			Args: "<name>",
			Help: "Print subsystem configuration",
			Params: func(fs *flag.FlagSet) ParamsFunc {
				withBatches := false
				OptionalBool(fs, &withBatches, "with-batches", "Keep batch arrays in output. Default: false (flatten into individual entries)")
				return func(args []string) (any, error) {
					if err := Args(args, "name"); err != nil {
						return nil, err
					}
					return orderedParams{{"name", args[0]}, {"with_batches", withBatches}}, nil
				}
			},
			Print: PrintDict,
		},
		Command{
			Name: "save_config",
			Help: "Write current (live) configuration of subsystems and targets to stdout",
			Custom: func(fs *flag.FlagSet) RunFunc {
				indent := 2
				subsystems := ""
				withBatches := false
				IntFlag(fs, &indent, "i,indent", "Indent level. Value less than 0 mean compact mode. Default indent level is 2.")
				StringFlag(fs, &subsystems, "s,subsystems", "Comma-separated list of subsystems (and their dependencies) to save")
				OptionalBool(fs, &withBatches, "with-batches", "Keep batch arrays in output; --no-with-batches flattens them (default)")
				return func(ctx context.Context, e *Env, args []string) error {
					if err := Args(args); err != nil {
						return err
					}
					var only []string
					if subsystems != "" {
						only = strings.Split(subsystems, ",")
					}
					cfg, err := client.SaveConfig(ctx, e, only, withBatches)
					if err != nil {
						return err
					}
					return dump(e.Stdout, cfg, indent)
				}
			},
		},
		Command{
			Name: "load_config",
			Help: "Configure subsystems and targets using JSON RPC (from -j or stdin)",
			Custom: func(fs *flag.FlagSet) RunFunc {
				aliases := false
				conf := ""
				BoolFlag(fs, &aliases, "i,include-aliases", "include RPC aliases")
				StringFlag(fs, &conf, "j,json-conf", "Valid JSON configuration (a file, or the JSON itself); default stdin")
				return func(ctx context.Context, e *Env, args []string) error {
					if err := Args(args); err != nil {
						return err
					}
					doc, err := readConf(e, conf)
					if err != nil {
						return err
					}
					return client.LoadConfig(ctx, e, doc, aliases)
				}
			},
		},
		Command{
			Name: "save_subsystem_config",
			Help: "Write current (live) configuration of one subsystem to stdout",
			Custom: func(fs *flag.FlagSet) RunFunc {
				indent := 2
				name := ""
				withBatches := false
				IntFlag(fs, &indent, "i,indent", "Indent level. Value less than 0 mean compact mode. Default indent level is 2.")
				StringFlag(fs, &name, "n,name", "Name of subsystem (required)")
				OptionalBool(fs, &withBatches, "with-batches", "Keep batch arrays in output; --no-with-batches flattens them (default)")
				return func(ctx context.Context, e *Env, args []string) error {
					if err := Args(args); err != nil {
						return err
					}
					if name == "" {
						return fmt.Errorf("the following arguments are required: -n/--name")
					}
					var raw json.RawMessage
					if err := e.Call(ctx, "framework_get_config", orderedParams{{"name", name}, {"with_batches", withBatches}}, &raw); err != nil {
						return err
					}
					return dump(e.Stdout, client.SubsystemConfig{Subsystem: name, Config: raw}, indent)
				}
			},
		},
		Command{
			Name: "load_subsystem_config",
			Help: "Configure one subsystem using JSON RPC (from -j or stdin)",
			Custom: func(fs *flag.FlagSet) RunFunc {
				conf := ""
				StringFlag(fs, &conf, "j,json-conf", "Valid JSON configuration (a file, or the JSON itself); default stdin")
				return func(ctx context.Context, e *Env, args []string) error {
					if err := Args(args); err != nil {
						return err
					}
					doc, err := readConf(e, conf)
					if err != nil {
						return err
					}
					return client.LoadSubsystemConfig(ctx, e, doc)
				}
			},
		},
	)
}

// dump writes v like rpc.py's json_dump: json.dump(indent) and "\n".
func dump(w io.Writer, v any, indent int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	out, err := pyDumps(b, indent)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// readConf reads -j like rpc.py's json_load: a file if the path exists,
// otherwise the argument itself as JSON; stdin when not given.
func readConf(e *Env, conf string) ([]byte, error) {
	if conf == "" {
		return io.ReadAll(e.Stdin)
	}
	if _, err := os.Stat(conf); err == nil {
		return os.ReadFile(conf)
	}
	if !json.Valid([]byte(conf)) {
		return nil, fmt.Errorf("-j %s: no such file, and not valid JSON", conf)
	}
	return []byte(conf), nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
