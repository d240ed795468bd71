package rpc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type nsParams struct {
	BdevName string `json:"bdev_name" rpc:"required"`
	NSID     uint32 `json:"nsid"`
}

type common struct {
	TgtName string `json:"tgt_name"`
}

type testParams struct {
	common
	Name      string          `json:"name" rpc:"required"`
	NumBlocks uint64          `json:"num_blocks"`
	BlockSize uint32          `json:"block_size"`
	Gran      uint8           `json:"granularity"`
	Delta     int32           `json:"delta"`
	Ratio     float64         `json:"ratio"`
	Readonly  bool            `json:"readonly"`
	Opt       *uint64         `json:"opt"`
	Namespace *nsParams       `json:"namespace"`
	Hosts     []string        `json:"hosts"`
	Listeners []nsParams      `json:"listeners"`
	Raw       json.RawMessage `json:"raw"`
	Any       any             `json:"any"`
	Labels    map[string]int  `json:"labels"`
	skipped   int
	Ignored   int `json:"-"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		relaxed bool
		err     string // substring of the DecodeError; "" means success
		check   func(*testParams) bool
	}{
		{in: `{"name":"m0","num_blocks":8,"block_size":512}`, check: func(p *testParams) bool {
			return p.Name == "m0" && p.NumBlocks == 8 && p.BlockSize == 512 && p.Opt == nil
		}},
		{in: `{"name":"m0","opt":0,"tgt_name":"t","readonly":true,"ratio":0.5,"delta":-3}`, check: func(p *testParams) bool {
			return p.Opt != nil && *p.Opt == 0 && p.TgtName == "t" && p.Readonly && p.Ratio == 0.5 && p.Delta == -3
		}},
		{in: `{"name":"x","namespace":{"bdev_name":"b","nsid":3},"hosts":["a","b"],"listeners":[{"bdev_name":"c"}]}`, check: func(p *testParams) bool {
			return p.Namespace.BdevName == "b" && p.Namespace.NSID == 3 && len(p.Hosts) == 2 && p.Listeners[0].BdevName == "c"
		}},
		{in: `{"name":"x","raw":null,"any":null,"labels":{"a":1}}`, check: func(p *testParams) bool {
			return string(p.Raw) == "null" && p.Any == nil && p.Labels["a"] == 1
		}},
		{in: ` { "name" : "x" , "raw" : [1, {"a":2}] } `, check: func(p *testParams) bool { return string(p.Raw) == `[1, {"a":2}]` }},
		// Defaults set before decoding survive when their key is absent.
		{in: `{"name":"x"}`, check: func(p *testParams) bool { return p.BlockSize == 4096 }},

		{in: `{"num_blocks":8}`, err: `name: missing required key`},
		{in: ``, err: `name: missing required key`},
		{in: `null`, err: `name: missing required key`},
		{in: `{"name":"x","bogus":1}`, err: `bogus: unknown key`},
		{in: `{"name":"x","Name":"y"}`, err: `Name: unknown key`}, // exact case only
		{in: `{"name":"x","skipped":1}`, err: `skipped: unknown key`},
		{in: `{"name":"x","Ignored":1}`, err: `Ignored: unknown key`},
		{in: `{"name":"x","name":"y"}`, err: `name: duplicate key`},
		{in: `{"name":"x","num_blocks":"8"}`, err: `num_blocks: want number, got string`},
		{in: `{"name":"x","num_blocks":-1}`, err: `num_blocks: number -1 does not fit uint64`},
		{in: `{"name":"x","num_blocks":1.5}`, err: `num_blocks: number 1.5 does not fit uint64`},
		{in: `{"name":"x","granularity":256}`, err: `granularity: number 256 does not fit uint8`},
		{in: `{"name":"x","readonly":1}`, err: `readonly: want bool, got number`},
		{in: `{"name":"x","readonly":"true"}`, err: `readonly: want bool, got string`},
		{in: `{"name":1}`, err: `name: want string, got number`},
		{in: `{"name":null}`, err: `name: must not be null`},
		{in: `{"name":"x","opt":null}`, err: `opt: must not be null`},
		{in: `{"name":"x","namespace":{"nsid":1}}`, err: `namespace.bdev_name: missing required key`},
		{in: `{"name":"x","namespace":{"bdev_name":"b","x":1}}`, err: `namespace.x: unknown key`},
		{in: `{"name":"x","namespace":"b"}`, err: `namespace: want object, got string`},
		{in: `{"name":"x","hosts":"a"}`, err: `hosts: want array, got string`},
		{in: `{"name":"x","hosts":["a",2]}`, err: `hosts[1]: want string, got number`},
		{in: `{"name":"x","listeners":[{}]}`, err: `listeners[0].bdev_name: missing required key`},
		{in: `{"name":"x","labels":[1]}`, err: `labels: want object, got array`},
		{in: `["x"]`, err: `want object, got array`},
		{in: `"x"`, err: `want object, got string`},
		{in: `{"name":"x"`, err: `params`},
		{in: `{"name":"x"} {}`, err: `invalid JSON`},
		{in: `{"name":"x\u00e9\"","raw":"\\"}`, check: func(p *testParams) bool { return p.Name == "x\u00e9\"" && string(p.Raw) == `"\\"` }},
		{in: `{"n\u0061me":"esc"}`, check: func(p *testParams) bool { return p.Name == "esc" }},

		// Relaxed: unknown keys pass, everything else is still checked.
		{in: `{"name":"x","bogus":{"deep":[1]}}`, relaxed: true, check: func(p *testParams) bool { return p.Name == "x" }},
		{in: `{"name":"x","name":"y"}`, relaxed: true, err: `name: duplicate key`},
		{in: `{"name":"x","readonly":0}`, relaxed: true, err: `readonly: want bool`},
		{in: `{"bogus":1}`, relaxed: true, err: `name: missing required key`},
	} {
		p := testParams{BlockSize: 4096}
		before := p
		var err error
		if tc.relaxed {
			err = DecodeRelaxed(json.RawMessage(tc.in), &p)
		} else {
			err = Decode(json.RawMessage(tc.in), &p)
		}
		if tc.err != "" {
			var de *DecodeError
			if err == nil || !errors.As(err, &de) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %v, want error containing %q", tc.in, err, tc.err)
			}
			if p.Name != before.Name || p.NumBlocks != before.NumBlocks || p.Namespace != nil || p.Hosts != nil {
				t.Errorf("%s: value changed on error: %+v", tc.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !tc.check(&p) {
			t.Errorf("%s: decoded %+v", tc.in, p)
		}
	}
}

func TestDecodeBadTarget(t *testing.T) {
	var m map[string]any
	var p testParams
	for _, v := range []any{nil, p, &m, (*testParams)(nil)} {
		if err := Decode(json.RawMessage(`{}`), v); err == nil {
			t.Errorf("Decode into %T accepted", v)
		}
	}
}

func TestDecodeDepth(t *testing.T) {
	type node struct {
		Next *node `json:"next"`
	}
	in := strings.Repeat(`{"next":`, 100) + `{}` + strings.Repeat(`}`, 100)
	var n node
	if err := Decode(json.RawMessage(in), &n); err == nil || !strings.Contains(err.Error(), "nested too deeply") {
		t.Fatalf("deep params: %v", err)
	}
}

func TestNoParams(t *testing.T) {
	if NoParams(nil, "m") != nil {
		t.Fatal("nil params rejected")
	}
	for _, p := range []string{`{}`, `[]`, `{"a":1}`} {
		err := NoParams(json.RawMessage(p), "m requires no parameters")
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeInvalidParams || re.Message != "m requires no parameters" {
			t.Errorf("%s: %v", p, err)
		}
	}
}
