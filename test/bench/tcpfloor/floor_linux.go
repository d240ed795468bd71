package main

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// run sets up the connection, runs the server and the client on their
// pinned threads, and returns the client's round trips after the warmup.
func run(o options) ([]time.Duration, error) {
	ln, port, err := listen()
	if err != nil {
		return nil, err
	}
	defer unix.Close(ln)

	srvErr := make(chan error, 1)
	go func() { srvErr <- serve(o, ln) }()

	type result struct {
		rtts []time.Duration
		err  error
	}
	cliDone := make(chan result, 1)
	go func() {
		rtts, err := client(o, port)
		cliDone <- result{rtts, err}
	}()
	res := <-cliDone
	// The client closed its socket: the server reads EOF and returns.
	if err := <-srvErr; err != nil && res.err == nil {
		res.err = err
	}
	return res.rtts, res.err
}

// pin locks the calling goroutine to its OS thread and the thread to cpu.
func pin(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	return nil
}

func listen() (fd, port int, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	}
	if err == nil {
		err = unix.Listen(fd, 1)
	}
	var sa unix.Sockaddr
	if err == nil {
		sa, err = unix.Getsockname(fd)
	}
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// setup sets TCP_NODELAY and, for -mode spin, O_NONBLOCK.
func setup(o options, fd int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("TCP_NODELAY: %w", err)
	}
	if o.mode == "spin" {
		return unix.SetNonblock(fd, true)
	}
	return nil
}

func serve(o options, ln int) error {
	if err := pin(o.serverCPU); err != nil {
		return err
	}
	fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer unix.Close(fd)
	if err := setup(o, fd); err != nil {
		return err
	}
	req, resp := make([]byte, o.reqBytes), make([]byte, o.respBytes)
	for {
		if err := readFull(fd, req); err != nil {
			if errors.Is(err, errEOF) {
				return nil
			}
			return fmt.Errorf("server read: %w", err)
		}
		if err := writeFull(fd, resp); err != nil {
			return fmt.Errorf("server write: %w", err)
		}
	}
}

func client(o options, port int) ([]time.Duration, error) {
	if err := pin(o.clientCPU); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := setup(o, fd); err != nil {
		return nil, err
	}
	req, resp := make([]byte, o.reqBytes), make([]byte, o.respBytes)
	rtts := make([]time.Duration, 0, 1<<20)
	start := time.Now()
	measureFrom, end := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	for {
		t0 := time.Now()
		if t0.After(end) {
			return rtts, nil
		}
		if err := writeFull(fd, req); err != nil {
			return nil, fmt.Errorf("client write: %w", err)
		}
		if err := readFull(fd, resp); err != nil {
			return nil, fmt.Errorf("client read: %w", err)
		}
		if t0.After(measureFrom) {
			rtts = append(rtts, time.Since(t0))
		}
	}
}

var errEOF = errors.New("connection closed")

// readFull reads len(b) bytes, retrying at once on EAGAIN (spin mode).
func readFull(fd int, b []byte) error {
	for got := 0; got < len(b); {
		n, err := unix.Read(fd, b[got:])
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return errEOF
		}
		got += n
	}
	return nil
}

// writeFull writes all of b, retrying at once on EAGAIN.
func writeFull(fd int, b []byte) error {
	for put := 0; put < len(b); {
		n, err := unix.Write(fd, b[put:])
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err != nil:
			return err
		}
		put += n
	}
	return nil
}
