package reactor

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseCoreMask(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"0x1", []int{0}},
		{"0x3", []int{0, 1}},
		{"3", []int{0, 1}},
		{"0X2", []int{1}},
		{"0xF0", []int{4, 5, 6, 7}},
		{"[0,1]", []int{0, 1}},
		{"[1]", []int{1}},
		{"[0-3,8]", []int{0, 1, 2, 3, 8}},
		{"[ 2 , 0 ]", []int{0, 2}},
		{"[1,1]", []int{1}},
		{"0x10000000000000000", []int{64}},
	} {
		got, err := ParseCoreMask(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCoreMask(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0x0", "0", "zz", "[", "[0,", "[a]", "[3-1]", "[-1]", "[5000]", "-1", "[]"} {
		if got, err := ParseCoreMask(bad); err == nil || !errors.Is(err, ErrBadCoreMask) {
			t.Errorf("ParseCoreMask(%q) = %v, %v; want ErrBadCoreMask", bad, got, err)
		}
	}
}

func TestFormatCoreMask(t *testing.T) {
	if got := FormatCoreMask([]int{0, 1}); got != "3" {
		t.Fatalf("got %q", got)
	}
	if got := FormatCoreMask([]int{4}); got != "10" {
		t.Fatalf("got %q", got)
	}
}
