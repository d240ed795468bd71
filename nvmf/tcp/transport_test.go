//go:build linux

package tcp

import (
	"errors"
	"net"
	"strconv"
	"testing"

	"hyperpath/nvmf"
)

type nopHandler struct{}

func (nopHandler) Exec(r *nvmf.Request)         { r.QPair.Complete(r) }
func (nopHandler) QPairDisconnected(nvmf.QPair) {}

func TestListenErrors(t *testing.T) {
	if _, err := New(Options{Opts: nvmf.DefaultTransportOpts()}); err == nil {
		t.Error("New without a handler")
	}
	bad := nvmf.DefaultTransportOpts()
	bad.MaxIOSize = 1000
	if _, err := New(Options{Opts: bad, Handler: nopHandler{}}); err == nil {
		t.Error("New with a bad max_io_size")
	}
	tr, err := New(Options{Opts: nvmf.DefaultTransportOpts(), Handler: nopHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	a := nvmf.ListenAddr{TrType: "TCP", AdrFam: "IPv4", TrAddr: "127.0.0.1", TrSvcID: port}
	if err := tr.Listen(a); err == nil {
		t.Error("listen on a port in use")
	}
	l.Close()
	if err := tr.Listen(a); err != nil {
		t.Fatal(err)
	}
	if err := tr.Listen(a); !errors.Is(err, nvmf.ErrListenerExists) {
		t.Errorf("second listen: %v", err)
	}
	if got := tr.Listeners(); len(got) != 1 || got[0] != a {
		t.Errorf("listeners %v", got)
	}
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("dial the listener: %v", err)
	}
	c.Close()
	if n := tr.Accept(); n != 0 {
		t.Errorf("Accept without poll groups took %d", n)
	}
	if err := tr.StopListen(a); err != nil {
		t.Fatal(err)
	}
	if err := tr.StopListen(a); !errors.Is(err, nvmf.ErrNoListener) {
		t.Errorf("second stop: %v", err)
	}
	if err := tr.Listen(nvmf.ListenAddr{TrType: "TCP", TrAddr: "nonsense", TrSvcID: "1"}); !errors.Is(err, nvmf.ErrBadAddress) {
		t.Errorf("bad address: %v", err)
	}
	tr.Close()
	if err := tr.Listen(a); !errors.Is(err, nvmf.ErrClosed) {
		t.Errorf("listen after close: %v", err)
	}
}
