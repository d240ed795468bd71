package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Limits of the framing layer, as in SPDK's lib/jsonrpc.
const (
	// MaxRequestBytes bounds one JSON value (request or batch) including
	// the whitespace before it (SPDK_JSONRPC_RECV_BUF_SIZE).
	MaxRequestBytes = 256 << 10
	// MaxValues bounds the JSON values in one request, counting each
	// object/array begin and end, key and scalar (SPDK_JSONRPC_MAX_VALUES).
	MaxValues = 8192
	// MaxConns is the default cap on concurrent connections
	// (SPDK_JSONRPC_MAX_CONNS).
	MaxConns = 64
)

// writeTimeout bounds one reply write: a client that stops reading is
// dropped rather than holding a handler forever.
const writeTimeout = 30 * time.Second

var (
	errTooLarge = errors.New("request exceeds 256 KiB")
	errTooLate  = errors.New("connection closed after a parse error")
)

// frameReader feeds the JSON decoder and refuses to buffer more than
// MaxRequestBytes of a value that has not been completed yet. The decoder
// only reads when its buffer holds no complete value, so the bytes read
// since its last value boundary are exactly the pending value.
type frameReader struct {
	r   io.Reader
	n   int64
	dec *json.Decoder
}

func (f *frameReader) Read(p []byte) (int, error) {
	room := MaxRequestBytes - (f.n - f.dec.InputOffset())
	if room <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

// conn is one client connection. Its goroutine reads requests one after
// another and runs their handlers in arrival order; Detached handlers run
// on goroutines of their own. Replies are written whole, under wmu.
type conn struct {
	s      *Server
	nc     net.Conn // nil for serveStream without a socket (tests, fuzzing)
	w      io.Writer
	wmu    sync.Mutex
	werr   error
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // detached handlers
}

// ServeConn serves one already accepted connection until the peer closes
// it, a parse error, or Shutdown, then closes it. It does not count
// against MaxConns.
func (s *Server) ServeConn(nc net.Conn) {
	c := &conn{s: s, nc: nc, w: nc}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.serve(nc)
	c.wg.Wait()
	c.cancel()
	nc.Close()
}

// serveStream serves requests read from r with replies to w, without a
// socket: the request decoder and dispatcher exactly as a connection runs
// them. When r is exhausted or framing fails it cancels the handlers still
// running (detached ones) and returns once they have replied.
func (s *Server) serveStream(ctx context.Context, r io.Reader, w io.Writer) {
	c := &conn{s: s, w: w}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.serve(r)
	c.cancel()
	c.wg.Wait()
}

// serve reads and handles requests until the stream ends or fails. The
// caller waits for c.wg (detached handlers) before closing.
func (c *conn) serve(r io.Reader) {
	fr := &frameReader{r: r}
	dec := json.NewDecoder(fr)
	fr.dec = dec
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == nil && !countOK(raw) {
			err = errTooLarge
		}
		if err != nil {
			var se *json.SyntaxError
			switch {
			case errors.As(err, &se), errors.Is(err, errTooLarge):
				// SPDK answers with a parse error and drops the
				// connection: there is no resync point in a stream.
				c.s.rpcLog.Debug("JSON parse error, closing connection", "err", err)
				c.write(errorReply(nil, &Error{Code: CodeParseError, Message: "Parse error"}))
				// Nothing more goes out, not even replies of detached
				// handlers still running.
				c.wmu.Lock()
				c.werr = errTooLate
				c.wmu.Unlock()
				c.cancel()
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				// Peer closed (or half-closed); answer what is in flight.
			default:
				// Read error, or the deadline Shutdown sets.
			}
			break
		}
		if c.ctx.Err() != nil {
			break
		}
		c.s.rpcLog.Debug("request", "json", string(raw))
		c.process(raw)
	}
}

// write sends one reply followed by "\n". After a failed write the
// connection is finished: the reader is woken by closing the socket.
func (c *conn) write(b []byte) {
	if b == nil {
		return
	}
	c.s.rpcLog.Debug("response", "json", string(b))
	b = append(b, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	if c.nc != nil {
		c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if _, err := c.w.Write(b); err != nil {
		c.werr = err
		c.cancel()
		if c.nc != nil {
			c.nc.Close()
		}
	}
}

// process handles one complete JSON value: a request, a batch, or junk.
func (c *conn) process(raw []byte) {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	switch raw[0] {
	case '{':
		c.request(raw, c.write)
	case '[':
		var elems [][]byte
		elements(raw, func(_ int, e []byte) error {
			elems = append(elems, e)
			return nil
		})
		if len(elems) == 0 {
			c.write(errorReply(nil, &Error{Code: CodeInvalidRequest, Message: "Invalid request"}))
			return
		}
		b := &batch{c: c, pending: len(elems) + 1}
		for _, e := range elems {
			c.request(e, b.add)
		}
		b.add(nil) // the extra count: nothing is sent before every element was dispatched
	default:
		c.write(errorReply(nil, &Error{Code: CodeInvalidRequest, Message: "Invalid request"}))
	}
}

// batch collects the replies of one batch request in completion order and
// sends them as one array when the last element completes, or nothing if
// every element was a notification.
type batch struct {
	c       *conn
	mu      sync.Mutex
	pending int
	buf     []byte
}

func (b *batch) add(reply []byte) {
	b.mu.Lock()
	if reply != nil {
		if b.buf == nil {
			b.buf = append(b.buf, '[')
		} else {
			b.buf = append(b.buf, ',')
		}
		b.buf = append(b.buf, reply...)
	}
	b.pending--
	done := b.pending == 0
	b.mu.Unlock()
	if done && b.buf != nil {
		b.c.write(append(b.buf, ']'))
	}
}

// request validates one request object, dispatches it and passes its reply
// (without newline; nil when none is due) to done, possibly later, from
// another goroutine, when the method is Detached.
func (c *conn) request(raw []byte, done func([]byte)) {
	if jsonKind(raw) != "object" { // a batch element
		done(errorReply(nil, errInvalidRequest))
		return
	}
	env, rerr := parseEnvelope(raw)
	if rerr != nil {
		done(errorReply(env.id, rerr))
		return
	}
	m, rerr := c.s.resolve(env.method)
	if rerr != nil {
		done(errorReply(env.id, rerr))
		return
	}
	if m.detached {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			res, err := c.s.invoke(c.ctx, m, env.params)
			done(c.s.reply(env.id, m.name, res, err))
		}()
		return
	}
	if m.exclusive {
		c.s.gate.Lock()
	} else {
		c.s.gate.RLock()
	}
	res, err := c.s.invoke(c.ctx, m, env.params)
	if m.exclusive {
		c.s.gate.Unlock()
	} else {
		c.s.gate.RUnlock()
	}
	done(c.s.reply(env.id, m.name, res, err))
	if m.afterReply != nil {
		m.afterReply()
	}
}

// reply encodes the reply to a request with the given id, without the
// trailing newline; nil for a successful notification.
func (s *Server) reply(id json.RawMessage, name string, res any, err error) []byte {
	if err != nil {
		re := toError(err)
		if re.cause != nil {
			s.rpcLog.Debug("method failed", "method", name, "code", re.Code, "err", re.cause)
		}
		return errorReply(id, re)
	}
	if id == nil || string(id) == "null" {
		return nil
	}
	body, merr := marshalResult(res)
	if merr != nil {
		s.log.Error("RPC result does not marshal", "method", name, "err", merr)
		return errorReply(id, Internal("Internal error"))
	}
	b := make([]byte, 0, len(body)+len(id)+32)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, body...)
	return append(b, '}')
}

// errorReply encodes an error reply. id nil means null.
func errorReply(id json.RawMessage, e *Error) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	b := make([]byte, 0, 64+len(e.Message)+len(id))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	return append(b, "}}"...)
}

func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// marshalResult encodes a handler's result compactly, leaving <, > and &
// as they are (SPDK's writer does not escape them).
func marshalResult(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// envelope is a validated request object.
type envelope struct {
	id     json.RawMessage // verbatim; nil when absent
	method string
	params json.RawMessage // nil when absent or null
}

var errInvalidRequest = &Error{Code: CodeInvalidRequest, Message: "Invalid request"}

// parseEnvelope checks a request object the way SPDK's
// parse_single_request does. The keys are decoded strictly (no unknown or
// duplicate keys; method required); jsonrpc, if present, must be "2.0";
// method must be a string; id a string, number or null; params an object,
// an array or null. The id is echoed in the error reply only when the
// failure is the params (SPDK records it just before that check).
func parseEnvelope(raw []byte) (envelope, *Error) {
	var env envelope
	var version, method, id, params json.RawMessage
	err := members(raw, func(key string, val []byte) error {
		var slot *json.RawMessage
		switch key {
		case "jsonrpc":
			slot = &version
		case "method":
			slot = &method
		case "id":
			slot = &id
		case "params":
			slot = &params
		default:
			return errInvalidRequest
		}
		if *slot != nil {
			return errInvalidRequest // duplicate key
		}
		*slot = val
		return nil
	})
	if err != nil {
		return env, errInvalidRequest
	}
	if version != nil {
		var v string
		if version[0] != '"' || json.Unmarshal(version, &v) != nil || v != "2.0" {
			return env, errInvalidRequest
		}
	}
	if method == nil || method[0] != '"' || json.Unmarshal(method, &env.method) != nil {
		return env, errInvalidRequest
	}
	if id != nil {
		switch jsonKind(id) {
		case "string", "number", "null":
			env.id = id
		default:
			return env, errInvalidRequest
		}
	}
	if params != nil {
		switch jsonKind(params) {
		case "null":
		case "object", "array":
			env.params = params
		default:
			return env, errInvalidRequest
		}
	}
	return env, nil
}

// countOK reports whether raw (valid JSON) has at most MaxValues values,
// counted as SPDK's parser counts them: each scalar, each string (keys
// included), and each begin and end of an object or array.
func countOK(raw []byte) bool {
	n := 0
	for i := 0; i < len(raw); i++ {
		switch ch := raw[i]; ch {
		case ' ', '\t', '\r', '\n', ',', ':':
			continue
		case '{', '}', '[', ']':
			n++
		case '"':
			n++
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		default: // number, true, false, null: skip to its end
			n++
			for i+1 < len(raw) && !bytes.ContainsRune([]byte(" \t\r\n,:]}"), rune(raw[i+1])) {
				i++
			}
		}
		if n > MaxValues {
			return false
		}
	}
	return true
}
