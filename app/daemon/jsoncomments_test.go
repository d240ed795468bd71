package daemon

import (
	"encoding/json"
	"testing"
)

func TestStripJSONComments(t *testing.T) {
	in := `{ // a comment
  "a": "http://x/*not a comment*/", /* block
  spanning */ "b": "\"//\"", "c": 1 /**/ }`
	out := StripJSONComments([]byte(in))
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v["a"] != "http://x/*not a comment*/" || v["b"] != `"//"` || v["c"].(float64) != 1 {
		t.Fatalf("%v", v)
	}
	if got := StripJSONComments([]byte(`{"x":1} /* unterminated`)); json.Valid(got) != true {
		t.Fatalf("unterminated comment left %q", got)
	}
}

func FuzzStripJSONComments(f *testing.F) {
	f.Add([]byte(`{"a":1}//x`))
	f.Add([]byte(`/* */{"s":"/*"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := StripJSONComments(b)
		if json.Valid(b) && !json.Valid(out) {
			// Valid JSON has no comments outside strings: it must survive.
			t.Fatalf("valid JSON %q became %q", b, out)
		}
	})
}
