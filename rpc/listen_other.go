//go:build !linux

package rpc

import (
	"errors"
	"net"
	"os"
)

func listenUnix(path string) (net.Listener, *os.File, error) {
	return nil, nil, errors.New("rpc: Listen is implemented on Linux only")
}
