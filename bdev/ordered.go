package bdev

import (
	"bytes"
	"encoding/json"
)

// KV is one key of an Ordered JSON object.
type KV struct {
	Key   string
	Value any
}

// Ordered is a JSON object that keeps its key order, for RPC results whose
// shape (and key order) must match SPDK's.
type Ordered []KV

// MarshalJSON implements json.Marshaler.
func (o Ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(kv.Key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(kv.Value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Obj builds an Ordered object from alternating keys and values:
// Obj("name", n, "uuid", u). Keys must be strings (a programming error
// otherwise, hence the panic).
func Obj(kv ...any) Ordered {
	if len(kv)%2 != 0 {
		panic("bdev.Obj: odd number of arguments")
	}
	o := make(Ordered, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		o = append(o, KV{Key: kv[i].(string), Value: kv[i+1]})
	}
	return o
}
