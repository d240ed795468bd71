package rpc

import "encoding/json"

// Walking JSON that is already known to be valid (the connection's
// decoder or json.Valid checked it) without encoding/json's token API,
// which allocates per token: the request envelope, batches and Decode all
// walk objects and arrays this way.

// skipWS returns the index of the first non-space byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// unquote returns the string value of the JSON string literal s.
func unquote(s []byte) string {
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' {
			var out string
			json.Unmarshal(s, &out) // valid by precondition
			return out
		}
	}
	return string(s[1 : len(s)-1])
}

// members calls fn with each key and raw value of the object b, which
// must be a valid JSON object, in order, stopping at the first error.
func members(b []byte, fn func(key string, val []byte) error) error {
	i := skipWS(b, 0) + 1 // past '{'
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == '}' {
			return nil
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		end := skipString(b, i)
		key := unquote(b[i:end])
		i = skipWS(b, end) + 1 // past ':'
		i = skipWS(b, i)
		vend := skipValue(b, i)
		if err := fn(key, b[i:vend]); err != nil {
			return err
		}
		i = vend
	}
}

// elements calls fn with each raw element of the array b, which must be a
// valid JSON array, in order, stopping at the first error.
func elements(b []byte, fn func(i int, val []byte) error) error {
	i := skipWS(b, 0) + 1 // past '['
	for n := 0; ; n++ {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == ']' {
			return nil
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		end := skipValue(b, i)
		if err := fn(n, b[i:end]); err != nil {
			return err
		}
		i = end
	}
}
