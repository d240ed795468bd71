package rpc

import (
	"fmt"
	"strings"
)

// ConfigEntry is one element of a subsystem's config array, as
// framework_get_config returns it and save_config writes it: a method call
// that recreates part of the live configuration.
type ConfigEntry struct {
	// Method is the RPC method to call.
	Method string
	// Params are its params, marshalled with encoding/json; the "params"
	// key is omitted when Params is nil.
	Params any
	// Batch, when non-nil, makes this entry a batch of calls (Method and
	// Params are ignored). framework_get_config writes it as a nested
	// array with with_batches=true and flattens it into the surrounding
	// array otherwise (rpc.py's default).
	Batch []ConfigEntry
}

type configJSON struct {
	Method string `json:"method"`
	Params any    `json:"params,omitempty"`
}

type subsystem struct {
	name      string
	dependsOn []string
	writer    func() []ConfigEntry
}

// RegisterSubsystem adds a subsystem for framework_get_subsystems and
// framework_get_config. dependsOn names subsystems that must initialize
// first; they may be registered later, but must all exist by the time the
// list is read (see Subsystems). writer returns the subsystem's config
// entries; it runs on the RPC goroutine, so it must synchronize with the
// state it reads (hop to the owning reactor where needed). A nil writer
// makes the config null, like SPDK's subsystems without write_config_json;
// a writer returning no entries gives []. It panics on an empty or
// duplicate name.
func (s *Server) RegisterSubsystem(name string, dependsOn []string, writer func() []ConfigEntry) {
	if name == "" {
		panic("rpc: RegisterSubsystem: empty name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.subsystems {
		if ss.name == name {
			panic(fmt.Sprintf("rpc: subsystem %q registered twice", name))
		}
	}
	s.subsystems = append(s.subsystems, &subsystem{
		name:      name,
		dependsOn: append([]string(nil), dependsOn...),
		writer:    writer,
	})
}

// Subsystems returns the subsystem names in initialization order: the
// order framework_get_subsystems lists them and the app initializes them.
// Like SPDK's subsystem_sort, it makes passes over the registration order,
// each pass moving every subsystem whose dependencies are already placed.
// It fails if a dependency is not registered or the dependencies form a
// cycle.
func (s *Server) Subsystems() ([]string, error) {
	sorted, err := s.sortedSubsystems()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(sorted))
	for i, ss := range sorted {
		names[i] = ss.name
	}
	return names, nil
}

func (s *Server) sortedSubsystems() ([]*subsystem, error) {
	s.mu.RLock()
	rest := append([]*subsystem(nil), s.subsystems...)
	s.mu.RUnlock()
	known := map[string]bool{}
	for _, ss := range rest {
		known[ss.name] = true
	}
	for _, ss := range rest {
		for _, d := range ss.dependsOn {
			if !known[d] {
				return nil, fmt.Errorf("rpc: subsystem %q depends on unknown subsystem %q", ss.name, d)
			}
		}
	}
	placed := map[string]bool{}
	var out []*subsystem
	for len(rest) > 0 {
		var left []*subsystem
		for _, ss := range rest {
			ok := true
			for _, d := range ss.dependsOn {
				if !placed[d] {
					ok = false
					break
				}
			}
			if ok {
				placed[ss.name] = true
				out = append(out, ss)
			} else {
				left = append(left, ss)
			}
		}
		if len(left) == len(rest) {
			var names []string
			for _, ss := range left {
				names = append(names, ss.name)
			}
			return nil, fmt.Errorf("rpc: subsystem dependency cycle among %s", strings.Join(names, ", "))
		}
		rest = left
	}
	return out, nil
}

func (s *Server) findSubsystem(name string) *subsystem {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, ss := range s.subsystems {
		if ss.name == name {
			return ss
		}
	}
	return nil
}

// configArray renders a writer's entries: batches nested, or flattened.
func configArray(entries []ConfigEntry, withBatches bool) []any {
	out := make([]any, 0, len(entries))
	for _, e := range entries {
		if e.Batch == nil {
			out = append(out, configJSON{Method: e.Method, Params: e.Params})
			continue
		}
		if withBatches {
			out = append(out, configArray(e.Batch, true))
		} else {
			out = append(out, configArray(e.Batch, false)...)
		}
	}
	return out
}
