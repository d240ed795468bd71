package rpc

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sockDir returns a short temporary directory (Unix socket paths are
// limited to 107 bytes, and t.TempDir can be long).
func sockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hprpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startServer listens on a fresh socket and serves until the test ends.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	path := filepath.Join(sockDir(t), "spdk.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

// rawConn is a test client that writes raw bytes and reads reply lines.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, path string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// line reads one reply line (without "\n"), failing the test after 5 s.
func (c *rawConn) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// expectClosed checks that the server closed the connection with nothing
// more to read.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := c.br.ReadString('\n')
	if err == nil || s != "" {
		c.t.Fatalf("want connection closed, got %q, %v", s, err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("want connection closed, timed out")
	}
}

// expectSilence checks that nothing arrives within d.
func (c *rawConn) expectSilence(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	s, err := c.br.ReadString('\n')
	if s != "" || err == nil {
		c.t.Fatalf("want no reply, got %q", s)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		c.t.Fatalf("want no reply, got %v", err)
	}
}

// call sends a request and returns its reply line.
func (c *rawConn) call(req string) string {
	c.t.Helper()
	c.send(req)
	return c.line()
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
