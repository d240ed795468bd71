package rpc

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// listenBacklog is SPDK's listen(2) backlog for the RPC socket.
const listenBacklog = 512

// listenUnix follows SPDK's spdk_rpc_server_listen: lock first, then
// remove a stale socket, then bind. The lock stays held (by the returned
// file) for as long as the server runs.
func listenUnix(path string) (net.Listener, *os.File, error) {
	if len(path) >= len(syscall.RawSockaddrUnix{}.Path) {
		return nil, nil, fmt.Errorf("rpc: socket path %q is too long (max %d bytes)", path, len(syscall.RawSockaddrUnix{}.Path)-1)
	}
	lockPath := path + ".lock"
	lock, err := os.OpenFile(lockPath, os.O_RDONLY|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("rpc: open lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("rpc: %s (lock %s is held): %w", path, lockPath, ErrInUse)
		}
		return nil, nil, fmt.Errorf("rpc: lock %s: %w", lockPath, err)
	}
	fail := func(err error) (net.Listener, *os.File, error) {
		os.Remove(lockPath)
		lock.Close()
		return nil, nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fail(fmt.Errorf("rpc: %s exists and is not a socket", path))
		}
		if err := os.Remove(path); err != nil {
			return fail(fmt.Errorf("rpc: remove stale socket: %w", err))
		}
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("rpc: socket: %w", err))
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		syscall.Close(fd)
		return fail(fmt.Errorf("rpc: bind %s: %w", path, err))
	}
	if err := syscall.Listen(fd, listenBacklog); err != nil {
		syscall.Close(fd)
		os.Remove(path)
		return fail(fmt.Errorf("rpc: listen %s: %w", path, err))
	}
	f := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(f) // dups the descriptor
	f.Close()
	if err != nil {
		os.Remove(path)
		return fail(fmt.Errorf("rpc: listen %s: %w", path, err))
	}
	return ln, lock, nil
}
