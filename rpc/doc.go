// Package rpc is Hyperpath's JSON-RPC 2.0 server: SPDK's wire contract on
// a Unix socket, so that SPDK's unmodified scripts/rpc.py (and our own
// hpctl, package rpc/client) drive the daemon. It knows nothing of the data
// path; modules register their methods, and the app wires them together.
//
// # Wire format
//
// A connection carries a stream of bare JSON values, with no framing and
// no newline required (rpc.py sends pretty-printed requests without a
// trailing newline; several may arrive in one read or one may be split
// over many):
//
//	request  := {"jsonrpc":"2.0", "method":<string>, "id":<string|number|null>, "params":<object|array|null>}
//	            jsonrpc optional but "2.0" if present; id and params optional;
//	            no other keys, no key twice
//	batch    := [request, request, ...]          (not empty)
//	reply    := {"jsonrpc":"2.0","id":<id verbatim>,"result":<value>}\n
//	          | {"jsonrpc":"2.0","id":<id verbatim or null>,"error":{"code":<int>,"message":<string>}}\n
//	batch reply := [reply,reply,...]\n          (in completion order; omitted if all were notifications)
//
// Replies are compact JSON with exactly that key order. A successful call
// without an id (or with id null) gets no reply; errors always get one.
// One JSON value may be at most MaxRequestBytes (256 KiB) and MaxValues
// (8192) values long; a larger or malformed value gets -32700 "Parse error"
// and the connection is closed, because a byte stream has no point to
// resynchronize at. A value that is neither object nor array, a bad
// envelope, or an empty batch gets -32600 "Invalid request" and the
// connection stays open.
//
// # Methods, states and errors
//
// Methods are registered with Register(name, states, handler). The server
// starts in Startup; framework_start_init (or StartInit) runs the app's
// hook and switches to Runtime. A method called outside its states gets -1
// with SPDK's texts; an unknown one -32601 "Method not found". Handlers
// return a result (marshalled with encoding/json) or an error: *Error for
// an exact code and message, an error wrapping a syscall.Errno for -errno
// with glibc's strerror text (SPDK's bdev layer), anything else -32603 with
// its text. Decode and DecodeRelaxed decode params as strictly as SPDK's
// spdk_json_decode_object; what a decode failure replies differs per SPDK
// method (see RPC.md), so the handler picks it:
//
//	var req struct {
//		Name    string `json:"name" rpc:"required"`
//		Timeout uint64 `json:"timeout"`
//	}
//	if err := rpc.Decode(params, &req); err != nil {
//		return nil, rpc.DecodeFailed(err) // bdev_*: -32603 "spdk_json_decode_object failed"
//		// or: rpc.InvalidParams("Invalid parameters").WithCause(err)   (nvmf_*, vhost_*: -32602)
//	}
//
// Built-in methods: spdk_get_version, rpc_get_methods,
// framework_get_subsystems, framework_get_config, framework_start_init,
// framework_wait_init, log_set_flag, log_clear_flag, log_get_flags,
// log_set_level, log_get_level, log_set_print_level, log_get_print_level,
// spdk_kill_instance. The app registers the ones that need reactors
// (framework_get_reactors, thread_get_stats, thread_get_pollers) and each
// module its own (SPDK's *_rpc.c).
//
// Subsystems (RegisterSubsystem) back framework_get_subsystems and
// framework_get_config, which is what save_config reads: each has
// dependencies, listed in initialization order, and a writer that returns
// the calls that recreate its live configuration.
//
// # Threading model
//
// Serve accepts on one goroutine and serves each connection on its own
// goroutine (at most Options.MaxConns, 64). A connection's requests are
// decoded and handled one after another in arrival order, so a client that
// pipelines requests sees their effects in order; a method registered
// Detached (framework_wait_init) runs on its own goroutine instead and may
// reply after later requests. Handlers of different connections run
// concurrently, so a handler must synchronize whatever it shares, and runs
// on an ordinary goroutine, never on a reactor: a handler that reads or
// changes data-path state hops to the owning reactor itself (a message on
// its ring) and waits for the answer, honouring ctx. While
// framework_start_init runs, no other socket request is handled (SPDK
// pauses its RPC server during subsystem init); handlers must therefore not
// call StartInit themselves. Registration, SetState and the hooks may be
// used from any goroutine at any time.
//
// # Lifecycle
//
//  1. NewServer(opts); Register methods, RegisterSubsystem, OnStartInit,
//     OnKill; the app keeps the server's LogFlags, LogLevel, PrintLevel.
//  2. Listen(path): lock <path>.lock, remove a stale socket, bind.
//  3. go Serve(). Without --wait-for-rpc the app calls StartInit itself;
//     with it, a client calls framework_start_init.
//  4. Shutdown(ctx) (or Close) on SIGTERM: stop accepting, unlink the socket
//     and lock, let running handlers reply, close connections.
package rpc
