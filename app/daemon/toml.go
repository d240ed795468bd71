package daemon

import (
	"encoding/json"
	"fmt"

	"github.com/BurntSushi/toml"
)

// TOMLToJSON turns a TOML config into the SPDK JSON config it stands for.
// Each top-level array of tables is an RPC method and each of its tables
// the params of one call, applied in file order:
//
//	[[bdev_malloc_create]]
//	name = "Malloc0"
//	num_blocks = 131072
//	block_size = 512
//
//	[[vhost_create_blk_controller]]
//	ctrlr = "vhost.0"
//	dev_name = "Malloc0"
//
// A method with no params is written as an empty table ([[bdev_wait_for_examine]]).
func TOMLToJSON(doc []byte) ([]byte, error) {
	var raw map[string]any
	md, err := toml.Decode(string(doc), &raw)
	if err != nil {
		return nil, fmt.Errorf("toml: %w", err)
	}
	type call struct {
		Method string         `json:"method"`
		Params map[string]any `json:"params,omitempty"`
	}
	var calls []call
	seen := map[string]int{}
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue
		}
		name := k[0]
		v := raw[name]
		tables, ok := v.([]map[string]any)
		if !ok {
			return nil, fmt.Errorf("toml: top-level key %q must be an array of tables ([[%s]]), one per call", name, name)
		}
		i := seen[name]
		if i >= len(tables) {
			continue
		}
		seen[name] = i + 1
		calls = append(calls, call{Method: name, Params: tables[i]})
	}
	return json.Marshal(map[string]any{"subsystems": []any{map[string]any{"subsystem": "config", "config": calls}}})
}
