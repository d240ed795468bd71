package rpc

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"syscall"

	"hyperpath/internal/logflag"
)

// Version is what spdk_get_version reports. rpc.py only prints it, so
// the shape is SPDK's and the text says which program answers.
type Version struct {
	Version             string // e.g. "SPDK v26.09-pre hyperpath 0.1.0"
	Major, Minor, Patch int
	Suffix              string // e.g. "-pre"
	Commit              string // optional; the "commit" field is omitted when empty
}

// DefaultVersion is the SPDK release whose RPC contract Hyperpath follows
// (RPC.md), with Hyperpath's own version in the text.
var DefaultVersion = Version{
	Version: "SPDK v26.09-pre hyperpath 0.1.0",
	Major:   26, Minor: 9, Patch: 0, Suffix: "-pre",
}

type versionFields struct {
	Major  int    `json:"major"`
	Minor  int    `json:"minor"`
	Patch  int    `json:"patch"`
	Suffix string `json:"suffix"`
	Commit string `json:"commit,omitempty"`
}

type versionJSON struct {
	Version string        `json:"version"`
	Fields  versionFields `json:"fields"`
}

// killSignals are the signals spdk_kill_instance accepts (schema enum
// kill_signal).
var killSignals = map[string]syscall.Signal{
	"SIGINT":  syscall.SIGINT,
	"SIGTERM": syscall.SIGTERM,
	"SIGQUIT": syscall.SIGQUIT,
	"SIGHUP":  syscall.SIGHUP,
	"SIGKILL": syscall.SIGKILL,
	"SIGUSR1": syscall.SIGUSR1,
}

func (s *Server) registerBuiltins() {
	both := Startup | Runtime

	// Error texts below are SPDK's, method by method (lib/rpc/rpc.c,
	// lib/init/subsystem_rpc.c, lib/event/app.c, app_rpc.c, log_rpc.c).
	s.Register("spdk_get_version", both, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := NoParams(p, "spdk_get_version method requires no parameters"); err != nil {
			return nil, err
		}
		v := s.version
		return versionJSON{Version: v.Version, Fields: versionFields{
			Major: v.Major, Minor: v.Minor, Patch: v.Patch, Suffix: v.Suffix, Commit: v.Commit}}, nil
	})

	s.Register("rpc_get_methods", both, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Current        bool `json:"current"`
			IncludeAliases bool `json:"include_aliases"`
		}
		if p != nil {
			if err := Decode(p, &req); err != nil {
				return nil, InvalidParams("Invalid parameters").WithCause(err)
			}
		}
		s.mu.RLock()
		defer s.mu.RUnlock()
		names := []string{}
		for i := len(s.order) - 1; i >= 0; i-- { // newest first, as SPDK's list
			m := s.order[i]
			if s.allow != nil && !s.allow[m.name] {
				continue
			}
			if m.aliasOf != nil && !req.IncludeAliases {
				continue
			}
			if req.Current && m.states&s.state != s.state {
				continue
			}
			names = append(names, m.name)
		}
		return names, nil
	})

	s.Register("framework_get_subsystems", Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := NoParams(p, "'framework_get_subsystems' requires no arguments"); err != nil {
			return nil, err
		}
		sorted, err := s.sortedSubsystems()
		if err != nil {
			return nil, Internal(err.Error())
		}
		type entry struct {
			Subsystem string   `json:"subsystem"`
			DependsOn []string `json:"depends_on"`
		}
		out := make([]entry, len(sorted))
		for i, ss := range sorted {
			out[i] = entry{Subsystem: ss.name, DependsOn: append([]string{}, ss.dependsOn...)}
		}
		return out, nil
	})

	s.Register("framework_get_config", Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name        string `json:"name" rpc:"required"`
			WithBatches bool   `json:"with_batches"`
		}
		if err := Decode(p, &req); err != nil {
			return nil, InvalidParams("Invalid arguments").WithCause(err)
		}
		ss := s.findSubsystem(req.Name)
		if ss == nil {
			return nil, Errorf(CodeInvalidParams, "Subsystem '%s' not found", req.Name)
		}
		if ss.writer == nil {
			return nil, nil
		}
		return configArray(ss.writer(), req.WithBatches), nil
	})

	s.Register("framework_start_init", Startup, func(ctx context.Context, p json.RawMessage) (any, error) {
		if err := NoParams(p, "framework_start_init requires no parameters"); err != nil {
			return nil, err
		}
		// framework_wait_init callers are released once this reply is
		// out, so that a batch holding both lists this reply first.
		if err := s.startInitLocked(ctx, false); err != nil {
			return nil, err
		}
		return true, nil
	}, exclusive(), afterReply(s.releaseWaiters))

	// framework_wait_init does not look at its params (SPDK neither).
	s.Register("framework_wait_init", both, func(ctx context.Context, _ json.RawMessage) (any, error) {
		select {
		case <-s.runtimeReached():
			return true, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, Detached())

	type flagReq struct {
		Flag string `json:"flag" rpc:"required"`
	}
	s.Register("log_set_flag", both, func(_ context.Context, p json.RawMessage) (any, error) {
		var req flagReq
		if err := Decode(p, &req); err != nil {
			return nil, DecodeFailed(err)
		}
		if err := s.flags.Enable(req.Flag); err != nil {
			return nil, InvalidParams("invalid log flag").WithCause(err)
		}
		return true, nil
	})
	s.Register("log_clear_flag", both, func(_ context.Context, p json.RawMessage) (any, error) {
		var req flagReq
		if err := Decode(p, &req); err != nil {
			return nil, DecodeFailed(err)
		}
		if err := s.flags.Disable(req.Flag); err != nil {
			return nil, InvalidParams("invalid log flag").WithCause(err)
		}
		return true, nil
	})
	s.Register("log_get_flags", both, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := NoParams(p, "log_get_flags requires no parameters"); err != nil {
			return nil, err
		}
		// An object in the registry's order, which a Go map would lose.
		b := []byte{'{'}
		for i, f := range s.flags.Flags() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.Name)
			if f.Enabled {
				b = append(b, ":true"...)
			} else {
				b = append(b, ":false"...)
			}
		}
		return json.RawMessage(append(b, '}')), nil
	})

	levelMethods := func(set, get string, lv *slog.LevelVar) {
		s.Register(set, both, func(_ context.Context, p json.RawMessage) (any, error) {
			var req struct {
				Level string `json:"level" rpc:"required"`
			}
			if err := Decode(p, &req); err != nil {
				return nil, DecodeFailed(err)
			}
			l, ok := logflag.ParseLevel(req.Level)
			if !ok { // an enum in SPDK's generated decoder
				return nil, DecodeFailed(&DecodeError{Field: "level", Msg: "unknown level " + req.Level})
			}
			lv.Set(l)
			return true, nil
		})
		s.Register(get, both, func(_ context.Context, p json.RawMessage) (any, error) {
			if err := NoParams(p, get+" requires no parameters"); err != nil {
				return nil, err
			}
			return logflag.LevelName(lv.Level()), nil
		})
	}
	levelMethods("log_set_print_level", "log_get_print_level", s.prLevel)
	levelMethods("log_set_level", "log_get_level", s.level)

	s.Register("spdk_kill_instance", Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			SigName string `json:"sig_name" rpc:"required"`
		}
		if err := Decode(p, &req); err != nil {
			return nil, InvalidParams("Invalid parameters").WithCause(err)
		}
		sig, ok := killSignals[req.SigName]
		if !ok {
			return nil, InvalidParams("Invalid parameters")
		}
		s.mu.RLock()
		hook := s.kill
		s.mu.RUnlock()
		if hook == nil {
			hook = func(sig syscall.Signal) error { return syscall.Kill(os.Getpid(), sig) }
		}
		if err := hook(sig); err != nil {
			return nil, err
		}
		return true, nil
	})
}
