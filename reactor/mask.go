package reactor

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// ErrBadCoreMask is wrapped by ParseCoreMask errors.
var ErrBadCoreMask = errors.New("bad core mask")

// MaxCores bounds core numbers accepted in a mask.
const MaxCores = 1024

// ParseCoreMask parses an SPDK-style core mask: a hexadecimal bit mask with
// or without 0x ("0x3", "3") or a bracketed list with ranges ("[0,1]",
// "[0-3,8]"). It returns the cores in increasing order.
func ParseCoreMask(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadCoreMask)
	}
	var cores []int
	if strings.HasPrefix(s, "[") {
		if !strings.HasSuffix(s, "]") {
			return nil, fmt.Errorf("%w %q: missing ']'", ErrBadCoreMask, s)
		}
		seen := map[int]bool{}
		for _, part := range strings.Split(s[1:len(s)-1], ",") {
			part = strings.TrimSpace(part)
			lo, hi, isRange := strings.Cut(part, "-")
			a, err := parseCore(lo)
			if err != nil {
				return nil, fmt.Errorf("%w %q: %v", ErrBadCoreMask, s, err)
			}
			b := a
			if isRange {
				if b, err = parseCore(hi); err != nil {
					return nil, fmt.Errorf("%w %q: %v", ErrBadCoreMask, s, err)
				}
				if b < a {
					return nil, fmt.Errorf("%w %q: range %d-%d runs backwards", ErrBadCoreMask, s, a, b)
				}
			}
			for c := a; c <= b; c++ {
				if !seen[c] {
					seen[c] = true
					cores = append(cores, c)
				}
			}
		}
	} else {
		hex := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
		v, ok := new(big.Int).SetString(hex, 16)
		if !ok || v.Sign() < 0 {
			return nil, fmt.Errorf("%w %q: want a hex mask like 0x3 or a list like [0,1]", ErrBadCoreMask, s)
		}
		if v.BitLen() > MaxCores {
			return nil, fmt.Errorf("%w %q: cores above %d", ErrBadCoreMask, s, MaxCores-1)
		}
		for i := 0; i < v.BitLen(); i++ {
			if v.Bit(i) == 1 {
				cores = append(cores, i)
			}
		}
	}
	if len(cores) == 0 {
		return nil, fmt.Errorf("%w %q: no cores selected", ErrBadCoreMask, s)
	}
	sort.Ints(cores)
	return cores, nil
}

func parseCore(s string) (int, error) {
	c, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("core %q is not a number", s)
	}
	if c < 0 || c >= MaxCores {
		return 0, fmt.Errorf("core %d out of range 0..%d", c, MaxCores-1)
	}
	return c, nil
}

// FormatCoreMask renders cores as a hexadecimal mask without the 0x prefix,
// the way SPDK prints cpumasks ("3" for cores 0 and 1).
func FormatCoreMask(cores []int) string {
	v := new(big.Int)
	for _, c := range cores {
		v.SetBit(v, c, 1)
	}
	return v.Text(16)
}
