package virtio

import (
	"encoding/json"
	"errors"
	"testing"

	"hyperpath/rpc"
)

// FuzzDecodeConfig feeds arbitrary configuration spaces and feature sets
// to DecodeConfig: it must never panic, must return the zero value with an
// error, and a config it accepts must survive Encode and a second decode
// unchanged. Seeds in testdata/fuzz/FuzzDecodeConfig are what
// qemu-storage-daemon 7.2 answers for a 1 GiB null-co export with two
// queues, and variants.
func FuzzDecodeConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, features uint64) {
		c, err := DecodeConfig(b, features)
		if err != nil {
			if c != (BlkConfig{}) {
				t.Fatalf("error %v with a non-zero result %+v", err, c)
			}
			return
		}
		if c.CapacitySectors == 0 || c.BlkSize < SectorSize || c.BlkSize&(c.BlkSize-1) != 0 || c.NumQueues == 0 {
			t.Fatalf("accepted an unusable config %+v", c)
		}
		if features&FeatureSegMax != 0 && c.SegMax == 0 {
			t.Fatalf("accepted seg_max 0: %+v", c)
		}
		enc := make([]byte, ConfigSize)
		c.Encode(enc)
		c2, err := DecodeConfig(enc, features)
		if err != nil || c2 != c {
			t.Fatalf("round trip: %+v -> %+v, %v", c, c2, err)
		}
	})
}

// FuzzAttachParams feeds arbitrary params to bdev_virtio_attach_controller's
// decoder and checks (parseAttach): it never panics, an error comes with
// zero Options, accepted reconnect parameters obey SPDK's rules, and what
// save_config writes for the accepted Options (attachEntry) decodes to the
// same Options. Seeds in testdata/fuzz/FuzzAttachParams are valid calls,
// with and without the reconnect parameters, and refused ones.
func FuzzAttachParams(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseAttach(json.RawMessage(b))
		if err != nil {
			if o != (Options{}) {
				t.Fatalf("error %v with non-zero options %+v", err, o)
			}
			var re *rpc.Error
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not an *rpc.Error", err)
			}
			return
		}
		if err := checkReconnect(o.CtrlrLossTimeout, o.ReconnectDelay, o.FastIOFailTimeout); err != nil {
			t.Fatalf("accepted %+v: %v", o, err)
		}
		enc, err := json.Marshal(attachEntry(&o))
		if err != nil {
			t.Fatal(err)
		}
		o2, err := parseAttach(enc)
		if err != nil || o2 != o {
			t.Fatalf("round trip of %s: %+v -> %+v, %v", enc, o, o2, err)
		}
	})
}
