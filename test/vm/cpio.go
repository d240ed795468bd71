package vm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// The initramfs is a "newc" cpio archive, the format the kernel unpacks
// (Documentation/driver-api/early-userspace/buffer-format.rst). Each member is
//
//	+--------+----------------------------------------------+------+-----+------+-----+
//	| 070701 | 13 fields of 8 ASCII hex digits:              | name | pad | data | pad |
//	|        | ino mode uid gid nlink mtime filesize         | NUL  | to 4|      | to 4|
//	|        | devmajor devminor rdevmajor rdevminor         |      |     |      |     |
//	|        | namesize(incl. NUL) check(0)                  |      |     |      |     |
//	+--------+----------------------------------------------+------+-----+------+-----+
//
// The header is 110 bytes; header+name is padded to a multiple of 4, and so
// is the data. The archive ends with a member named "TRAILER!!!". The kernel
// accepts several archives back to back, which is how a per-boot archive
// (the guest script, its environment, extra files) is appended to the cached
// base image without rebuilding it.

// Mode bits of cpio members (the st_mode type bits).
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
	modeTypeMsk = 0o170000
)

const cpioTrailer = "TRAILER!!!"

// cpioWriter writes a newc archive. Parent directories of every member are
// created implicitly (once), so callers may add files in any order.
type cpioWriter struct {
	w    *bufio.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCpioWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1, dirs: map[string]bool{".": true, "": true, "/": true}}
}

// cleanName turns a guest path into the archive's relative form ("bin/sh").
func cleanName(name string) (string, error) {
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	if n == "" || n == "." {
		return "", fmt.Errorf("cpio: empty member name %q", name)
	}
	return n, nil
}

func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	if size < 0 || size > 0xffffffff {
		c.err = fmt.Errorf("cpio: %s: size %d does not fit the newc format", name, size)
		return
	}
	nlink := uint32(1)
	if mode&modeTypeMsk == modeDir {
		nlink = 2
	}
	fields := [13]uint32{c.ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rdevMajor, rdevMinor, uint32(len(name) + 1), 0}
	c.ino++
	var b strings.Builder
	b.WriteString("070701")
	for _, f := range fields {
		fmt.Fprintf(&b, "%08x", f)
	}
	b.WriteString(name)
	b.WriteByte(0)
	for (b.Len())%4 != 0 {
		b.WriteByte(0)
	}
	_, c.err = c.w.WriteString(b.String())
}

func (c *cpioWriter) pad(n int64) {
	if c.err != nil {
		return
	}
	if r := n % 4; r != 0 {
		_, c.err = c.w.Write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) mkdirAll(dir string) {
	if c.dirs[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.dirs[dir] = true
	c.header(dir, modeDir|0o755, 0, 0, 0)
}

// Dir adds a directory (and its parents).
func (c *cpioWriter) Dir(name string) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.mkdirAll(n)
	return c.err
}

// File adds a regular file with the given permission bits and contents.
func (c *cpioWriter) File(name string, perm uint32, size int64, r io.Reader) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.mkdirAll(path.Dir(n))
	c.header(n, modeFile|perm&0o7777, size, 0, 0)
	if c.err == nil {
		var got int64
		got, c.err = io.CopyN(c.w, r, size)
		if c.err != nil {
			c.err = fmt.Errorf("cpio: %s: copied %d of %d bytes: %w", n, got, size, c.err)
		}
	}
	c.pad(size)
	return c.err
}

// Bytes adds a regular file from memory.
func (c *cpioWriter) Bytes(name string, perm uint32, data []byte) error {
	return c.File(name, perm, int64(len(data)), bytes.NewReader(data))
}

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.mkdirAll(path.Dir(n))
	c.header(n, modeSymlink|0o777, int64(len(target)), 0, 0)
	if c.err == nil {
		_, c.err = c.w.WriteString(target)
	}
	c.pad(int64(len(target)))
	return c.err
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) error {
	n, err := cleanName(name)
	if err != nil {
		return err
	}
	c.mkdirAll(path.Dir(n))
	c.header(n, modeChar|perm&0o7777, 0, major, minor)
	return c.err
}

// Close writes the trailer and flushes. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.header(cpioTrailer, 0, 0, 0, 0)
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}

// cpioEntry is one member read back by readCpio (used by tests and by
// Image.List to show what an image holds).
type cpioEntry struct {
	Name  string
	Mode  uint32
	Size  int64
	Data  []byte // only for symlinks and files up to readCpioMaxData
	Major uint32
	Minor uint32
}

const readCpioMaxData = 1 << 20

var errCpioFormat = errors.New("cpio: not a newc archive")

// readCpio parses one or more concatenated newc archives. It checks every
// field it uses and never panics on malformed input.
func readCpio(r io.Reader) ([]cpioEntry, error) {
	br := bufio.NewReader(r)
	var out []cpioEntry
	var off int64
	skip := func(n int64) error {
		k, err := io.CopyN(io.Discard, br, n)
		off += k
		return err
	}
	for {
		// Archives may be separated by NUL padding.
		b, err := br.Peek(1)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if b[0] == 0 {
			if err := skip(1); err != nil {
				return out, err
			}
			continue
		}
		var hdr [110]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return out, fmt.Errorf("cpio: header at offset %d: %w", off, err)
		}
		if string(hdr[:6]) != "070701" {
			return out, fmt.Errorf("%w: magic %q at offset %d", errCpioFormat, hdr[:6], off)
		}
		var f [13]uint32
		for i := range f {
			var v uint32
			for _, ch := range hdr[6+8*i : 14+8*i] {
				var d byte
				switch {
				case ch >= '0' && ch <= '9':
					d = ch - '0'
				case ch >= 'a' && ch <= 'f':
					d = ch - 'a' + 10
				case ch >= 'A' && ch <= 'F':
					d = ch - 'A' + 10
				default:
					return out, fmt.Errorf("%w: field %d at offset %d is not hex", errCpioFormat, i, off+6+8*int64(i))
				}
				v = v<<4 | uint32(d)
			}
			f[i] = v
		}
		off += 110
		nameSize := int64(f[11])
		if nameSize < 1 || nameSize > 4096 {
			return out, fmt.Errorf("%w: namesize %d at offset %d", errCpioFormat, nameSize, off-110)
		}
		name := make([]byte, nameSize)
		if _, err := io.ReadFull(br, name); err != nil {
			return out, fmt.Errorf("cpio: name at offset %d: %w", off, err)
		}
		off += nameSize
		if err := skip((4 - off%4) % 4); err != nil {
			return out, err
		}
		e := cpioEntry{Name: strings.TrimRight(string(name), "\x00"), Mode: f[1], Size: int64(f[6]), Major: f[9], Minor: f[10]}
		if e.Name == cpioTrailer {
			continue
		}
		if e.Size <= readCpioMaxData {
			e.Data = make([]byte, e.Size)
			if _, err := io.ReadFull(br, e.Data); err != nil {
				return out, fmt.Errorf("cpio: %s: data: %w", e.Name, err)
			}
			off += e.Size
		} else if err := skip(e.Size); err != nil {
			return out, fmt.Errorf("cpio: %s: data: %w", e.Name, err)
		}
		if err := skip((4 - off%4) % 4); err != nil && err != io.EOF {
			return out, err
		}
		out = append(out, e)
	}
}

// sortedKeys returns the keys of m in order (deterministic archives and cache keys).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
