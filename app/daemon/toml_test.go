package daemon

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTOMLToJSONKeepsFileOrder(t *testing.T) {
	doc := `
[[bdev_null_create]]
name = "N0"
num_blocks = 1024
block_size = 512

[[bdev_malloc_create]]
name = "M0"
num_blocks = 64
block_size = 4096

[[bdev_null_create]]
name = "N1"
num_blocks = 8
block_size = 512

[[bdev_wait_for_examine]]
`
	out, err := TOMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Subsystems []struct {
			Config []struct {
				Method string
				Params map[string]any
			}
		}
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cfg.Subsystems[0].Config {
		n, _ := c.Params["name"].(string)
		got = append(got, c.Method+":"+n)
	}
	want := "bdev_null_create:N0 bdev_malloc_create:M0 bdev_null_create:N1 bdev_wait_for_examine:"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %q\nwant  %q", strings.Join(got, " "), want)
	}
	if _, err := TOMLToJSON([]byte("x = 1\n")); err == nil || !strings.Contains(err.Error(), "array of tables") {
		t.Fatalf("scalar top-level key: %v", err)
	}
	if _, err := TOMLToJSON([]byte("[[a]\n")); err == nil {
		t.Fatal("broken TOML accepted")
	}
}

func TestParseMemSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512 << 20, "1g": 1 << 30, "1G": 1 << 30, "64m": 64 << 20, "4096k": 4 << 20, "2GB": 2 << 30} {
		if got, err := ParseMemSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "x", "1t", "0"} {
		if _, err := ParseMemSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
