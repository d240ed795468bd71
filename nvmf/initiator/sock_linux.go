//go:build linux

package initiator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// dialTCP opens a non-blocking TCP connection to addr:port, bound to
// hostAddr:hostPort when those are set, with TCP_NODELAY on (commands are
// small and latency bound). It waits for the connection at most until
// deadline. The socket stays non-blocking for its whole life: the control
// goroutine waits on it with poll(2), a reactor polls it.
func dialTCP(ctx context.Context, fam AdrFam, addr, port, hostAddr, hostPort string, deadline time.Time) (int, error) {
	ip, err := resolve(ctx, fam, addr)
	if err != nil {
		return -1, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return -1, fmt.Errorf("trsvcid %q: %w", port, ErrInvalidOptions)
	}
	domain := unix.AF_INET
	if ip.To4() == nil {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return -1, fmt.Errorf("TCP_NODELAY: %w", err)
	}
	if hostAddr != "" || hostPort != "" {
		var lip net.IP
		if hostAddr != "" {
			if lip = net.ParseIP(hostAddr); lip == nil {
				return -1, fmt.Errorf("hostaddr %q is not an IP address: %w", hostAddr, ErrInvalidOptions)
			}
		}
		var lp uint64
		if hostPort != "" {
			if lp, err = strconv.ParseUint(hostPort, 10, 16); err != nil {
				return -1, fmt.Errorf("hostsvcid %q: %w", hostPort, ErrInvalidOptions)
			}
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, sockaddr(domain, lip, int(lp))); err != nil {
			return -1, fmt.Errorf("bind %s:%s: %w", hostAddr, hostPort, err)
		}
	}
	err = unix.Connect(fd, sockaddr(domain, ip, int(p)))
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return -1, fmt.Errorf("connect %s: %w", net.JoinHostPort(addr, port), err)
	}
	if err != nil {
		if err := waitFd(ctx, fd, unix.POLLOUT, deadline); err != nil {
			return -1, fmt.Errorf("connect %s: %w", net.JoinHostPort(addr, port), err)
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return -1, fmt.Errorf("connect %s: %w", net.JoinHostPort(addr, port), err)
		}
		if soErr != 0 {
			return -1, fmt.Errorf("connect %s: %w", net.JoinHostPort(addr, port), unix.Errno(soErr))
		}
	}
	ok = true
	return fd, nil
}

// resolve turns traddr into an IP of the requested family.
func resolve(ctx context.Context, fam AdrFam, addr string) (net.IP, error) {
	if ip := net.ParseIP(addr); ip != nil {
		if fam == AdrFamIPv4 && ip.To4() == nil {
			return nil, fmt.Errorf("traddr %q is not an IPv4 address: %w", addr, ErrInvalidOptions)
		}
		return ip, nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", addr)
	if err != nil {
		return nil, fmt.Errorf("traddr %q: %w", addr, err)
	}
	for _, ip := range ips {
		if (ip.To4() != nil) == (fam != AdrFamIPv6) {
			return ip, nil
		}
	}
	return nil, fmt.Errorf("traddr %q has no %s address: %w", addr, fam, ErrInvalidOptions)
}

func sockaddr(domain int, ip net.IP, port int) unix.Sockaddr {
	if domain == unix.AF_INET {
		sa := &unix.SockaddrInet4{Port: port}
		if ip != nil {
			copy(sa.Addr[:], ip.To4())
		}
		return sa
	}
	sa := &unix.SockaddrInet6{Port: port}
	if ip != nil {
		copy(sa.Addr[:], ip.To16())
	}
	return sa
}

// waitFd waits with poll(2) until fd reports one of events, the deadline
// passes (ErrTimeout) or ctx is done. Control plane only.
func waitFd(ctx context.Context, fd int, events int16, deadline time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrTimeout
		}
		// Wake at least every 50 ms to notice ctx cancellation.
		ms := min(left.Milliseconds()+1, 50)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, int(ms))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll: %w", err)
		}
		if n > 0 {
			return nil
		}
	}
}

// writeFull writes b to the non-blocking fd, waiting with poll. Control
// plane only (connection setup).
func writeFull(ctx context.Context, fd int, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return err
		}
		if err := waitFd(ctx, fd, unix.POLLOUT, deadline); err != nil {
			return err
		}
	}
	return nil
}

// readFull fills b from the non-blocking fd, waiting with poll. Control
// plane only (connection setup).
func readFull(ctx context.Context, fd int, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if n > 0 {
			b = b[n:]
			continue
		}
		if n == 0 && err == nil {
			return ErrConnClosed
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return err
		}
		if err := waitFd(ctx, fd, unix.POLLIN, deadline); err != nil {
			return err
		}
	}
	return nil
}
