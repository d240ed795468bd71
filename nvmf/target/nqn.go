package target

import (
	"strings"
	"unicode/utf8"

	"hyperpath/bdev"
	"hyperpath/nvmf/proto"
)

// uuidNQNPrefix starts the UUID form of an NQN (NVMe Base 2.3 §4.7).
const uuidNQNPrefix = "nqn.2014-08.org.nvmexpress:uuid:"

// ValidSubsystemNQN checks an NQN the way SPDK does when a subsystem is
// created or a host is added (NVMe Base 2.3 §4.7): at most 223 bytes of
// UTF-8; either the UUID form "nqn.2014-08.org.nvmexpress:uuid:<uuid>" or
// "nqn.yyyy-mm.<reverse domain>[:<anything>]", where the domain is labels
// of letters, digits and hyphens, each starting with a letter and ending
// with a letter or digit.
func ValidSubsystemNQN(s string) bool {
	if !proto.ValidNQN(s) || !utf8.ValidString(s) {
		return false
	}
	if s == proto.DiscoveryNQN {
		return true
	}
	if strings.HasPrefix(s, uuidNQNPrefix) {
		_, err := bdev.ParseUUID(s[len(uuidNQNPrefix):])
		return err == nil && len(s) == len(uuidNQNPrefix)+36
	}
	rest := s[len("nqn."):]
	// yyyy-mm.
	if len(rest) < 8 || rest[4] != '-' || rest[7] != '.' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6} {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	month := int(rest[5]-'0')*10 + int(rest[6]-'0')
	if month < 1 || month > 12 {
		return false
	}
	domain := rest[8:]
	if i := strings.IndexByte(domain, ':'); i >= 0 {
		domain = domain[:i]
	}
	if domain == "" {
		return false
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || !isLetter(label[0]) {
			return false
		}
		last := label[len(label)-1]
		if !isLetter(last) && !isDigit(last) {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isLetter(c) && !isDigit(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// validASCII reports whether s is printable ASCII of at most n bytes, as
// Identify's SN and MN fields require.
func validASCII(s string, n int) bool {
	if len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
