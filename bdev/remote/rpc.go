package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator"
	"hyperpath/reactor"
	"hyperpath/rpc"
)

// multipathOpts is the multipath_opts object of SPDK's schema.
type multipathOpts struct {
	Policy   string `json:"policy"`
	Selector string `json:"selector"`
	MinIO    uint32 `json:"min_io"`
}

// attachParams are bdev_nvme_attach_controller's params (SPDK schema.yaml).
type attachParams struct {
	Name                  string         `json:"name" rpc:"required"`
	TRType                string         `json:"trtype" rpc:"required"`
	TRAddr                string         `json:"traddr" rpc:"required"`
	AdrFam                string         `json:"adrfam"`
	TRSvcID               string         `json:"trsvcid"`
	Priority              string         `json:"priority"`
	SubNQN                string         `json:"subnqn"`
	HostNQN               string         `json:"hostnqn"`
	HostAddr              string         `json:"hostaddr"`
	HostSvcID             string         `json:"hostsvcid"`
	PrchkReftag           bool           `json:"prchk_reftag"`
	PrchkGuard            bool           `json:"prchk_guard"`
	HDgst                 bool           `json:"hdgst"`
	DDgst                 bool           `json:"ddgst"`
	FabricsConnectTimeout uint64         `json:"fabrics_connect_timeout_us"`
	Multipath             string         `json:"multipath"`
	NumIOQueues           *uint32        `json:"num_io_queues"`
	CtrlrLossTimeoutSec   *int32         `json:"ctrlr_loss_timeout_sec"`
	ReconnectDelaySec     *uint32        `json:"reconnect_delay_sec"`
	FastIOFailTimeoutSec  *uint32        `json:"fast_io_fail_timeout_sec"`
	PSK                   string         `json:"psk"`
	MaxBdevs              *uint32        `json:"max_bdevs"`
	DHChapKey             string         `json:"dhchap_key"`
	DHChapCtrlrKey        string         `json:"dhchap_ctrlr_key"`
	AllowUnrecognizedCSI  bool           `json:"allow_unrecognized_csi"`
	MultipathOpts         *multipathOpts `json:"multipath_opts"`
	DisableSQFlowControl  bool           `json:"disable_sq_flow_control"`
}

// setOptionsParams are bdev_nvme_set_options's params. Those not listed
// in the comments are accepted for compatibility and have no effect.
type setOptionsParams struct {
	ActionOnTimeout        string         `json:"action_on_timeout"`
	TimeoutUs              uint64         `json:"timeout_us"`
	TimeoutAdminUs         uint64         `json:"timeout_admin_us"`
	KeepAliveTimeoutMs     *uint32        `json:"keep_alive_timeout_ms"` // honoured
	ArbitrationBurst       uint32         `json:"arbitration_burst"`
	LowPriorityWeight      uint32         `json:"low_priority_weight"`
	MediumPriorityWeight   uint32         `json:"medium_priority_weight"`
	HighPriorityWeight     uint32         `json:"high_priority_weight"`
	NVMeAdminqPollPeriodUs uint64         `json:"nvme_adminq_poll_period_us"`
	NVMeIOQPollPeriodUs    uint64         `json:"nvme_ioq_poll_period_us"`
	IOQueueRequests        *uint32        `json:"io_queue_requests"` // honoured: commands per I/O queue pair
	DelayCmdSubmit         bool           `json:"delay_cmd_submit"`
	TransportRetryCount    uint32         `json:"transport_retry_count"`
	BdevRetryCount         int32          `json:"bdev_retry_count"`
	TransportAckTimeout    uint8          `json:"transport_ack_timeout"`
	CtrlrLossTimeoutSec    *int32         `json:"ctrlr_loss_timeout_sec"`   // honoured
	ReconnectDelaySec      *uint32        `json:"reconnect_delay_sec"`      // honoured
	FastIOFailTimeoutSec   *uint32        `json:"fast_io_fail_timeout_sec"` // honoured
	DisableAutoFailback    bool           `json:"disable_auto_failback"`
	GenerateUUIDs          bool           `json:"generate_uuids"`
	TransportTOS           uint8          `json:"transport_tos"`
	NVMeErrorStat          bool           `json:"nvme_error_stat"`
	RDMASRQSize            uint32         `json:"rdma_srq_size"`
	IOPathStat             bool           `json:"io_path_stat"`
	AllowAccelSequence     bool           `json:"allow_accel_sequence"`
	RDMAMaxCQSize          uint32         `json:"rdma_max_cq_size"`
	RDMACMEventTimeoutMs   uint16         `json:"rdma_cm_event_timeout_ms"`
	DHChapDigests          []string       `json:"dhchap_digests"`
	DHChapDHGroups         []string       `json:"dhchap_dhgroups"`
	RDMAUMRPerIO           bool           `json:"rdma_umr_per_io"`
	TCPConnectTimeoutMs    *uint32        `json:"tcp_connect_timeout_ms"` // honoured: connection setup timeout
	EnableFlush            bool           `json:"enable_flush"`
	MultipathOpts          *multipathOpts `json:"multipath_opts"`
}

// RegisterRPC registers bdev_nvme_attach_controller,
// bdev_nvme_detach_controller, bdev_nvme_get_controllers,
// bdev_nvme_reset_controller and bdev_nvme_set_options on s, with
// controllers on reactors (the first runs the admin queues). It registers
// and returns the Module; the app calls Module.Close before stopping the
// reactors. save_config gets one bdev_nvme_attach_controller per controller
// through the bdevs' ConfigEntry.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry, reactors []*reactor.Reactor) *Module {
	m := New(reg, reactors, nil)
	reg.RegisterModule(m)
	m.RegisterRPC(s)
	return m
}

// SetLogger replaces the module's logger (before any attach).
func (m *Module) SetLogger(l *slog.Logger) { m.log = l }

// RegisterRPC registers the module's methods on s.
func (m *Module) RegisterRPC(s *rpc.Server) {
	s.Register("bdev_nvme_attach_controller", rpc.Runtime, func(ctx context.Context, p json.RawMessage) (any, error) {
		var req attachParams
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		cfg, maxBdevs, err := m.attachConfig(&req)
		if err != nil {
			return nil, err
		}
		c, err := m.Attach(ctx, cfg, maxBdevs)
		if c == nil {
			return nil, attachError(err)
		}
		if err != nil {
			return nil, attachError(err)
		}
		names := c.BdevNames()
		if names == nil {
			names = []string{}
		}
		return names, nil
	})

	s.Register("bdev_nvme_detach_controller", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name      string `json:"name" rpc:"required"`
			TRType    string `json:"trtype"`
			TRAddr    string `json:"traddr"`
			AdrFam    string `json:"adrfam"`
			TRSvcID   string `json:"trsvcid"`
			SubNQN    string `json:"subnqn"`
			HostAddr  string `json:"hostaddr"`
			HostSvcID string `json:"hostsvcid"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		c, err := m.Controller(req.Name)
		if err != nil {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		// With path params, only a matching path goes (the controller
		// has one path, so that is the whole controller).
		cfg := c.Config()
		for _, f := range []struct{ got, want string }{
			{strings.ToLower(req.TRType), "tcp"}, {req.TRAddr, cfg.TRAddr}, {req.TRSvcID, cfg.TRSvcID},
			{req.SubNQN, cfg.SubNQN}, {req.HostAddr, cfg.HostAddr}, {req.HostSvcID, cfg.HostSvcID},
			{strings.ToLower(req.AdrFam), strings.ToLower(cfg.AdrFam.String())},
		} {
			if f.got != "" && f.got != f.want {
				return nil, rpc.Errno(syscall.ENODEV)
			}
		}
		if err := m.Detach(req.Name); err != nil {
			if errors.Is(err, bdev.ErrClaimed) {
				return nil, rpc.Errno(syscall.EBUSY)
			}
			return nil, rpc.Errorf(-int(syscall.EIO), "%v", err)
		}
		return true, nil
	})

	s.Register("bdev_nvme_get_controllers", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		var list []*Controller
		if req.Name != "" {
			c, err := m.Controller(req.Name)
			if err != nil {
				return nil, rpc.Errorf(-int(syscall.EINVAL), "Controller %s does not exist", req.Name)
			}
			list = []*Controller{c}
		} else {
			list = m.Controllers()
		}
		out := make([]bdev.Ordered, 0, len(list))
		for _, c := range list {
			out = append(out, c.Describe())
		}
		return out, nil
	})

	s.Register("bdev_nvme_reset_controller", rpc.Runtime, func(ctx context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name   string  `json:"name" rpc:"required"`
			CNTLID *uint16 `json:"cntlid"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		c, err := m.Controller(req.Name)
		if err != nil || (req.CNTLID != nil && *req.CNTLID != c.c.CNTLID()) {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		if err := c.c.Reset(ctx); err != nil {
			return nil, rpc.Errorf(-int(syscall.EIO), "%v", err)
		}
		return true, nil
	})

	s.Register("bdev_nvme_set_options", rpc.Startup|rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req setOptionsParams
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		if len(m.Controllers()) > 0 {
			return nil, rpc.Errorf(-int(syscall.EPERM), "RPC not permitted with nvme controllers already attached")
		}
		d := m.Defaults()
		if req.KeepAliveTimeoutMs != nil {
			d.KeepAliveTimeoutMs = *req.KeepAliveTimeoutMs
		}
		if req.IOQueueRequests != nil {
			d.IOQueueSize = *req.IOQueueRequests + 1
		}
		if req.CtrlrLossTimeoutSec != nil {
			d.CtrlrLossTimeoutSec = *req.CtrlrLossTimeoutSec
		}
		if req.ReconnectDelaySec != nil {
			d.ReconnectDelaySec = *req.ReconnectDelaySec
		}
		if req.FastIOFailTimeoutSec != nil {
			d.FastIOFailTimeoutSec = *req.FastIOFailTimeoutSec
		}
		if req.TCPConnectTimeoutMs != nil {
			d.ConnectTimeout = time.Duration(*req.TCPConnectTimeoutMs) * time.Millisecond
		}
		if err := m.SetDefaults(d); err != nil {
			return nil, rpc.Errno(syscall.EINVAL).WithCause(err)
		}
		return true, nil
	})
}

// attachConfig validates the params the way SPDK does and fills in the
// module defaults.
func (m *Module) attachConfig(req *attachParams) (AttachConfig, int, error) {
	d := m.Defaults()
	invalid := func(format string, a ...any) error {
		return rpc.Errorf(-int(syscall.EINVAL), format, a...)
	}
	switch strings.ToLower(req.TRType) {
	case "tcp":
	case "rdma":
		return AttachConfig{}, 0, rpc.Errorf(-int(syscall.EOPNOTSUPP), "trtype rdma is not supported yet")
	default:
		return AttachConfig{}, 0, invalid("trtype %s is not supported (tcp only)", req.TRType)
	}
	fam, err := initiator.ParseAdrFam(req.AdrFam)
	if err != nil {
		return AttachConfig{}, 0, invalid("%v", err)
	}
	switch req.Multipath {
	case "", "disable", "failover", "multipath":
	default:
		return AttachConfig{}, 0, invalid("multipath %q is not one of disable, failover, multipath", req.Multipath)
	}
	if req.PSK != "" || req.DHChapKey != "" || req.DHChapCtrlrKey != "" {
		return AttachConfig{}, 0, rpc.Errorf(-int(syscall.EOPNOTSUPP), "TLS PSK and DH-HMAC-CHAP are not supported")
	}
	if req.Priority != "" {
		if _, err := strconv.ParseUint(req.Priority, 10, 32); err != nil {
			return AttachConfig{}, 0, invalid("priority %q is not a number", req.Priority)
		}
	}
	if req.SubNQN == "" {
		return AttachConfig{}, 0, invalid("subnqn is required for an NVMe-oF controller")
	}
	cfg := AttachConfig{
		Name: req.Name, AdrFam: fam, TRAddr: req.TRAddr, TRSvcID: req.TRSvcID, SubNQN: req.SubNQN,
		HostNQN: req.HostNQN, HostAddr: req.HostAddr, HostSvcID: req.HostSvcID,
		HeaderDigest: req.HDgst, DataDigest: req.DDgst, PrchkReftag: req.PrchkReftag, PrchkGuard: req.PrchkGuard,
		CtrlrLossTimeoutSec: d.CtrlrLossTimeoutSec, ReconnectDelaySec: d.ReconnectDelaySec,
		FastIOFailTimeoutSec: d.FastIOFailTimeoutSec, KeepAliveTimeoutMs: d.KeepAliveTimeoutMs,
		IOQueueSize: d.IOQueueSize, ConnectTimeout: d.ConnectTimeout, Multipath: req.Multipath,
		DisableSQFlowControl: req.DisableSQFlowControl,
	}
	if cfg.TRSvcID == "" {
		cfg.TRSvcID = initiator.DefaultTRSvcID
	}
	if req.FabricsConnectTimeout != 0 {
		cfg.ConnectTimeout = time.Duration(req.FabricsConnectTimeout) * time.Microsecond
	}
	if req.NumIOQueues != nil {
		if *req.NumIOQueues == 0 || *req.NumIOQueues > 65536 {
			return AttachConfig{}, 0, invalid("num_io_queues %d is out of range (1..65536)", *req.NumIOQueues)
		}
		cfg.NumIOQueues = *req.NumIOQueues
	}
	if req.CtrlrLossTimeoutSec != nil {
		cfg.CtrlrLossTimeoutSec = *req.CtrlrLossTimeoutSec
	}
	if req.ReconnectDelaySec != nil {
		cfg.ReconnectDelaySec = *req.ReconnectDelaySec
	}
	if req.FastIOFailTimeoutSec != nil {
		cfg.FastIOFailTimeoutSec = *req.FastIOFailTimeoutSec
	}
	if err := initiator.ValidateReconnect(cfg.CtrlrLossTimeoutSec, cfg.ReconnectDelaySec, cfg.FastIOFailTimeoutSec); err != nil {
		return AttachConfig{}, 0, rpc.Errno(syscall.EINVAL).WithCause(err)
	}
	maxBdevs := 128
	if req.MaxBdevs != nil {
		maxBdevs = int(*req.MaxBdevs)
	}
	return cfg, maxBdevs, nil
}

// attachError maps an Attach failure to SPDK's reply: -114 for a
// duplicate name or path, -errno for connection failures, -22 for bad
// options.
func attachError(err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, ErrExists):
		return rpc.Errorf(-int(syscall.EALREADY), "%v", err)
	case errors.Is(err, ErrTooManyBdevs):
		return rpc.Errorf(-int(syscall.ERANGE), "%v", err)
	case errors.Is(err, initiator.ErrInvalidOptions):
		return rpc.Errorf(-int(syscall.EINVAL), "%v", err)
	case errors.Is(err, bdev.ErrExists):
		return rpc.Errorf(-int(syscall.EEXIST), "%v", err)
	case errors.As(err, &errno):
		return rpc.Errorf(-int(errno), "%v", err)
	case errors.Is(err, initiator.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return rpc.Errorf(-int(syscall.ETIMEDOUT), "%v", err)
	case errors.Is(err, initiator.ErrProtocol):
		return rpc.Errorf(-int(syscall.EPROTO), "%v", err)
	}
	return rpc.Errorf(-int(syscall.EIO), "%v", err)
}

// Describe returns the controller as bdev_nvme_get_controllers reports it.
func (c *Controller) Describe() bdev.Ordered {
	cfg := &c.cfg
	ctrlr := bdev.Obj("state", c.c.State().String(), "trid", c.trid(), "cntlid", c.c.CNTLID(),
		"host", bdev.Obj("nqn", cfg.HostNQN, "addr", cfg.HostAddr, "svcid", cfg.HostSvcID, "no_shn_notification", false))
	return bdev.Obj("name", cfg.Name, "ctrlrs", []bdev.Ordered{ctrlr})
}

// String names the controller for logs.
func (c *Controller) String() string {
	return fmt.Sprintf("nvme controller %s (%s:%s %s)", c.cfg.Name, c.cfg.TRAddr, c.cfg.TRSvcID, c.cfg.SubNQN)
}
