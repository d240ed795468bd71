// Package logflag is a registry of named debug-log flags in the style of
// SPDK's log components (`-L bdev`, `log_set_flag`), bridged to log/slog.
//
// A component registers its flag once (usually the app does it while wiring
// the component) and logs through a logger built with [Flag.Logger]: that
// logger emits Debug records only while the flag is enabled, and passes Info
// and above to the wrapped handler unchanged. Flags are switched at run time
// by the log_set_flag / log_clear_flag RPCs (package rpc) or by a command-line
// `-L` option.
//
// Threading: a [Set] may be used from any goroutine. [Flag.Enabled] is a
// single atomic load, so checking a flag is cheap, but callers on a reactor's
// hot path still must not log per IO (STYLE.md); flags gate slow-path debug
// output only.
//
// Names compare case-insensitively and are listed in case-insensitive order,
// as SPDK does. Patterns given to [Set.Enable] and [Set.Disable] may be "all"
// or shell globs ("nvmf*").
package logflag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrNoMatch is returned by Enable and Disable when a pattern matches no
// registered flag.
var ErrNoMatch = errors.New("no such log flag")

// Flag is one named debug-log switch. The zero value is not usable; get
// flags from [Set.Register].
type Flag struct {
	name string
	on   atomic.Bool
}

// Name returns the flag's name as registered.
func (f *Flag) Name() string { return f.name }

// Enabled reports whether the flag is on.
func (f *Flag) Enabled() bool { return f.on.Load() }

// SetEnabled switches the flag.
func (f *Flag) SetEnabled(on bool) { f.on.Store(on) }

// Handler wraps next so that records below slog.LevelInfo are emitted only
// while f is enabled. When f is enabled such records reach next.Handle even
// if next's own level would drop them: enabling a flag is an explicit request
// for that component's debug output.
func (f *Flag) Handler(next slog.Handler) slog.Handler {
	return &handler{flag: f, next: next}
}

// Logger returns a logger that writes through base's handler, gated by f
// (see Handler), with the attribute flag=<name> on every record.
func (f *Flag) Logger(base *slog.Logger) *slog.Logger {
	if base == nil {
		base = slog.Default()
	}
	return slog.New(f.Handler(base.Handler())).With("flag", f.name)
}

type handler struct {
	flag *Flag
	next slog.Handler
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelInfo {
		return h.flag.Enabled()
	}
	return h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	return h.next.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{flag: h.flag, next: h.next.WithAttrs(as)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{flag: h.flag, next: h.next.WithGroup(name)}
}

// Set is a registry of flags. The zero value is ready to use.
type Set struct {
	mu    sync.RWMutex
	flags []*Flag // sorted by strings.ToLower(name)
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{} }

// Register returns the flag called name, creating it (disabled) if it does
// not exist yet. Registering the same name twice returns the same *Flag, so
// two components that share a flag share its state. The name must be
// non-empty, must not be "all" and must not contain glob metacharacters.
func (s *Set) Register(name string) (*Flag, error) {
	if name == "" || strings.EqualFold(name, "all") || strings.ContainsAny(name, "*?[]\\") {
		return nil, fmt.Errorf("logflag: invalid flag name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(name)
	i := sort.Search(len(s.flags), func(i int) bool { return strings.ToLower(s.flags[i].name) >= key })
	if i < len(s.flags) && strings.ToLower(s.flags[i].name) == key {
		return s.flags[i], nil
	}
	f := &Flag{name: name}
	s.flags = append(s.flags, nil)
	copy(s.flags[i+1:], s.flags[i:])
	s.flags[i] = f
	return f, nil
}

// MustRegister is Register for names fixed at compile time; it panics on an
// invalid name.
func (s *Set) MustRegister(name string) *Flag {
	f, err := s.Register(name)
	if err != nil {
		panic(err)
	}
	return f
}

// Lookup returns the flag called name (case-insensitive), or nil.
func (s *Set) Lookup(name string) *Flag {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, f := range s.flags {
		if strings.EqualFold(f.name, name) {
			return f
		}
	}
	return nil
}

// Enable switches on every flag that pattern matches: "all" (any case)
// matches every flag, anything else is a case-insensitive shell glob. It
// returns ErrNoMatch when nothing matched ("all" always succeeds).
func (s *Set) Enable(pattern string) error { return s.set(pattern, true) }

// Disable switches off every flag that pattern matches; see Enable.
func (s *Set) Disable(pattern string) error { return s.set(pattern, false) }

func (s *Set) set(pattern string, on bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if strings.EqualFold(pattern, "all") {
		for _, f := range s.flags {
			f.SetEnabled(on)
		}
		return nil
	}
	p := strings.ToLower(pattern)
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("log flag pattern %q: %w", pattern, ErrNoMatch)
	}
	found := false
	for _, f := range s.flags {
		if ok, _ := path.Match(p, strings.ToLower(f.name)); ok {
			f.SetEnabled(on)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("log flag %q: %w", pattern, ErrNoMatch)
	}
	return nil
}

// State is a flag's name and whether it is enabled.
type State struct {
	Name    string
	Enabled bool
}

// Flags lists every flag in case-insensitive name order.
func (s *Set) Flags() []State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]State, len(s.flags))
	for i, f := range s.flags {
		out[i] = State{Name: f.name, Enabled: f.Enabled()}
	}
	return out
}

// LevelNotice sits between slog.LevelInfo and slog.LevelWarn, for SPDK's
// NOTICE level (SPDK's default).
const LevelNotice = slog.Level(2)

// levelNames are SPDK's level names (log_set_level), most severe first.
var levelNames = []struct {
	name  string
	level slog.Level
}{
	{"ERROR", slog.LevelError},
	{"WARNING", slog.LevelWarn},
	{"NOTICE", LevelNotice},
	{"INFO", slog.LevelInfo},
	{"DEBUG", slog.LevelDebug},
}

// ParseLevel maps one of SPDK's level names (ERROR, WARNING, NOTICE, INFO,
// DEBUG; exact case, as SPDK's decoder requires) to a slog level.
func ParseLevel(name string) (slog.Level, bool) {
	for _, l := range levelNames {
		if l.name == name {
			return l.level, true
		}
	}
	return 0, false
}

// LevelName names level with SPDK's level names: the most severe name whose
// level is at or below level, or "DEBUG" for anything below slog.LevelDebug.
func LevelName(level slog.Level) string {
	for _, l := range levelNames {
		if level >= l.level {
			return l.name
		}
	}
	return "DEBUG"
}
