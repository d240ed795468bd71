//go:build !linux

package tcp

import (
	"errors"
	"log/slog"

	"hyperpath/nvmf"
)

// Options configure a Transport.
type Options struct {
	Opts    nvmf.TransportOpts
	Handler nvmf.Handler
	Logger  *slog.Logger
}

// Transport is the NVMe/TCP transport; it needs Linux.
type Transport struct{ nvmf.Transport }

// New fails: the transport uses Linux epoll and socket calls.
func New(Options) (*Transport, error) {
	return nil, errors.New("nvmf/tcp: only supported on Linux")
}
