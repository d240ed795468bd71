package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Caller is what SaveConfig and LoadConfig need. *Client implements it
// over a socket; *rpc.Server implements it in process (the app uses that
// to apply a --json config at startup).
type Caller interface {
	Call(ctx context.Context, method string, params, result any) error
}

// SubsystemConfig is one subsystem in a save_config document.
type SubsystemConfig struct {
	Subsystem string          `json:"subsystem"`
	Config    json.RawMessage `json:"config"` // an array of {method[, params]} and batches, or null
}

// Config is a save_config document: {"subsystems":[...]}.
type Config struct {
	Subsystems []SubsystemConfig `json:"subsystems"`
}

// SaveConfig reads the live configuration the way rpc.py's save_config
// does: framework_get_subsystems, then framework_get_config
// {name, with_batches} for each subsystem, in that order, keeping each
// config verbatim. With only non-empty, just those subsystems and
// everything they depend on are read.
func SaveConfig(ctx context.Context, c Caller, only []string, withBatches bool) (*Config, error) {
	var subs []struct {
		Subsystem string   `json:"subsystem"`
		DependsOn []string `json:"depends_on"`
	}
	if err := c.Call(ctx, "framework_get_subsystems", nil, &subs); err != nil {
		return nil, err
	}
	deps := map[string]map[string]bool{}
	for _, s := range subs {
		set := map[string]bool{s.Subsystem: true}
		for _, d := range s.DependsOn {
			dd, ok := deps[d]
			if !ok {
				return nil, fmt.Errorf("save_config: subsystem %q depends on %q, which is not listed before it", s.Subsystem, d)
			}
			for k := range dd {
				set[k] = true
			}
		}
		deps[s.Subsystem] = set
	}
	want := map[string]bool{}
	if len(only) == 0 {
		for k := range deps {
			want[k] = true
		}
	} else {
		for _, name := range only {
			set, ok := deps[name]
			if !ok {
				return nil, fmt.Errorf("save_config: unknown subsystem %q", name)
			}
			for k := range set {
				want[k] = true
			}
		}
	}
	cfg := &Config{Subsystems: []SubsystemConfig{}}
	for _, s := range subs {
		if !want[s.Subsystem] {
			continue
		}
		params := struct {
			Name        string `json:"name"`
			WithBatches bool   `json:"with_batches"`
		}{s.Subsystem, withBatches}
		var raw json.RawMessage
		if err := c.Call(ctx, "framework_get_config", params, &raw); err != nil {
			return nil, err
		}
		cfg.Subsystems = append(cfg.Subsystems, SubsystemConfig{Subsystem: s.Subsystem, Config: raw})
	}
	return cfg, nil
}

// ErrSkipped is returned by LoadConfig when some entries could not be
// applied because the state in which they are callable had passed. rpc.py
// prints this text and still exits 0.
var ErrSkipped = errors.New("Some configs were skipped because the RPC state that can call them passed over.")

// errUnknownMethod is rpc.py's text for a config naming a method the
// server does not have.
var errUnknownMethod = errors.New("Unknown method was included in the config file")

// entry is one config element: a call, or a batch of calls.
type entry struct {
	call  *call
	batch []*call
}

type call struct {
	Method *string         `json:"method"`
	Params json.RawMessage `json:"params"`
}

func (c *call) allowed(methods []string) bool {
	return c.Method != nil && slices.Contains(methods, *c.Method)
}

// LoadConfig applies a save_config document with the algorithm of rpc.py's
// load_config:
//
//  1. drop subsystems whose config is null or empty;
//  2. rpc_get_methods {include_aliases}: if nothing is left, call
//     framework_start_init (if the server has it) and stop; if an entry
//     names a method not in the list, fail with "Unknown method was
//     included in the config file" before calling anything;
//  3. repeat: rpc_get_methods {current: true, include_aliases}; call, in
//     order, every entry whose method is callable now (a batch only when
//     all of its methods are, each of its calls in turn), removing what was
//     called; call framework_start_init when it is callable; stop when
//     nothing is left or a round called nothing.
//
// Entries left over give ErrSkipped. An error reply stops the load and is
// returned. An entry's empty params object is sent as no params, as
// rpc.py does.
func LoadConfig(ctx context.Context, c Caller, doc []byte, includeAliases bool) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return fmt.Errorf("load_config: %w", err)
	}
	var list []map[string]json.RawMessage
	if rawList, ok := top["subsystems"]; !ok {
		return errors.New(`load_config: the config has no "subsystems" key`)
	} else if err := json.Unmarshal(rawList, &list); err != nil {
		return fmt.Errorf("load_config: subsystems: %w", err)
	}
	type sub struct {
		name    string
		entries []*entry
	}
	var subs []*sub
	for _, s := range list {
		var name string
		json.Unmarshal(s["subsystem"], &name)
		cfgRaw, ok := s["config"]
		if !ok {
			return fmt.Errorf(`load_config: subsystem %q has no "config" key`, name)
		}
		raw := bytes.TrimSpace(cfgRaw)
		if string(raw) == "null" || string(raw) == "[]" {
			continue
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return fmt.Errorf("load_config: subsystem %q: config is not an array: %w", name, err)
		}
		if len(elems) == 0 {
			continue
		}
		ss := &sub{name: name}
		for i, e := range elems {
			en, err := parseEntry(e)
			if err != nil {
				return fmt.Errorf("load_config: subsystem %q entry %d: %w", name, i, err)
			}
			ss.entries = append(ss.entries, en)
		}
		subs = append(subs, ss)
	}

	type methodsReq struct {
		Current        *bool `json:"current,omitempty"`
		IncludeAliases bool  `json:"include_aliases"`
	}
	var all []string
	if err := c.Call(ctx, "rpc_get_methods", methodsReq{IncludeAliases: includeAliases}, &all); err != nil {
		return err
	}
	if len(subs) == 0 && slices.Contains(all, "framework_start_init") {
		return c.Call(ctx, "framework_start_init", nil, nil)
	}
	for _, s := range subs {
		for _, e := range s.entries {
			if e.call != nil && !e.call.allowed(all) {
				return errUnknownMethod
			}
			for _, bc := range e.batch {
				if !bc.allowed(all) {
					return errUnknownMethod
				}
			}
		}
	}

	yes := true
	for len(subs) > 0 {
		var now []string
		if err := c.Call(ctx, "rpc_get_methods", methodsReq{Current: &yes, IncludeAliases: includeAliases}, &now); err != nil {
			return err
		}
		progress := false
		for _, s := range slices.Clone(subs) {
			for _, e := range slices.Clone(s.entries) {
				called, drop, err := apply(ctx, c, e, now)
				if err != nil {
					return err
				}
				if drop {
					s.entries = slices.DeleteFunc(s.entries, func(x *entry) bool { return x == e })
				}
				progress = progress || called
			}
			if len(s.entries) == 0 {
				subs = slices.DeleteFunc(subs, func(x *sub) bool { return x == s })
			}
		}
		if slices.Contains(now, "framework_start_init") {
			if err := c.Call(ctx, "framework_start_init", nil, nil); err != nil {
				return err
			}
			progress = true
		}
		if !progress {
			break
		}
	}
	if len(subs) > 0 {
		return ErrSkipped
	}
	return nil
}

func parseEntry(raw json.RawMessage) (*entry, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		e := &entry{batch: []*call{}}
		for i, it := range items {
			c, err := parseCall(it)
			if err != nil {
				return nil, fmt.Errorf("batch item %d: %w", i, err)
			}
			e.batch = append(e.batch, c)
		}
		return e, nil
	}
	c, err := parseCall(raw)
	if err != nil {
		return nil, err
	}
	return &entry{call: c}, nil
}

// parseCall reads {"method": ..., "params": ...}; rpc.py passes the object
// as keyword arguments, so any other key is an error there too.
func parseCall(raw json.RawMessage) (*call, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("want an object {method, params}: %w", err)
	}
	for k := range keys {
		if k != "method" && k != "params" {
			return nil, fmt.Errorf("unexpected key %q", k)
		}
	}
	var c call
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	// rpc.py sends params only when they are truthy: null, {} and [] go
	// as no params at all.
	var v any
	if c.Params != nil && json.Unmarshal(c.Params, &v) == nil {
		switch x := v.(type) {
		case nil:
			c.Params = nil
		case map[string]any:
			if len(x) == 0 {
				c.Params = nil
			}
		case []any:
			if len(x) == 0 {
				c.Params = nil
			}
		}
	}
	return &c, nil
}

// apply calls e if all its methods are in now. drop reports that e is done
// and leaves the config (a batch with no calls is dropped without calling).
func apply(ctx context.Context, c Caller, e *entry, now []string) (called, drop bool, err error) {
	if e.call != nil {
		if !e.call.allowed(now) {
			return false, false, nil
		}
		return true, true, doCall(ctx, c, e.call)
	}
	for _, bc := range e.batch {
		if !bc.allowed(now) {
			return false, false, nil
		}
	}
	if len(e.batch) == 0 {
		return false, true, nil
	}
	for _, bc := range e.batch {
		if err := doCall(ctx, c, bc); err != nil {
			return true, true, err
		}
	}
	return true, true, nil
}

func doCall(ctx context.Context, c Caller, cl *call) error {
	var params any
	if cl.Params != nil {
		params = cl.Params
	}
	return c.Call(ctx, *cl.Method, params, nil)
}

// ErrSubsystemSkipped is LoadSubsystemConfig's ErrSkipped; rpc.py prints
// this text and exits 0.
var ErrSubsystemSkipped = errors.New("Some configs were skipped because they cannot be called in the current RPC state.")

// LoadSubsystemConfig applies one subsystem's config ({"subsystem": ...,
// "config": [...]}) like rpc.py's load_subsystem_config: rpc_get_methods
// (no params) to check that every method exists, then one pass of
// rpc_get_methods {current: true} and the callable entries in order. It
// never calls framework_start_init. Entries left over give
// ErrSubsystemSkipped.
func LoadSubsystemConfig(ctx context.Context, c Caller, doc []byte) error {
	var sub map[string]json.RawMessage
	if err := json.Unmarshal(doc, &sub); err != nil {
		return fmt.Errorf("load_subsystem_config: %w", err)
	}
	raw, ok := sub["config"]
	if !ok {
		return errors.New(`load_subsystem_config: no "config" key`)
	}
	var elems []json.RawMessage
	if t := bytes.TrimSpace(raw); string(t) == "null" {
		return nil
	} else if err := json.Unmarshal(t, &elems); err != nil {
		return fmt.Errorf("load_subsystem_config: config is not an array: %w", err)
	}
	if len(elems) == 0 {
		return nil
	}
	var entries []*entry
	for i, e := range elems {
		en, err := parseEntry(e)
		if err != nil {
			return fmt.Errorf("load_subsystem_config: entry %d: %w", i, err)
		}
		entries = append(entries, en)
	}
	var all []string
	if err := c.Call(ctx, "rpc_get_methods", nil, &all); err != nil {
		return err
	}
	for _, e := range entries {
		if e.call != nil && !e.call.allowed(all) {
			return errUnknownMethod
		}
		for _, bc := range e.batch {
			if !bc.allowed(all) {
				return errUnknownMethod
			}
		}
	}
	var now []string
	if err := c.Call(ctx, "rpc_get_methods", map[string]bool{"current": true}, &now); err != nil {
		return err
	}
	left := 0
	for _, e := range entries {
		_, drop, err := apply(ctx, c, e, now)
		if err != nil {
			return err
		}
		if !drop {
			left++
		}
	}
	if left > 0 {
		return ErrSubsystemSkipped
	}
	return nil
}
