package initiator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// AdrFam is the address family of the controller's transport address.
type AdrFam uint8

const (
	// AdrFamIPv4 is the default.
	AdrFamIPv4 AdrFam = iota
	// AdrFamIPv6 is chosen automatically for an IPv6 literal traddr.
	AdrFamIPv6
)

// String returns the family as SPDK prints it in a transport ID ("IPv4").
func (f AdrFam) String() string {
	if f == AdrFamIPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// ParseAdrFam accepts SPDK's adrfam spellings ("ipv4", "IPv6", ...).
func ParseAdrFam(s string) (AdrFam, error) {
	switch strings.ToLower(s) {
	case "", "ipv4":
		return AdrFamIPv4, nil
	case "ipv6":
		return AdrFamIPv6, nil
	}
	return 0, fmt.Errorf("adrfam %q: only ipv4 and ipv6 are supported over TCP: %w", s, ErrInvalidOptions)
}

// Defaults of Options, after SPDK's bdev_nvme and Linux's nvme-tcp.
const (
	DefaultTRSvcID      = "4420"
	DefaultKATOMs       = 10000 // SPDK keep_alive_timeout_ms
	DefaultNumIOQueues  = 1024  // SPDK num_io_queues
	DefaultIOQueueSize  = 128   // entries per I/O queue (SQSIZE+1)
	DefaultConnectLimit = 10 * time.Second
	adminQueueSize      = 32 // admin SQ entries (ASQSZ minimum)
)

// Options describe one controller association: where the controller is,
// who we are, what to negotiate, which reactors run its queue pairs, and the
// SPDK reconnect policy.
type Options struct {
	// Name labels logs and errors (the bdev_nvme controller name).
	Name string

	// TRAddr and TRSvcID locate the controller (IP literal or host name,
	// TCP port; default 4420). AdrFam defaults to IPv4, or IPv6 for an IPv6
	// literal.
	TRAddr  string
	TRSvcID string
	AdrFam  AdrFam
	// HostAddr and HostSvcID, when set, bind the local end of every
	// connection.
	HostAddr  string
	HostSvcID string

	// SubNQN is the subsystem to connect to (default: the discovery NQN).
	SubNQN string
	// HostNQN and HostID identify this host. Defaults: a random host ID
	// per process and nqn.2014-08.org.nvmexpress:uuid:<host ID>. A HostNQN
	// of that uuid form with a zero HostID sets the HostID from it.
	HostNQN string
	HostID  [16]byte

	// HeaderDigest and DataDigest request HDGST and DDGST in the ICReq;
	// the controller decides (NVMe/TCP 1.0 §3.6.2.2).
	HeaderDigest bool
	DataDigest   bool

	// KATOMs is the Keep Alive Timeout sent in the admin Connect; a Keep
	// Alive goes out every KATOMs/2. 0 means DefaultKATOMs; use
	// DisableKeepAlive to send none.
	KATOMs           uint32
	DisableKeepAlive bool
	// NumIOQueues caps the I/O queues requested (one per reactor in
	// IOReactors at most). 0 means DefaultNumIOQueues.
	NumIOQueues uint32
	// IOQueueSize is the number of entries per I/O queue; at most
	// IOQueueSize-1 commands are outstanding per queue pair. It is capped
	// by CAP.MQES+1 and MAXCMD. 0 means DefaultIOQueueSize.
	IOQueueSize uint32
	// DisableSQFlowControl sets CATTR bit 2 in the I/O queue Connects.
	DisableSQFlowControl bool
	// ConnectTimeout bounds the setup of one queue pair (TCP connect,
	// ICReq, Connect) and of each admin step. 0 means DefaultConnectLimit.
	ConnectTimeout time.Duration

	// The reconnect policy, as SPDK's bdev_nvme (see ValidateReconnect):
	// after a connection loss, IO is held and a reconnect is tried at once
	// and then every ReconnectDelaySec; held IO fails once
	// FastIOFailTimeoutSec passes (0: never early); the controller is given
	// up once CtrlrLossTimeoutSec passes (-1: never; 0: no reconnect after
	// the first attempt, the controller stays failed).
	CtrlrLossTimeoutSec  int32
	ReconnectDelaySec    uint32
	FastIOFailTimeoutSec uint32

	// AdminReactor runs the admin queue pair and the keep-alive timer.
	AdminReactor *reactor.Reactor
	// IOReactors get one I/O queue pair each, in order, as far as the
	// controller grants queues (and NumIOQueues allows).
	IOReactors []*reactor.Reactor

	// OnLost, if set, is called on a goroutine of its own when the
	// controller is given up after CtrlrLossTimeoutSec. The callee
	// typically removes the devices built on it and calls Close.
	OnLost func(c *Ctrlr)
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
}

// ValidateReconnect checks the three reconnect parameters with SPDK's rules
// (bdev_nvme_attach_controller): ctrlr_loss_timeout_sec >= -1; with -1,
// reconnect_delay_sec > 0 and fast_io_fail_timeout_sec 0 or >=
// reconnect_delay_sec; with a positive loss timeout, 0 < reconnect_delay_sec
// <= loss and fast_io_fail 0 or in [reconnect_delay, loss]; with 0, both
// others 0.
func ValidateReconnect(lossSec int32, delaySec, fastFailSec uint32) error {
	bad := func(msg string) error { return fmt.Errorf("%s: %w", msg, ErrInvalidOptions) }
	switch {
	case lossSec < -1:
		return bad("ctrlr_loss_timeout_sec can't be less than -1")
	case lossSec == -1:
		if delaySec == 0 {
			return bad("reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0")
		}
		if fastFailSec != 0 && fastFailSec < delaySec {
			return bad("reconnect_delay_sec can't be more than fast_io_fail_timeout_sec")
		}
	case lossSec > 0:
		if delaySec == 0 {
			return bad("reconnect_delay_sec can't be 0 if ctrlr_loss_timeout_sec is not 0")
		}
		if delaySec > uint32(lossSec) {
			return bad("reconnect_delay_sec can't be more than ctrlr_loss_timeout_sec")
		}
		if fastFailSec != 0 && fastFailSec < delaySec {
			return bad("reconnect_delay_sec can't be more than fast_io_fail_timeout_sec")
		}
		if fastFailSec > uint32(lossSec) {
			return bad("fast_io_fail_timeout_sec can't be more than ctrlr_loss_timeout_sec")
		}
	default:
		if delaySec != 0 || fastFailSec != 0 {
			return bad("both reconnect_delay_sec and fast_io_fail_timeout_sec must be 0 if ctrlr_loss_timeout_sec is 0")
		}
	}
	return nil
}

const hostNQNUUIDPrefix = "nqn.2014-08.org.nvmexpress:uuid:"

var (
	processHostOnce sync.Once
	processHostID   [16]byte
)

// DefaultHostID returns the process's host identifier: random, generated
// once (an RFC 4122 version 4 UUID).
func DefaultHostID() [16]byte {
	processHostOnce.Do(func() {
		rand.Read(processHostID[:])
		processHostID[6] = processHostID[6]&0x0f | 0x40
		processHostID[8] = processHostID[8]&0x3f | 0x80
	})
	return processHostID
}

// HostNQNForID returns the UUID-based host NQN of id (NVMe Base 2.3 §4.7).
func HostNQNForID(id [16]byte) string {
	return hostNQNUUIDPrefix + formatUUID(id)
}

func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, false
	}
	return u, true
}

// normalize validates o and fills in the defaults.
func (o *Options) normalize(needReactors bool) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrInvalidOptions)
	}
	if o.TRAddr == "" {
		return bad("traddr is required")
	}
	if o.TRSvcID == "" {
		o.TRSvcID = DefaultTRSvcID
	}
	if strings.Contains(o.TRAddr, ":") {
		o.AdrFam = AdrFamIPv6
	}
	if o.SubNQN == "" {
		o.SubNQN = proto.DiscoveryNQN
	}
	if !proto.ValidNQN(o.SubNQN) {
		return bad("subnqn %q is not a valid NQN", o.SubNQN)
	}
	zero := [16]byte{}
	if o.HostNQN != "" {
		if !proto.ValidNQN(o.HostNQN) {
			return bad("hostnqn %q is not a valid NQN", o.HostNQN)
		}
		if o.HostID == zero {
			if u, ok := parseUUID(strings.TrimPrefix(o.HostNQN, hostNQNUUIDPrefix)); ok && strings.HasPrefix(o.HostNQN, hostNQNUUIDPrefix) {
				o.HostID = u
			}
		}
	}
	if o.HostID == zero {
		o.HostID = DefaultHostID()
	}
	if o.HostNQN == "" {
		o.HostNQN = HostNQNForID(o.HostID)
	}
	if o.KATOMs == 0 {
		o.KATOMs = DefaultKATOMs
	}
	if o.NumIOQueues == 0 {
		o.NumIOQueues = DefaultNumIOQueues
	}
	if o.NumIOQueues > 65536 {
		return bad("num_io_queues %d is out of range (1..65536)", o.NumIOQueues)
	}
	if o.IOQueueSize == 0 {
		o.IOQueueSize = DefaultIOQueueSize
	}
	if o.IOQueueSize < 2 || o.IOQueueSize > 65536 {
		return bad("I/O queue size %d is out of range (2..65536)", o.IOQueueSize)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectLimit
	}
	if err := ValidateReconnect(o.CtrlrLossTimeoutSec, o.ReconnectDelaySec, o.FastIOFailTimeoutSec); err != nil {
		return err
	}
	if needReactors {
		if o.AdminReactor == nil {
			return bad("an admin reactor is required")
		}
		if len(o.IOReactors) == 0 {
			return bad("at least one I/O reactor is required")
		}
		seen := map[*reactor.Reactor]bool{}
		for _, r := range o.IOReactors {
			if r == nil || seen[r] {
				return bad("I/O reactors must be distinct and non-nil")
			}
			seen[r] = true
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}
