package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"syscall"

	"hyperpath/internal/logflag"
)

// State is the RPC state (SPDK_RPC_STARTUP / SPDK_RPC_RUNTIME). A method is
// registered with the set of states it may be called in; a call in any other
// state gets CodeInvalidState.
type State uint32

const (
	// Startup is the state before framework_start_init (--wait-for-rpc):
	// only methods that set global options before subsystems initialize.
	Startup State = 1 << iota
	// Runtime is the state after subsystem initialization.
	Runtime
)

func (s State) String() string {
	switch s {
	case Startup:
		return "startup"
	case Runtime:
		return "runtime"
	case Startup | Runtime:
		return "startup|runtime"
	}
	return fmt.Sprintf("State(%#x)", uint32(s))
}

// Handler serves one method. params is the request's "params" value
// verbatim (an object or an array), or nil when the request had none or
// null. The result is marshalled with encoding/json (HTML characters are
// not escaped); return true for methods whose SPDK reply is a bare true.
// A returned error is sent as an error reply: an *Error as is, an error
// wrapping a syscall.Errno as Errno(e), anything else as -32603 with its
// text. ctx is cancelled when the server shuts down.
//
// Handlers run on the connection's goroutine (or their own, see Detached),
// never on a reactor: a handler that touches data-path state must hop to
// the owning reactor itself and wait for the answer.
type Handler func(ctx context.Context, params json.RawMessage) (any, error)

// MethodOption changes how a method is dispatched.
type MethodOption func(*method)

// Detached runs the method's handler on its own goroutine, so that it may
// block for a long time (framework_wait_init waits for Runtime) without
// holding up the requests that follow it on the same connection. Its reply
// is sent when it completes, possibly after replies to later requests (SPDK
// replies in completion order). A detached handler does not hold off
// framework_start_init.
func Detached() MethodOption { return func(m *method) { m.detached = true } }

// exclusive methods run while no other socket request is being handled and
// hold back new ones until they return (SPDK pauses its RPC server during
// framework_start_init).
func exclusive() MethodOption { return func(m *method) { m.exclusive = true } }

// afterReply runs f once the method's reply has been handed on (written, or
// added to its batch), whether the handler succeeded or not.
func afterReply(f func()) MethodOption { return func(m *method) { m.afterReply = f } }

type method struct {
	name       string
	states     State
	h          Handler
	aliasOf    *method
	detached   bool
	exclusive  bool
	afterReply func()
	warned     sync.Once
}

// Options configure a Server. The zero value is valid.
type Options struct {
	// Version is what spdk_get_version reports; zero means DefaultVersion.
	Version Version
	// Logger receives the server's own messages; nil means slog.Default().
	Logger *slog.Logger
	// LogFlags is the registry behind log_set_flag, log_clear_flag and
	// log_get_flags; nil means a new, empty set. The server registers the
	// flag "rpc" in it, which logs every request and reply at Debug.
	LogFlags *logflag.Set
	// LogLevel and PrintLevel back log_set_level/log_get_level and
	// log_set_print_level/log_get_print_level. nil means a private
	// LevelVar at logflag.LevelNotice (level) or slog.LevelInfo (print
	// level); the app wires them into its slog handlers.
	LogLevel, PrintLevel *slog.LevelVar
	// MaxConns caps concurrent connections; 0 means 64 (SPDK). Connections
	// beyond it are closed as soon as they are accepted.
	MaxConns int
}

// Server is an SPDK-compatible JSON-RPC 2.0 server. Create it with
// NewServer, register methods, hooks and subsystems, then Listen and Serve.
// All methods are safe for concurrent use.
type Server struct {
	log      *slog.Logger
	rpcLog   *slog.Logger
	rpcFlag  *logflag.Flag
	flags    *logflag.Set
	level    *slog.LevelVar
	prLevel  *slog.LevelVar
	version  Version
	maxConns int

	mu         sync.RWMutex
	methods    map[string]*method
	order      []*method // registration order
	allow      map[string]bool
	state      State
	runtimeCh  chan struct{} // closed while state == Runtime, once waiters may go
	subsystems []*subsystem
	startInit  func(context.Context) error
	kill       func(syscall.Signal) error

	// gate pauses socket dispatch while an exclusive method runs: other
	// requests hold it for reading around their handler.
	gate sync.RWMutex

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	lmu      sync.Mutex
	ln       net.Listener
	path     string
	lockFile *os.File
	conns    map[*conn]struct{}
	closed   bool
	wg       sync.WaitGroup // accept loop and connections
}

// NewServer returns a server in the Startup state with the built-in
// methods registered (see the package doc for the list).
func NewServer(opts Options) *Server {
	s := &Server{
		log:       opts.Logger,
		flags:     opts.LogFlags,
		level:     opts.LogLevel,
		prLevel:   opts.PrintLevel,
		version:   opts.Version,
		maxConns:  opts.MaxConns,
		methods:   map[string]*method{},
		state:     Startup,
		runtimeCh: make(chan struct{}),
		conns:     map[*conn]struct{}{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.flags == nil {
		s.flags = logflag.NewSet()
	}
	if s.level == nil {
		s.level = new(slog.LevelVar)
		s.level.Set(logflag.LevelNotice)
	}
	if s.prLevel == nil {
		s.prLevel = new(slog.LevelVar)
	}
	if s.version == (Version{}) {
		s.version = DefaultVersion
	}
	if s.maxConns <= 0 {
		s.maxConns = MaxConns
	}
	s.rpcFlag = s.flags.MustRegister("rpc")
	s.rpcLog = s.rpcFlag.Logger(s.log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.registerBuiltins()
	return s
}

// LogFlags returns the log-flag registry behind the log_*_flag methods.
func (s *Server) LogFlags() *logflag.Set { return s.flags }

// LogLevel returns the level behind log_set_level/log_get_level.
func (s *Server) LogLevel() *slog.LevelVar { return s.level }

// PrintLevel returns the level behind log_set_print_level/log_get_print_level.
func (s *Server) PrintLevel() *slog.LevelVar { return s.prLevel }

// Register adds a method callable in states (Startup, Runtime or both).
// It panics if name is empty or already registered, or states is empty:
// those are wiring bugs, caught by the first test that builds the server.
// Methods may be registered while the server is serving.
func (s *Server) Register(name string, states State, h Handler, opts ...MethodOption) {
	if name == "" || h == nil || states&(Startup|Runtime) == 0 || states&^(Startup|Runtime) != 0 {
		panic(fmt.Sprintf("rpc: Register(%q): bad arguments", name))
	}
	m := &method{name: name, states: states, h: h}
	for _, o := range opts {
		o(m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.methods[name]; dup {
		panic(fmt.Sprintf("rpc: method %q registered twice", name))
	}
	s.methods[name] = m
	s.order = append(s.order, m)
}

// RegisterAlias adds alias as a deprecated name of the registered method
// target (SPDK_RPC_REGISTER_ALIAS_DEPRECATED). Calls through the alias log
// a deprecation warning once. rpc_get_methods lists aliases only with
// include_aliases. It panics if target is unknown or itself an alias, or
// alias is taken.
func (s *Server) RegisterAlias(alias, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	base, ok := s.methods[target]
	if !ok || base.aliasOf != nil {
		panic(fmt.Sprintf("rpc: RegisterAlias(%q, %q): no such method", alias, target))
	}
	if _, dup := s.methods[alias]; dup || alias == "" {
		panic(fmt.Sprintf("rpc: method %q registered twice", alias))
	}
	m := &method{name: alias, states: base.states, aliasOf: base}
	s.methods[alias] = m
	s.order = append(s.order, m)
}

// SetAllowlist restricts the callable methods to names (--rpcs-allowed);
// other methods look unregistered (-32601, and absent from
// rpc_get_methods). nil lifts the restriction.
func (s *Server) SetAllowlist(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if names == nil {
		s.allow = nil
		return
	}
	s.allow = make(map[string]bool, len(names))
	for _, n := range names {
		s.allow[n] = true
	}
}

// OnStartInit sets the hook framework_start_init (and StartInit) runs
// before switching to Runtime: the app initializes its subsystems there.
// An error keeps the state at Startup and the call fails with -32603
// "framework_initialization failed". nil means nothing to do.
func (s *Server) OnStartInit(hook func(ctx context.Context) error) {
	s.mu.Lock()
	s.startInit = hook
	s.mu.Unlock()
}

// OnKill sets the hook spdk_kill_instance calls with the requested signal
// before it replies true; it should start the shutdown and return, not
// wait for it. The default sends the signal to this process, as SPDK does,
// so the app's signal handling applies.
func (s *Server) OnKill(hook func(sig syscall.Signal) error) {
	s.mu.Lock()
	s.kill = hook
	s.mu.Unlock()
}

// State returns the current RPC state.
func (s *Server) State() State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state
}

// SetState switches the RPC state. Switching to Runtime releases every
// pending framework_wait_init. Only Startup and Runtime are valid.
func (s *Server) SetState(st State) { s.setState(st, true) }

// setState switches the state; release says whether pending
// framework_wait_init calls may complete now (framework_start_init holds
// them until its own reply has gone out, see releaseWaiters).
func (s *Server) setState(st State, release bool) {
	if st != Startup && st != Runtime {
		panic(fmt.Sprintf("rpc: SetState(%v)", st))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == s.state {
		return
	}
	s.state = st
	if st == Runtime {
		if release {
			close(s.runtimeCh)
		}
	} else if isClosed(s.runtimeCh) {
		s.runtimeCh = make(chan struct{})
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// releaseWaiters lets pending framework_wait_init calls complete if the
// state is Runtime.
func (s *Server) releaseWaiters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == Runtime && !isClosed(s.runtimeCh) {
		close(s.runtimeCh)
	}
}

// runtimeReached returns a channel that is closed once the state is Runtime.
func (s *Server) runtimeReached() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.runtimeCh
}

// StartInit does what framework_start_init does, for apps started without
// --wait-for-rpc: it runs the OnStartInit hook and switches to Runtime. It
// fails with an *Error of CodeInvalidState if the state is already Runtime.
func (s *Server) StartInit(ctx context.Context) error {
	s.gate.Lock()
	defer s.gate.Unlock()
	return s.startInitLocked(ctx, true)
}

// startInitLocked runs the hook and switches to Runtime; release as in
// setState.
func (s *Server) startInitLocked(ctx context.Context, release bool) error {
	if st := s.State(); st != Startup {
		return stateError(st)
	}
	s.mu.RLock()
	hook := s.startInit
	s.mu.RUnlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return Internal("framework_initialization failed").WithCause(err)
		}
	}
	s.setState(Runtime, release)
	return nil
}

func (s *Server) lookup(name string) *method {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.allow != nil && !s.allow[name] {
		return nil
	}
	return s.methods[name]
}

func stateError(current State) *Error {
	if current == Startup {
		return &Error{Code: CodeInvalidState, Message: "Method may only be called after " +
			"framework is initialized using framework_start_init RPC."}
	}
	return &Error{Code: CodeInvalidState, Message: "Method may only be called before " +
		"framework is initialized. Use --wait-for-rpc command line parameter and then " +
		"issue this RPC before the framework_start_init RPC."}
}

var errMethodNotFound = &Error{Code: CodeMethodNotFound, Message: "Method not found"}

// resolve finds the method for name, following an alias.
func (s *Server) resolve(name string) (*method, *Error) {
	m := s.lookup(name)
	if m == nil {
		return nil, errMethodNotFound
	}
	if m.aliasOf != nil {
		m.warned.Do(func() {
			s.log.Warn("RPC method is deprecated", "method", m.name, "use", m.aliasOf.name)
		})
		m = m.aliasOf
	}
	return m, nil
}

// invoke checks the state and runs the handler, turning a panic into
// -32603 so that a bug in one handler does not take the daemon down.
func (s *Server) invoke(ctx context.Context, m *method, params json.RawMessage) (res any, err error) {
	if st := s.State(); m.states&st != st {
		return nil, stateError(st)
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("RPC handler panicked", "method", m.name, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, Internal("Internal error")
		}
	}()
	return m.h(ctx, params)
}

// Call runs method in process, as if a client had sent it with params
// (marshalled with encoding/json; nil for none), and decodes the result
// into result (a pointer, or nil to discard it). State checks apply. It
// returns the *Error a client would have received. The app uses it to
// apply a --json config at startup (see client.LoadConfig, which accepts
// a *Server).
func (s *Server) Call(ctx context.Context, name string, params, result any) error {
	var raw json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("rpc: marshal params of %s: %w", name, err)
		}
		raw = b
		if string(raw) == "null" {
			raw = nil
		}
	}
	m, rerr := s.resolve(name)
	if rerr != nil {
		return rerr
	}
	// Not through the gate: Call may come from inside a hook that runs
	// while framework_start_init holds it.
	res, err := s.invoke(ctx, m, raw)
	if err != nil {
		return toError(err)
	}
	if result == nil {
		return nil
	}
	b, err := marshalResult(res)
	if err != nil {
		return Internal(err.Error())
	}
	if err := json.Unmarshal(b, result); err != nil {
		return fmt.Errorf("rpc: decode result of %s: %w", name, err)
	}
	return nil
}

// errServerClosed is returned by Listen after Shutdown.
var errServerClosed = errors.New("rpc: server closed")
