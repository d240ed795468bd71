package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// DecodeError says which param failed to decode and why. Decode and
// DecodeRelaxed return it; handlers turn it into the reply their method
// sends in SPDK (see DecodeFailed and InvalidParams).
type DecodeError struct {
	Field string // dotted path, e.g. "namespace.bdev_name" or "hosts[1]"; empty for the params object itself
	Msg   string
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "params: " + e.Msg
	}
	return "params: " + e.Field + ": " + e.Msg
}

// Decode decodes params, a JSON object, into v, which must be a non-nil
// pointer to a struct, as strictly as SPDK's spdk_json_decode_object:
//
//   - params must be an object; nil (params absent or null) counts as {}
//     (where SPDK fails on absent params even though every key is
//     optional, the handler checks params == nil itself);
//   - keys match the struct's `json:"name"` tags (or field names) exactly,
//     case-sensitively; an unknown key is an error;
//   - a key given twice is an error;
//   - values must have the field's JSON type: numbers for integer and float
//     fields (in range, no fraction for integers), true/false for bools,
//     strings for strings, objects for structs and maps, arrays for slices;
//     null is accepted only by json.RawMessage and interface fields;
//   - every field tagged `rpc:"required"` must be present.
//
// Nested structs (and slices of them) are decoded by the same rules.
// Fields that implement json.Unmarshaler decode themselves. Fields already
// set in *v keep their value when their key is absent, so callers set
// defaults before decoding. On error *v is left unchanged (except for maps
// it shares with the partially decoded copy).
func Decode(params json.RawMessage, v any) error { return decode(params, v, false) }

// DecodeRelaxed is Decode except that unknown keys are ignored
// (spdk_json_decode_object_relaxed). Known keys are still checked for
// duplicates and types.
func DecodeRelaxed(params json.RawMessage, v any) error { return decode(params, v, true) }

// NoParams returns InvalidParams(msg) when params are present, for methods
// that take none (SPDK: "spdk_get_version method requires no parameters").
// An empty object or array counts as present, as in SPDK.
func NoParams(params json.RawMessage, msg string) error {
	if params != nil {
		return InvalidParams(msg)
	}
	return nil
}

func decode(params json.RawMessage, v any, relaxed bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("rpc.Decode: want a non-nil pointer to a struct, got %T", v)
	}
	raw := bytes.TrimSpace(params)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	if !json.Valid(raw) {
		return &DecodeError{Msg: "invalid JSON"}
	}
	tmp := reflect.New(rv.Elem().Type()).Elem()
	tmp.Set(rv.Elem())
	d := decoder{relaxed: relaxed}
	if err := d.object(raw, tmp, ""); err != nil {
		return err
	}
	rv.Elem().Set(tmp)
	return nil
}

type decoder struct {
	relaxed bool
	depth   int
}

// maxDepth bounds recursion on nested params; the server's request size
// and value-count limits keep real requests far below it.
const maxDepth = 64

type fieldInfo struct {
	name     string
	index    []int
	required bool
}

type structInfo struct {
	fields []fieldInfo
	byName map[string]int
}

var structCache sync.Map // reflect.Type -> *structInfo

func infoFor(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byName: map[string]int{}}
	collectFields(t, nil, si)
	actual, _ := structCache.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func collectFields(t reflect.Type, index []int, si *structInfo) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" && tag == "-" {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		if f.Anonymous && !hasTag && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, idx, si)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		req := false
		for _, o := range strings.Split(f.Tag.Get("rpc"), ",") {
			if o == "required" {
				req = true
			}
		}
		if _, dup := si.byName[name]; dup {
			continue // shallower field wins, as in encoding/json
		}
		si.byName[name] = len(si.fields)
		si.fields = append(si.fields, fieldInfo{name: name, index: idx, required: req})
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

func (d *decoder) object(raw []byte, sv reflect.Value, path string) error {
	if k := jsonKind(raw); k != "object" {
		return &DecodeError{Field: path, Msg: "want object, got " + k}
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return &DecodeError{Field: path, Msg: "nested too deeply"}
	}
	si := infoFor(sv.Type())
	seen := make([]bool, len(si.fields))
	err := members(raw, func(key string, val []byte) error {
		i, ok := si.byName[key]
		if !ok {
			if d.relaxed {
				return nil
			}
			return &DecodeError{Field: join(path, key), Msg: "unknown key"}
		}
		if seen[i] {
			return &DecodeError{Field: join(path, key), Msg: "duplicate key"}
		}
		seen[i] = true
		return d.value(val, sv.FieldByIndex(si.fields[i].index), join(path, key))
	})
	if err != nil {
		return err
	}
	for i, f := range si.fields {
		if f.required && !seen[i] {
			return &DecodeError{Field: join(path, f.name), Msg: "missing required key"}
		}
	}
	return nil
}

func (d *decoder) value(raw []byte, fv reflect.Value, path string) error {
	t := fv.Type()
	kind := jsonKind(raw)
	if t == rawMessageType {
		fv.SetBytes(append([]byte(nil), raw...))
		return nil
	}
	if kind == "null" {
		if t.Kind() == reflect.Interface {
			fv.SetZero()
			return nil
		}
		return &DecodeError{Field: path, Msg: "must not be null"}
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := json.Unmarshal(raw, fv.Addr().Interface()); err != nil {
			return &DecodeError{Field: path, Msg: err.Error()}
		}
		return nil
	}
	want := ""
	switch t.Kind() {
	case reflect.Pointer:
		nv := reflect.New(t.Elem())
		if err := d.value(raw, nv.Elem(), path); err != nil {
			return err
		}
		fv.Set(nv)
		return nil
	case reflect.Struct:
		return d.object(raw, fv, path)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			want = "string" // base64, as encoding/json
			break
		}
		return d.slice(raw, fv, path)
	case reflect.Array:
		want = "array"
	case reflect.Map:
		want = "object"
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		want = "number"
	case reflect.Interface:
		want = kind
	default:
		return &DecodeError{Field: path, Msg: "unsupported field type " + t.String()}
	}
	if kind != want {
		return &DecodeError{Field: path, Msg: "want " + want + ", got " + kind}
	}
	if err := json.Unmarshal(raw, fv.Addr().Interface()); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &DecodeError{Field: path, Msg: fmt.Sprintf("%s %s does not fit %s", kind, clip(raw), t)}
		}
		return &DecodeError{Field: path, Msg: err.Error()}
	}
	return nil
}

func (d *decoder) slice(raw []byte, fv reflect.Value, path string) error {
	if k := jsonKind(raw); k != "array" {
		return &DecodeError{Field: path, Msg: "want array, got " + k}
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return &DecodeError{Field: path, Msg: "nested too deeply"}
	}
	out := reflect.MakeSlice(fv.Type(), 0, 0)
	err := elements(raw, func(i int, val []byte) error {
		ev := reflect.New(fv.Type().Elem()).Elem()
		if err := d.value(val, ev, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
		out = reflect.Append(out, ev)
		return nil
	})
	if err != nil {
		return err
	}
	fv.Set(out)
	return nil
}

func clip(raw []byte) string {
	if len(raw) > 32 {
		return string(raw[:32]) + "..."
	}
	return string(raw)
}
