package proto

import "unicode/utf8"

// Helpers for the fixed-width text fields of NVMe data structures. ASCII
// fields (serial number, model number, firmware revision, TRSVCID, TRADDR)
// are left justified and padded with spaces (NVMe Base 2.3 §1.4.2); NQN
// fields are NUL terminated UTF-8 in a 256-byte field (§4.7).

// putPadded writes s into field, padding with pad. It fails when s does not fit.
func putPadded(field []byte, s string, pad byte) bool {
	if len(s) > len(field) {
		return false
	}
	n := copy(field, s)
	for i := n; i < len(field); i++ {
		field[i] = pad
	}
	return true
}

// getPadded returns the text of a padded field: everything before the first
// NUL, with trailing spaces removed.
func getPadded(field []byte) string {
	n := 0
	for n < len(field) && field[n] != 0 {
		n++
	}
	for n > 0 && field[n-1] == ' ' {
		n--
	}
	return string(field[:n])
}

// putNQN writes a NUL terminated string into a 256-byte NQN field. The string
// must leave room for the terminator and must not contain NUL.
func putNQN(field []byte, s string) bool {
	if len(s) >= len(field) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	n := copy(field, s)
	clear(field[n:])
	return true
}

// getNQN returns the string before the NUL terminator of an NQN field and
// whether a terminator was present.
func getNQN(field []byte) (string, bool) {
	for i, c := range field {
		if c == 0 {
			return string(field[:i]), true
		}
	}
	return string(field), false
}

// MaxNQNLen is the longest NVMe Qualified Name in bytes, not counting the NUL
// terminator (NVMe Base 2.3 §4.7).
const MaxNQNLen = 223

// DiscoveryNQN is the well-known NQN of discovery subsystems (NVMe Base 2.3 §4.7).
const DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

// ValidNQN checks the NQN rules a controller enforces on Connect (NVMe Base
// 2.3 §4.7): non-empty, at most 223 bytes, valid UTF-8 without NUL, and
// starting with "nqn.". It does not check the date code or domain.
func ValidNQN(s string) bool {
	if len(s) < 4 || len(s) > MaxNQNLen || s[:4] != "nqn." || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}
