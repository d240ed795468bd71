// Package client is a Go client for Hyperpath's (and SPDK's) JSON-RPC
// socket, and the client-side config algorithms of rpc.py (save_config,
// load_config).
//
// A Client owns one connection. Requests are written as compact JSON
// followed by "\n" with ids 1, 2, 3, ...; one reader goroutine decodes the
// reply stream (no framing needed) and hands each reply to the call with
// the same id, so Call may be used from several goroutines at once and
// calls may be pipelined. Error replies come back as *rpc.Error.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"hyperpath/rpc"
)

// DefaultSocket is SPDK's default RPC socket path.
const DefaultSocket = "/var/tmp/spdk.sock"

// ErrClosed is returned (wrapped) by calls on a client whose connection is
// gone; errors.Is(err, ErrClosed) tells a lost connection from an error
// reply.
var ErrClosed = errors.New("rpc client: connection closed")

// Client is a connection to an RPC server.
type Client struct {
	nc net.Conn

	wmu sync.Mutex // serializes request writes

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan reply
	order   []uint64 // ids in the order sent, for replies with a null id
	err     error    // set once the reader stops
	done    chan struct{}
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *rpc.Error      `json:"error"`
	err    error
}

type wireReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *rpc.Error      `json:"error"`
}

// Dial connects to the Unix socket at path.
func Dial(path string) (*Client, error) {
	return DialContext(context.Background(), path)
}

// DialContext connects to the Unix socket at path, giving up when ctx is
// done.
func DialContext(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return New(nc), nil
}

// New wraps an established connection.
func New(nc net.Conn) *Client {
	c := &Client{nc: nc, pending: map[uint64]chan reply{}, done: make(chan struct{})}
	go c.read()
	return c
}

// Close closes the connection; pending calls fail with ErrClosed.
func (c *Client) Close() error {
	err := c.nc.Close()
	<-c.done
	return err
}

func (c *Client) read() {
	defer close(c.done)
	dec := json.NewDecoder(c.nc)
	var err error
	for {
		var raw json.RawMessage
		if err = dec.Decode(&raw); err != nil {
			break
		}
		raw = bytes.TrimLeft(raw, " \t\r\n")
		if len(raw) == 0 || raw[0] != '{' {
			continue // batch replies are not ours; we never send batches
		}
		var wr wireReply
		if err = json.Unmarshal(raw, &wr); err != nil {
			break
		}
		r := reply{Result: wr.Result, Error: wr.Error}
		if r.Error == nil && r.Result == nil {
			r.err = fmt.Errorf("rpc client: reply has neither result nor error: %s", raw)
		}
		c.deliver(wr.ID, r)
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for id, ch := range c.pending {
		ch <- reply{err: c.err}
		delete(c.pending, id)
	}
	c.order = nil
	c.mu.Unlock()
}

// deliver hands a reply to its call. A reply with id null (the server
// could not read our request's id) goes to the oldest pending call: the
// server handles a connection's requests in order.
func (c *Client) deliver(rawID json.RawMessage, r reply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var id uint64
	if string(rawID) == "null" || rawID == nil {
		if len(c.order) == 0 {
			return
		}
		id = c.order[0]
	} else {
		n, err := strconv.ParseUint(string(rawID), 10, 64)
		if err != nil {
			return // not an id we sent
		}
		id = n
	}
	ch, ok := c.pending[id]
	if !ok {
		return // a call that timed out
	}
	delete(c.pending, id)
	c.dropOrder(id)
	ch <- r
}

func (c *Client) dropOrder(id uint64) {
	for i, o := range c.order {
		if o == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			return
		}
	}
}

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	ID      uint64          `json:"id"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Call sends method with params and waits for the reply. params is
// marshalled with encoding/json (a json.RawMessage is sent verbatim); nil
// sends no "params" key, like rpc.py for a command without arguments. The
// result is decoded into result, a pointer (a *json.RawMessage keeps it
// raw), or dropped when result is nil. An error reply is returned as
// *rpc.Error; a lost connection as an error wrapping ErrClosed; when ctx
// ends first, ctx.Err() (wrapped) and a late reply is discarded.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	var p json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("rpc client: marshal params of %s: %w", method, err)
		}
		if string(b) != "null" {
			p = b
		}
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.order = append(c.order, id)
	c.mu.Unlock()

	b, err := json.Marshal(request{JSONRPC: "2.0", Method: method, ID: id, Params: p})
	if err != nil {
		c.forget(id)
		return fmt.Errorf("rpc client: marshal request: %w", err)
	}
	b = append(b, '\n')
	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetWriteDeadline(dl)
	} else {
		c.nc.SetWriteDeadline(time.Time{})
	}
	_, err = c.nc.Write(b)
	c.wmu.Unlock()
	if err != nil {
		c.forget(id)
		return fmt.Errorf("%w: write %s: %v", ErrClosed, method, err)
	}

	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if r.Error != nil {
			return r.Error
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(r.Result, result); err != nil {
			return fmt.Errorf("rpc client: decode result of %s: %w", method, err)
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("rpc client: %s: %w", method, ctx.Err())
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.dropOrder(id)
	c.mu.Unlock()
}
