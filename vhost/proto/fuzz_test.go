package proto

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the request and reply decoders. It
// checks that they never panic, that every error is a *FieldError wrapping
// one of the package's sentinels, that a header error leaves no header
// behind, and that what decodes encodes back to the same bytes and the same
// typed value.
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		f.Add(encodeSample(s), uint8(s.nfds), s.reply)
	}
	f.Fuzz(func(t *testing.T, b []byte, nfds uint8, reply bool) {
		var m Msg
		err := decodeDir(b, int(nfds), &m, reply)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if !errors.Is(err, ErrBadHeader) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if errors.Is(err, ErrBadHeader) && m.Hdr != (Header{}) {
				t.Fatalf("header error left Hdr %v", m.Hdr)
			}
			return
		}
		out := make([]byte, HeaderSize+MaxPayloadSize)
		if n := m.Encode(out); string(out[:n]) != string(b) {
			t.Fatalf("re-encode: got %x, want %x", out[:n], b)
		}
		d := dirRequest
		if reply {
			d = dirReply
		}
		kind, _ := d.kind(specFor(m.Hdr.Request))
		var m2 Msg
		m2.Hdr = m.Hdr
		var got, again any
		switch kind {
		case kindU64, kindOptU64:
			if m.Hdr.Size == 0 {
				return
			}
			v, err := m.U64()
			got, again = v, must(t, err, func() (any, error) { m2.PutU64(v); return m2.U64() })
		case kindVringFile:
			v, err := m.VringFile()
			got, again = v, must(t, err, func() (any, error) { m2.PutVringFile(v); return m2.VringFile() })
		case kindVringState:
			v, err := m.VringState()
			got, again = v, must(t, err, func() (any, error) { m2.PutVringState(v); return m2.VringState() })
		case kindVringAddr:
			v, err := m.VringAddr()
			got, again = v, must(t, err, func() (any, error) { m2.PutVringAddr(v); return m2.VringAddr() })
		case kindMemory:
			var v Memory
			err := m.Memory(&v)
			got, again = v, must(t, err, func() (any, error) { var w Memory; m2.PutMemory(&v); err := m2.Memory(&w); return w, err })
		case kindMemRegion:
			v, err := m.MemRegion()
			got, again = v, must(t, err, func() (any, error) { m2.PutMemRegion(v); return m2.MemRegion() })
		case kindLog:
			v, err := m.Log()
			got, again = v, must(t, err, func() (any, error) { m2.PutLog(v); return m2.Log() })
		case kindConfig:
			if reply && m.Hdr.Request == GetConfig && m.Hdr.Size == 0 {
				return // the back-end's failure answer carries no config
			}
			var v Config
			err := m.Config(&v)
			got, again = v, must(t, err, func() (any, error) { var w Config; m2.PutConfig(&v); err := m2.Config(&w); return w, err })
		case kindInflight:
			v, err := m.Inflight()
			got, again = v, must(t, err, func() (any, error) { m2.PutInflight(v); return m2.Inflight() })
		case kindNone:
			if m.Hdr.Size != 0 {
				t.Fatalf("empty request with %d bytes", m.Hdr.Size)
			}
			return
		default:
			t.Fatalf("decoded a request of unknown kind: %v", m.Hdr)
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("typed round trip: %+v became %+v", got, again)
		}
	})
}

// must fails the test if a message that passed validation fails its typed
// getter, then returns the value re-decoded by f.
func must(t *testing.T, err error, f func() (any, error)) any {
	t.Helper()
	if err != nil {
		t.Fatalf("validated message fails its getter: %v", err)
	}
	v, err := f()
	if err != nil {
		t.Fatalf("re-encoded message fails its getter: %v", err)
	}
	return v
}

// TestWriteFuzzSeeds rewrites testdata/fuzz/FuzzDecode from samples() when
// HYPERPATH_WRITE_SEEDS=1. The files are committed; FuzzDecode also adds
// the same seeds with f.Add.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HYPERPATH_WRITE_SEEDS") != "1" {
		t.Skip("set HYPERPATH_WRITE_SEEDS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range samples() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nbyte(%s)\nbool(%v)\n",
			strconv.Quote(string(encodeSample(s))), strconv.QuoteRune(rune(s.nfds)), s.reply)
		if err := os.WriteFile(filepath.Join(dir, "seed_"+s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
