package rpc

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
)

// ErrInUse is returned (wrapped) by Listen when another process holds the
// socket's lock file.
var ErrInUse = errors.New("RPC socket path in use by another instance")

// Listen takes the lock <path>.lock (flock LOCK_EX|LOCK_NB; failing with
// ErrInUse if another instance holds it), removes a stale socket at path,
// and binds and listens there with a backlog of 512. Call Serve next.
// A Server listens on at most one path.
func (s *Server) Listen(path string) error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		return errServerClosed
	}
	if s.ln != nil {
		return errors.New("rpc: already listening on " + s.path)
	}
	ln, lock, err := listenUnix(path)
	if err != nil {
		return err
	}
	s.ln, s.lockFile, s.path = ln, lock, path
	return nil
}

// Addr returns the socket path given to Listen, or "".
func (s *Server) Addr() string {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.path
}

// Serve accepts connections until Shutdown or Close and serves each on its
// own goroutine. Connections beyond Options.MaxConns are closed at once.
// It returns nil after Shutdown, or the error that stopped accepting.
func (s *Server) Serve() error {
	s.lmu.Lock()
	ln := s.ln
	if ln == nil || s.closed {
		s.lmu.Unlock()
		if s.closed {
			return nil
		}
		return errors.New("rpc: Serve before Listen")
	}
	s.wg.Add(1)
	s.lmu.Unlock()
	defer s.wg.Done()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.lmu.Lock()
			closed := s.closed
			s.lmu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// EMFILE and friends: wait a little, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("RPC accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.lmu.Lock()
		if s.closed || len(s.conns) >= s.maxConns {
			s.lmu.Unlock()
			nc.Close()
			continue
		}
		c := &conn{s: s, nc: nc, w: nc}
		c.ctx, c.cancel = context.WithCancel(s.ctx)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.lmu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve(nc)
			c.wg.Wait()
			c.cancel()
			nc.Close()
			s.lmu.Lock()
			delete(s.conns, c)
			s.lmu.Unlock()
		}()
	}
}

// Shutdown stops the server gracefully: it stops accepting, removes the
// socket and its lock file (so a new instance may start), stops reading
// new requests, cancels the context of running handlers, and waits until
// they have replied and every connection is closed, or until ctx is done
// (then it closes the connections at once and returns ctx.Err()).
// Pending framework_wait_init calls fail with -32603.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lmu.Lock()
	if s.closed {
		s.lmu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	if s.ln != nil {
		os.Remove(s.path)
		s.ln.Close()
	}
	if s.lockFile != nil {
		os.Remove(s.lockFile.Name())
		s.lockFile.Close() // releases the flock
	}
	now := time.Now()
	for c := range s.conns {
		c.nc.SetReadDeadline(now)
	}
	s.lmu.Unlock()
	s.cancel()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.lmu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.lmu.Unlock()
		return ctx.Err()
	}
}

// Close is Shutdown without a deadline.
func (s *Server) Close() error { return s.Shutdown(context.Background()) }

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
