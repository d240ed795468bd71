package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// pyDumps re-formats the JSON value raw the way Python's json.dumps does
// with the given indent (rpc.py's print_dict and save_config): key order
// kept, indent spaces per level with ": " and "," at line ends, or, for
// indent < 0 (indent=None), one line with ", " and ": "; strings escaped
// with ensure_ascii (every character outside ' '..'~' as \uXXXX, UTF-16
// surrogate pairs above U+FFFF). Numbers keep their text. raw must be
// valid JSON.
func pyDumps(raw []byte, indent int) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b bytes.Buffer
	p := pyEnc{dec: dec, b: &b, indent: indent}
	if err := p.value(0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type pyEnc struct {
	dec    *json.Decoder
	b      *bytes.Buffer
	indent int
}

func (p *pyEnc) newline(level int) {
	p.b.WriteByte('\n')
	p.b.WriteString(strings.Repeat(" ", p.indent*level))
}

func (p *pyEnc) value(level int) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		object := t == '{'
		open, close := "[", "]"
		if object {
			open, close = "{", "}"
		}
		p.b.WriteString(open)
		first := true
		for p.dec.More() {
			if !first {
				p.b.WriteByte(',')
				if p.indent < 0 {
					p.b.WriteByte(' ')
				}
			}
			first = false
			if p.indent >= 0 {
				p.newline(level + 1)
			}
			if object {
				k, err := p.dec.Token()
				if err != nil {
					return err
				}
				pyString(p.b, k.(string))
				p.b.WriteString(": ")
			}
			if err := p.value(level + 1); err != nil {
				return err
			}
		}
		if _, err := p.dec.Token(); err != nil {
			return err
		}
		if !first && p.indent >= 0 {
			p.newline(level)
		}
		p.b.WriteString(close)
	case string:
		pyString(p.b, t)
	case json.Number:
		s := string(t)
		if s == "-0" { // Python reads it as the integer 0
			s = "0"
		}
		p.b.WriteString(s)
	case bool:
		fmt.Fprint(p.b, t)
	case nil:
		p.b.WriteString("null")
	}
	return nil
}

// pyString writes s as Python's json module does with ensure_ascii=True.
func pyString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= ' ' && r <= '~':
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		default:
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
}

// shQuote quotes s like Python's shlex.quote (rpc.py's print_array).
func shQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_@%+=:,./-", c) >= 0) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
