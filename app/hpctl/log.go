package main

import "flag"

var logLevels = []string{"ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"}

// The log commands of rpc.py's python/spdk/cli/log.py.
func init() {
	flagCmd := func(name, help string) Command {
		return Command{
			Name: name,
			Args: "<flag>",
			Help: help,
			Params: func(fs *flag.FlagSet) ParamsFunc {
				return func(args []string) (any, error) {
					if err := Args(args, "flag"); err != nil {
						return nil, err
					}
					return map[string]any{"flag": args[0]}, nil
				}
			},
		}
	}
	levelCmd := func(name, help string) Command {
		return Command{
			Name: name,
			Args: "<level>",
			Help: help + " (ERROR, WARNING, NOTICE, INFO, DEBUG)",
			Params: func(fs *flag.FlagSet) ParamsFunc {
				return func(args []string) (any, error) {
					if err := Args(args, "level"); err != nil {
						return nil, err
					}
					if err := Choice("level", args[0], logLevels...); err != nil {
						return nil, err
					}
					return map[string]any{"level": args[0]}, nil
				}
			},
		}
	}
	register(
		flagCmd("log_set_flag", `set log flag (a name, a glob, or "all")`),
		flagCmd("log_clear_flag", `clear log flag (a name, a glob, or "all")`),
		Command{Name: "log_get_flags", Help: "get log flags", Print: PrintDict},
		levelCmd("log_set_level", "set log level"),
		Command{Name: "log_get_level", Help: "get log level", Print: PrintDict},
		levelCmd("log_set_print_level", "set log print level"),
		Command{Name: "log_get_print_level", Help: "get log print level", Print: PrintDict},
	)
}
