package main

import "flag"

// The framework commands of rpc.py's python/spdk/cli/app.py.
func init() {
	register(
		Command{
			Name: "rpc_get_methods",
			Help: "Get list of supported RPC methods",
			Params: func(fs *flag.FlagSet) ParamsFunc {
				var current, aliases bool
				BoolFlag(fs, &current, "c,current", "Return only RPC methods callable in the current state. Default: false")
				BoolFlag(fs, &aliases, "i,include-aliases", "Include deprecated method aliases in the result. Default: false")
				return func(args []string) (any, error) {
					if err := Args(args); err != nil {
						return nil, err
					}
					return orderedParams{{"current", current}, {"include_aliases", aliases}}, nil
				}
			},
			Print: PrintDict,
		},
		Command{
			Name: "spdk_kill_instance",
			Args: "<sig_name>",
			Help: "Send signal to instance (SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGKILL, SIGUSR1)",
			Params: func(fs *flag.FlagSet) ParamsFunc {
				return func(args []string) (any, error) {
					if err := Args(args, "sig_name"); err != nil {
						return nil, err
					}
					if err := Choice("sig_name", args[0], "SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1"); err != nil {
						return nil, err
					}
					return map[string]any{"sig_name": args[0]}, nil
				}
			},
		},
		Command{Name: "framework_start_init", Help: "Start initialization of subsystems"},
		Command{Name: "framework_wait_init", Help: "Block until subsystems have been initialized"},
		Command{Name: "framework_get_reactors", Help: "Display list of all reactors", Print: PrintDict},
		Command{Name: "thread_get_stats", Help: "Display current statistics of all the threads", Print: PrintDict},
		Command{Name: "thread_get_pollers", Help: "Display current pollers of all the threads", Print: PrintDict},
	)
}

// orderedParams is a params object whose keys keep the given order (a Go
// map would sort them; rpc.py sends them in argument order).
type orderedParams []struct {
	Key   string
	Value any
}

// MarshalJSON implements json.Marshaler.
func (o orderedParams) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, kv := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := jsonMarshal(kv.Key)
		if err != nil {
			return nil, err
		}
		v, err := jsonMarshal(kv.Value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}
