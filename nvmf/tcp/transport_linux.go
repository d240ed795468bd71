//go:build linux

package tcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf"
	"hyperpath/reactor"
)

// MaxH2CData is the MAXH2CDATA this controller advertises in ICResp: the
// most data one H2CData PDU may carry.
const MaxH2CData = 128 << 10

// listenBacklog is the listen(2) backlog of every listener.
const listenBacklog = 512

// acceptBatch bounds the connections one listener hands out per Accept.
const acceptBatch = 32

// Options configure a Transport.
type Options struct {
	// Opts are the transport options (nvmf_create_transport); zero
	// fields are not defaulted here: start from nvmf.DefaultTransportOpts.
	Opts nvmf.TransportOpts
	// Handler receives every command: the target.
	Handler nvmf.Handler
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Transport is the NVMe/TCP transport.
type Transport struct {
	opts nvmf.TransportOpts
	h    nvmf.Handler
	log  *slog.Logger

	mu        sync.Mutex // listeners, groups, rr, closed: control plane and the acceptor
	listeners []*listener
	groups    []*PollGroup
	rr        int
	closed    bool

	nextID atomic.Uint64
}

var _ nvmf.Transport = (*Transport)(nil)

type listener struct {
	addr nvmf.ListenAddr
	fd   int
	ab   acceptBuf
}

// New validates o and returns a transport with no listener.
func New(o Options) (*Transport, error) {
	if err := o.Opts.Validate(); err != nil {
		return nil, err
	}
	if o.Handler == nil {
		return nil, errors.New("nvmf/tcp: Options.Handler is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Transport{opts: o.Opts, h: o.Handler, log: o.Logger}, nil
}

// Type implements nvmf.Transport.
func (t *Transport) Type() string { return "TCP" }

// Opts implements nvmf.Transport.
func (t *Transport) Opts() nvmf.TransportOpts { return t.opts }

// Listen implements nvmf.Transport: a non-blocking listening socket that
// Accept polls.
func (t *Transport) Listen(a nvmf.ListenAddr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nvmf.ErrClosed
	}
	for _, l := range t.listeners {
		if l.addr == a {
			return fmt.Errorf("%w: %s", nvmf.ErrListenerExists, a)
		}
	}
	fd, err := listenSocket(a)
	if err != nil {
		return err
	}
	t.listeners = append(t.listeners, &listener{addr: a, fd: fd})
	t.log.Info("nvmf/tcp: listening", "addr", a.String())
	return nil
}

func listenSocket(a nvmf.ListenAddr) (int, error) {
	ip := net.ParseIP(a.TrAddr)
	port, err := strconv.ParseUint(a.TrSvcID, 10, 16)
	if ip == nil || err != nil {
		return -1, fmt.Errorf("%w: %s", nvmf.ErrBadAddress, a)
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ip4 := ip.To4(); ip4 != nil && a.AdrFam != "IPv6" {
		s := &unix.SockaddrInet4{Port: int(port)}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		family = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: int(port)}
		copy(s.Addr[:], ip.To16())
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("nvmf/tcp: socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("nvmf/tcp: SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("nvmf/tcp: bind %s: %w", a, err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("nvmf/tcp: listen %s: %w", a, err)
	}
	return fd, nil
}

// StopListen implements nvmf.Transport.
func (t *Transport) StopListen(a nvmf.ListenAddr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, l := range t.listeners {
		if l.addr == a {
			unix.Close(l.fd)
			t.listeners = append(t.listeners[:i], t.listeners[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("%w: %s", nvmf.ErrNoListener, a)
}

// Listeners returns the addresses listened on.
func (t *Transport) Listeners() []nvmf.ListenAddr {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]nvmf.ListenAddr, len(t.listeners))
	for i, l := range t.listeners {
		out[i] = l.addr
	}
	return out
}

// Accept implements nvmf.Transport. Each accepted socket goes to the next
// poll group in round-robin order, by a message to that group's reactor.
func (t *Transport) Accept() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.groups) == 0 {
		return 0
	}
	n := 0
	for _, l := range t.listeners {
		for i := 0; i < acceptBatch; i++ {
			fd, e := accept4(l.fd, &l.ab, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if e != 0 {
				if e != unix.EAGAIN && e != unix.EINTR && e != unix.ECONNABORTED {
					t.log.Warn("nvmf/tcp: accept", "addr", l.addr.String(), "err", e)
				}
				break
			}
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			if t.opts.SockPriority != 0 {
				unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PRIORITY, int(t.opts.SockPriority))
			}
			g := t.groups[t.rr%len(t.groups)]
			t.rr++
			c := newConn(t, g, fd, l.addr, l.peerAddr())
			if err := reactor.Send(g.r, addConnMsg, c); err != nil {
				unix.Close(fd)
				continue
			}
			n++
		}
	}
	return n
}

func (l *listener) peerAddr() nvmf.ListenAddr {
	p := nvmf.ListenAddr{TrType: l.addr.TrType, AdrFam: l.addr.AdrFam}
	ip, port, ok := l.ab.peer()
	if !ok {
		return p
	}
	p.TrAddr = net.IP(ip).String()
	p.TrSvcID = strconv.Itoa(port)
	if len(ip) == net.IPv4len {
		p.AdrFam = "IPv4"
	} else {
		p.AdrFam = "IPv6"
	}
	return p
}

// NewPollGroup implements nvmf.Transport. Called on r.
func (t *Transport) NewPollGroup(r *reactor.Reactor) (nvmf.PollGroup, error) {
	g, err := newPollGroup(t, r)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		g.Close()
		return nil, nvmf.ErrClosed
	}
	t.groups = append(t.groups, g)
	return g, nil
}

// Close implements nvmf.Transport: it closes the listeners and stops
// handing out connections. Poll groups are closed on their reactors.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, l := range t.listeners {
		unix.Close(l.fd)
	}
	t.listeners = nil
	return nil
}

func (t *Transport) removeGroup(g *PollGroup) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, x := range t.groups {
		if x == g {
			t.groups = append(t.groups[:i], t.groups[i+1:]...)
			return
		}
	}
}
