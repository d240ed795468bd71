package target

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"hyperpath/bdev"
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
	"hyperpath/rpc"
)

// defaultTargetName is the only NVMe-oF target (SPDK's default tgt_name).
const defaultTargetName = "nvmf_tgt"

func invalidParams(cause error) *rpc.Error {
	return rpc.InvalidParams("Invalid parameters").WithCause(cause)
}

func notFoundNQN(nqn string) *rpc.Error {
	return rpc.InvalidParams(fmt.Sprintf("Subsystem with NQN '%s' not found", nqn))
}

func checkTgt(name string) error {
	if name != "" && name != defaultTargetName {
		return rpc.InvalidParams("Unable to find a target.")
	}
	return nil
}

// decodeFunc is rpc.Decode or rpc.DecodeRelaxed.
type decodeFunc func(json.RawMessage, any) error

// decodeParams decodes p into req and checks its tgt_name (tgtName points
// into req): undecodable params are "Invalid parameters", another target
// name is checkTgt's error.
func decodeParams(p json.RawMessage, decode decodeFunc, req any, tgtName *string) error {
	if err := decode(p, req); err != nil {
		return invalidParams(err)
	}
	return checkTgt(*tgtName)
}

// subsystemParams is decodeParams followed by subsystemFor on the NQN that
// nqn points to (a field of req).
func (t *Target) subsystemParams(p json.RawMessage, decode decodeFunc, req any, tgtName, nqn *string) (*Subsystem, error) {
	if err := decodeParams(p, decode, req, tgtName); err != nil {
		return nil, err
	}
	return t.subsystemFor(*nqn)
}

// RegisterRPC registers the nvmf_* methods on s and returns the writer of
// the "nvmf" subsystem's save_config section; the app registers it with
// s.RegisterSubsystem("nvmf", []string{"bdev"}, writer).
func (t *Target) RegisterRPC(s *rpc.Server) func() []rpc.ConfigEntry {
	s.Register("nvmf_create_transport", rpc.Runtime, t.rpcCreateTransport)
	s.Register("nvmf_get_transports", rpc.Runtime, t.rpcGetTransports)
	s.Register("nvmf_create_subsystem", rpc.Runtime, t.rpcCreateSubsystem)
	s.Register("nvmf_delete_subsystem", rpc.Runtime, t.rpcDeleteSubsystem)
	s.Register("nvmf_get_subsystems", rpc.Runtime, t.rpcGetSubsystems)
	s.Register("nvmf_subsystem_add_ns", rpc.Runtime, t.rpcAddNS)
	s.Register("nvmf_subsystem_remove_ns", rpc.Runtime, t.rpcRemoveNS)
	s.Register("nvmf_subsystem_add_listener", rpc.Runtime, t.rpcListener(true))
	s.Register("nvmf_subsystem_remove_listener", rpc.Runtime, t.rpcListener(false))
	s.Register("nvmf_subsystem_add_host", rpc.Runtime, t.rpcAddHost)
	s.Register("nvmf_subsystem_remove_host", rpc.Runtime, t.rpcRemoveHost)
	s.Register("nvmf_subsystem_allow_any_host", rpc.Runtime, t.rpcAllowAnyHost)
	s.Register("nvmf_subsystem_get_controllers", rpc.Runtime, t.rpcGetControllers)
	s.Register("nvmf_subsystem_get_qpairs", rpc.Runtime, t.rpcGetQPairs)
	s.Register("nvmf_subsystem_get_listeners", rpc.Runtime, t.rpcGetListeners)
	return t.saveConfig
}

// transportParams are nvmf_create_transport's params (decoded relaxed, as
// SPDK does, so every transport's options are accepted).
type transportParams struct {
	TrType              string  `json:"trtype" rpc:"required"`
	TgtName             string  `json:"tgt_name"`
	MaxQueueDepth       uint16  `json:"max_queue_depth"`
	MaxIOQPairsPerCtrlr uint16  `json:"max_io_qpairs_per_ctrlr"`
	InCapsuleDataSize   *uint32 `json:"in_capsule_data_size"`
	MaxIOSize           uint32  `json:"max_io_size"`
	IOUnitSize          uint32  `json:"io_unit_size"`
	MaxAQDepth          uint32  `json:"max_aq_depth"`
	IOBufSmallCacheSize uint32  `json:"iobuf_small_cache_size"`
	IOBufLargeCacheSize uint32  `json:"iobuf_large_cache_size"`
	Zcopy               bool    `json:"zcopy"`
	C2HSuccess          *bool   `json:"c2h_success"`
	DIFInsertOrStrip    bool    `json:"dif_insert_or_strip"`
	SockPriority        uint32  `json:"sock_priority"`
	AbortTimeoutSec     uint32  `json:"abort_timeout_sec"`
	AcceptorPollRate    uint32  `json:"acceptor_poll_rate"`
	AckTimeout          uint32  `json:"ack_timeout"`
	DataWRPoolSize      uint32  `json:"data_wr_pool_size"`
	DisableCmdPassthru  bool    `json:"disable_command_passthru"`
	KAS                 uint16  `json:"kas"`
	MinKATO             uint32  `json:"min_kato"`
}

func (t *Target) rpcCreateTransport(_ context.Context, p json.RawMessage) (any, error) {
	var req transportParams
	if err := decodeParams(p, rpc.DecodeRelaxed, &req, &req.TgtName); err != nil {
		return nil, err
	}
	up := strings.ToUpper(req.TrType)
	switch up {
	case "TCP":
	case "RDMA":
		return nil, rpc.Internal("Transport type 'RDMA' is not supported yet")
	default:
		return nil, rpc.InvalidParams(fmt.Sprintf("Invalid transport type '%s'", req.TrType))
	}
	o := nvmf.DefaultTransportOpts()
	set16 := func(dst *uint16, v uint16) {
		if v != 0 {
			*dst = v
		}
	}
	set32 := func(dst *uint32, v uint32) {
		if v != 0 {
			*dst = v
		}
	}
	set16(&o.MaxQueueDepth, req.MaxQueueDepth)
	set16(&o.MaxIOQPairsPerCtrlr, req.MaxIOQPairsPerCtrlr)
	if req.InCapsuleDataSize != nil {
		o.InCapsuleDataSize = *req.InCapsuleDataSize
	}
	set32(&o.MaxIOSize, req.MaxIOSize)
	set32(&o.IOUnitSize, req.IOUnitSize)
	set32(&o.MaxAQDepth, req.MaxAQDepth)
	set32(&o.IOBufSmallCacheSize, req.IOBufSmallCacheSize)
	set32(&o.IOBufLargeCacheSize, req.IOBufLargeCacheSize)
	set32(&o.AbortTimeoutSec, req.AbortTimeoutSec)
	set32(&o.AcceptorPollRateUs, req.AcceptorPollRate)
	set16(&o.KAS, req.KAS)
	set32(&o.MinKATOMs, req.MinKATO)
	if req.C2HSuccess != nil {
		o.C2HSuccess = *req.C2HSuccess
	}
	o.SockPriority = req.SockPriority
	o.AckTimeout = req.AckTimeout
	o.DataWRPoolSize = req.DataWRPoolSize
	o.DisableCmdPassthru = req.DisableCmdPassthru
	o.Zcopy = req.Zcopy
	if req.DIFInsertOrStrip {
		return nil, rpc.InvalidParams("dif_insert_or_strip is not supported")
	}
	if _, err := t.CreateTransport(up, o); err != nil {
		switch {
		case errors.Is(err, ErrExists):
			return nil, rpc.Internal(fmt.Sprintf("Transport type '%s' already exists", req.TrType))
		case errors.Is(err, ErrInvalid):
			return nil, rpc.InvalidParams("Invalid parameters").WithCause(err)
		}
		return nil, rpc.Internal(fmt.Sprintf("Transport type '%s' create failed", req.TrType)).WithCause(err)
	}
	return true, nil
}

// dumpTransport is a transport as nvmf_get_transports reports it (SPDK's
// nvmf_transport_dump_opts plus the TCP extras).
func dumpTransport(tr nvmf.Transport) bdev.Ordered {
	o := tr.Opts()
	return bdev.Obj(
		"trtype", tr.Type(),
		"max_queue_depth", o.MaxQueueDepth,
		"max_io_qpairs_per_ctrlr", o.MaxIOQPairsPerCtrlr,
		"in_capsule_data_size", o.InCapsuleDataSize,
		"max_io_size", o.MaxIOSize,
		"max_aq_depth", o.MaxAQDepth,
		"iobuf_small_cache_size", o.IOBufSmallCacheSize,
		"iobuf_large_cache_size", o.IOBufLargeCacheSize,
		"dif_insert_or_strip", o.DIFInsertOrStrip,
		"zcopy", o.Zcopy,
		"c2h_success", o.C2HSuccess,
		"sock_priority", o.SockPriority,
		"abort_timeout_sec", o.AbortTimeoutSec,
		"ack_timeout", o.AckTimeout,
		"data_wr_pool_size", o.DataWRPoolSize,
		"disable_command_passthru", o.DisableCmdPassthru,
		"kas", o.KAS,
		"min_kato", o.MinKATOMs,
	)
}

func (t *Target) rpcGetTransports(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		TgtName string `json:"tgt_name"`
		TrType  string `json:"trtype"`
	}
	if err := decodeParams(p, rpc.Decode, &req, &req.TgtName); err != nil {
		return nil, err
	}
	out := []bdev.Ordered{}
	for _, tr := range t.Transports() {
		if req.TrType == "" || strings.EqualFold(req.TrType, tr.Type()) {
			out = append(out, dumpTransport(tr))
		}
	}
	if req.TrType != "" && len(out) == 0 {
		return nil, rpc.Errno(19) // ENODEV
	}
	return out, nil
}

func (t *Target) rpcCreateSubsystem(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN           string `json:"nqn" rpc:"required"`
		TgtName       string `json:"tgt_name"`
		SerialNumber  string `json:"serial_number"`
		ModelNumber   string `json:"model_number"`
		AdminLabel    string `json:"admin_label"`
		MaxNamespaces uint32 `json:"max_namespaces"`
		AllowAnyHost  bool   `json:"allow_any_host"`
		ANAReporting  bool   `json:"ana_reporting"`
		MinCntlid     uint16 `json:"min_cntlid"`
		MaxCntlid     uint16 `json:"max_cntlid"`
		DMRSL         uint32 `json:"dmrsl"`
		WZSL          uint8  `json:"wzsl"`
		Passthrough   bool   `json:"passthrough"`
		EnableNSSR    bool   `json:"enable_nssr"`
	}
	req.MinCntlid, req.MaxCntlid = DefaultMinCntlid, DefaultMaxCntlid
	if err := decodeParams(p, rpc.Decode, &req, &req.TgtName); err != nil {
		return nil, err
	}
	if req.Passthrough {
		return nil, rpc.InvalidParams("passthrough subsystems are not supported")
	}
	if req.SerialNumber != "" && !validASCII(req.SerialNumber, 20) {
		return nil, rpc.InvalidParams(fmt.Sprintf("Invalid SN %s", req.SerialNumber))
	}
	if req.ModelNumber != "" && !validASCII(req.ModelNumber, 40) {
		return nil, rpc.InvalidParams(fmt.Sprintf("Invalid MN %s", req.ModelNumber))
	}
	if req.MinCntlid == 0 || req.MinCntlid > req.MaxCntlid || req.MaxCntlid > proto.CNTLIDMax {
		return nil, rpc.InvalidParams(fmt.Sprintf("Invalid cntlid range [%d-%d]", req.MinCntlid, req.MaxCntlid))
	}
	c := SubsystemConfig{NQN: req.NQN, Serial: req.SerialNumber, Model: req.ModelNumber,
		MaxNamespaces: req.MaxNamespaces, AllowAnyHost: req.AllowAnyHost,
		MinCntlid: req.MinCntlid, MaxCntlid: req.MaxCntlid, ANAReporting: req.ANAReporting}
	if _, err := t.CreateSubsystem(c); err != nil {
		return nil, rpc.Internal(fmt.Sprintf("Unable to create subsystem %s", req.NQN)).WithCause(err)
	}
	return true, nil
}

func (t *Target) rpcDeleteSubsystem(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN     string `json:"nqn" rpc:"required"`
		TgtName string `json:"tgt_name"`
	}
	if err := decodeParams(p, rpc.Decode, &req, &req.TgtName); err != nil {
		return nil, err
	}
	if err := t.DeleteSubsystem(req.NQN); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, notFoundNQN(req.NQN)
		}
		return nil, invalidParams(err)
	}
	return true, nil
}

// subsystemFor decodes nothing; it finds an NVM or discovery subsystem.
func (t *Target) subsystemFor(nqn string) (*Subsystem, error) {
	s := t.Subsystem(nqn)
	if s == nil {
		return nil, notFoundNQN(nqn)
	}
	return s, nil
}

func dumpAddr(a nvmf.ListenAddr) bdev.Ordered {
	return bdev.Obj("trtype", a.TrType, "adrfam", a.AdrFam, "traddr", a.TrAddr, "trsvcid", a.TrSvcID)
}

func hexUpper(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// appendIDs appends the namespace's configured identifiers (nguid, eui64,
// uuid, in that order) to o, as nvmf_get_subsystems and save_config show
// them.
func (ns *Namespace) appendIDs(o bdev.Ordered) bdev.Ordered {
	if ns.hasNGUID {
		o = append(o, bdev.KV{Key: "nguid", Value: hexUpper(ns.nguid[:])})
	}
	if ns.hasEUI64 {
		o = append(o, bdev.KV{Key: "eui64", Value: hexUpper(ns.eui64[:])})
	}
	if !ns.uuid.IsZero() {
		o = append(o, bdev.KV{Key: "uuid", Value: ns.uuid.String()})
	}
	return o
}

// dump is a subsystem as nvmf_get_subsystems reports it.
func (s *Subsystem) dump() bdev.Ordered {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	la := []bdev.Ordered{}
	for _, l := range s.listeners {
		la = append(la, dumpAddr(l))
	}
	hosts := []bdev.Ordered{}
	for _, h := range s.hosts {
		hosts = append(hosts, bdev.Obj("nqn", h))
	}
	if s.disc {
		return bdev.Obj("nqn", s.nqn, "subtype", "Discovery", "listen_addresses", la,
			"allow_any_host", true, "hosts", hosts)
	}
	nss := []bdev.Ordered{}
	for _, ns := range s.nsList {
		o := ns.appendIDs(bdev.Obj("nsid", ns.nsid, "bdev_name", ns.bdevName, "name", ns.bdevName))
		if s.cfg.ANAReporting {
			o = append(o, bdev.KV{Key: "anagrpid", Value: max(ns.anagrpid, ns.nsid)})
		}
		nss = append(nss, o)
	}
	return bdev.Obj("nqn", s.nqn, "subtype", "NVMe", "listen_addresses", la,
		"allow_any_host", s.cfg.AllowAnyHost, "hosts", hosts,
		"serial_number", s.cfg.Serial, "model_number", s.cfg.Model,
		"max_namespaces", s.cfg.MaxNamespaces, "passthrough", false,
		"min_cntlid", s.cfg.MinCntlid, "max_cntlid", s.cfg.MaxCntlid,
		"namespaces", nss)
}

func (t *Target) rpcGetSubsystems(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN     string `json:"nqn"`
		TgtName string `json:"tgt_name"`
	}
	if err := decodeParams(p, rpc.Decode, &req, &req.TgtName); err != nil {
		return nil, err
	}
	out := []bdev.Ordered{}
	for _, s := range t.Subsystems() {
		if req.NQN == "" || req.NQN == s.nqn {
			out = append(out, s.dump())
		}
	}
	if req.NQN != "" && len(out) == 0 {
		return nil, rpc.InvalidParams(rpc.Strerror(19))
	}
	return out, nil
}

func (t *Target) rpcAddNS(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN       string `json:"nqn" rpc:"required"`
		TgtName   string `json:"tgt_name"`
		Namespace struct {
			BdevName      string `json:"bdev_name" rpc:"required"`
			NSID          uint32 `json:"nsid"`
			NGUID         string `json:"nguid"`
			EUI64         string `json:"eui64"`
			UUID          string `json:"uuid"`
			PTPLFile      string `json:"ptpl_file"`
			ANAGrpID      uint32 `json:"anagrpid"`
			NoAutoVisible bool   `json:"no_auto_visible"`
			HideMetadata  bool   `json:"hide_metadata"`
		} `json:"namespace" rpc:"required"`
	}
	s, err := t.subsystemParams(p, rpc.DecodeRelaxed, &req, &req.TgtName, &req.NQN)
	if err != nil {
		return nil, err
	}
	ns := req.Namespace
	if ns.PTPLFile != "" || ns.NoAutoVisible {
		return nil, rpc.InvalidParams("Invalid parameters").WithCause(errors.New("ptpl_file and no_auto_visible are not supported"))
	}
	nsid, err := s.AddNamespace(NamespaceConfig{BdevName: ns.BdevName, NSID: ns.NSID, NGUID: ns.NGUID,
		EUI64: ns.EUI64, UUID: ns.UUID, ANAGrpID: ns.ANAGrpID})
	if err != nil {
		return nil, invalidParams(err)
	}
	return nsid, nil
}

func (t *Target) rpcRemoveNS(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN     string `json:"nqn" rpc:"required"`
		NSID    uint32 `json:"nsid" rpc:"required"`
		TgtName string `json:"tgt_name"`
	}
	s, err := t.subsystemParams(p, rpc.Decode, &req, &req.TgtName, &req.NQN)
	if err != nil {
		return nil, err
	}
	if err := s.RemoveNamespace(req.NSID); err != nil {
		return nil, invalidParams(err)
	}
	return true, nil
}

func (t *Target) rpcListener(add bool) rpc.Handler {
	return func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			NQN           string `json:"nqn" rpc:"required"`
			TgtName       string `json:"tgt_name"`
			SecureChannel bool   `json:"secure_channel"`
			ANAState      string `json:"ana_state"`
			SockImpl      string `json:"sock_impl"`
			ListenAddress struct {
				TrType  string `json:"trtype" rpc:"required"`
				AdrFam  string `json:"adrfam"`
				TrAddr  string `json:"traddr" rpc:"required"`
				TrSvcID string `json:"trsvcid"`
			} `json:"listen_address" rpc:"required"`
		}
		s, err := t.subsystemParams(p, rpc.DecodeRelaxed, &req, &req.TgtName, &req.NQN)
		if err != nil {
			return nil, err
		}
		if req.SecureChannel {
			return nil, invalidParams(errors.New("secure_channel (TLS) is not supported"))
		}
		la := req.ListenAddress
		a, err := nvmf.NormalizeListenAddr(la.TrType, la.AdrFam, la.TrAddr, la.TrSvcID)
		if err != nil {
			return nil, invalidParams(err)
		}
		if add {
			err = s.AddListener(a)
		} else {
			err = s.RemoveListener(a)
		}
		if err != nil {
			return nil, invalidParams(err)
		}
		return true, nil
	}
}

func (t *Target) rpcAddHost(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN            string `json:"nqn" rpc:"required"`
		Host           string `json:"host" rpc:"required"`
		TgtName        string `json:"tgt_name"`
		PSK            string `json:"psk"`
		DHCHAPKey      string `json:"dhchap_key"`
		DHCHAPCtrlrKey string `json:"dhchap_ctrlr_key"`
	}
	if err := decodeParams(p, rpc.DecodeRelaxed, &req, &req.TgtName); err != nil {
		return nil, err
	}
	if req.PSK != "" || req.DHCHAPKey != "" || req.DHCHAPCtrlrKey != "" {
		return nil, invalidParams(errors.New("TLS PSK and DH-HMAC-CHAP keys are not supported"))
	}
	s, err := t.subsystemFor(req.NQN)
	if err != nil {
		return nil, err
	}
	if err := s.AddHost(req.Host); err != nil {
		if errors.Is(err, ErrExists) {
			return nil, rpc.Internal("Internal error").WithCause(err)
		}
		return nil, invalidParams(err)
	}
	return true, nil
}

func (t *Target) rpcRemoveHost(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN       string `json:"nqn" rpc:"required"`
		Host      string `json:"host" rpc:"required"`
		TgtName   string `json:"tgt_name"`
		TimeoutMs uint64 `json:"timeout_ms"`
	}
	s, err := t.subsystemParams(p, rpc.Decode, &req, &req.TgtName, &req.NQN)
	if err != nil {
		return nil, err
	}
	if err := s.RemoveHost(req.Host); err != nil {
		return nil, rpc.Internal("Internal error").WithCause(err)
	}
	return true, nil
}

func (t *Target) rpcAllowAnyHost(_ context.Context, p json.RawMessage) (any, error) {
	var req struct {
		NQN          string `json:"nqn" rpc:"required"`
		AllowAnyHost bool   `json:"allow_any_host" rpc:"required"`
		TgtName      string `json:"tgt_name"`
	}
	s, err := t.subsystemParams(p, rpc.Decode, &req, &req.TgtName, &req.NQN)
	if err != nil {
		return nil, err
	}
	if s.disc {
		return nil, invalidParams(errors.New("the discovery subsystem allows any host"))
	}
	s.SetAllowAnyHost(req.AllowAnyHost)
	return true, nil
}

func (t *Target) querySubsystem(p json.RawMessage) (*Subsystem, error) {
	var req struct {
		NQN     string `json:"nqn" rpc:"required"`
		TgtName string `json:"tgt_name"`
	}
	if err := decodeParams(p, rpc.Decode, &req, &req.TgtName); err != nil {
		return nil, err
	}
	s := t.Subsystem(req.NQN)
	if s == nil {
		return nil, rpc.InvalidParams("Invalid parameters")
	}
	return s, nil
}

func (t *Target) rpcGetControllers(_ context.Context, p json.RawMessage) (any, error) {
	s, err := t.querySubsystem(p)
	if err != nil {
		return nil, err
	}
	out := []bdev.Ordered{}
	for _, c := range s.Controllers() {
		out = append(out, bdev.Obj("cntlid", c.cntlid, "hostnqn", c.hostnqn,
			"hostid", bdev.UUID(c.hostid).String(), "num_io_qpairs", c.NumIOQPairs()))
	}
	return out, nil
}

func (t *Target) rpcGetQPairs(_ context.Context, p json.RawMessage) (any, error) {
	s, err := t.querySubsystem(p)
	if err != nil {
		return nil, err
	}
	out := []bdev.Ordered{}
	for _, c := range s.Controllers() {
		for _, q := range c.QPairs() {
			out = append(out, bdev.Obj("cntlid", q.CNTLID, "qid", q.QID, "state", "enabled",
				"thread", q.Thread, "hostnqn", q.HostNQN,
				"listen_address", dumpAddr(q.Addrs.Listen), "peer_address", dumpAddr(q.Addrs.Peer)))
		}
	}
	return out, nil
}

func (t *Target) rpcGetListeners(_ context.Context, p json.RawMessage) (any, error) {
	s, err := t.querySubsystem(p)
	if err != nil {
		return nil, err
	}
	ana := s.Config().ANAReporting
	out := []bdev.Ordered{}
	for _, l := range s.Listeners() {
		o := bdev.Obj("address", dumpAddr(l), "secure_channel", false)
		if ana {
			o = append(o, bdev.KV{Key: "ana_states", Value: []bdev.Ordered{bdev.Obj("ana_group", 1, "ana_state", "optimized")}})
		}
		out = append(out, o)
	}
	return out, nil
}

// saveConfig writes the "nvmf" section of save_config: the transports,
// then per subsystem a batch of create_subsystem, add_host, add_ns and
// add_listener, then the discovery subsystem's listeners (SPDK's
// spdk_nvmf_tgt_write_config_json order).
func (t *Target) saveConfig() []rpc.ConfigEntry {
	out := []rpc.ConfigEntry{}
	for _, tr := range t.Transports() {
		out = append(out, rpc.ConfigEntry{Method: "nvmf_create_transport", Params: dumpTransport(tr)})
	}
	var disc []rpc.ConfigEntry
	for _, s := range t.Subsystems() {
		s.t.mu.Lock()
		var b []rpc.ConfigEntry
		listeners := func() {
			for _, l := range s.listeners {
				b = append(b, rpc.ConfigEntry{Method: "nvmf_subsystem_add_listener", Params: bdev.Obj(
					"nqn", s.nqn, "listen_address", dumpAddr(l), "secure_channel", false)})
			}
		}
		if s.disc {
			listeners()
			disc = b
			s.t.mu.Unlock()
			continue
		}
		b = append(b, rpc.ConfigEntry{Method: "nvmf_create_subsystem", Params: bdev.Obj(
			"nqn", s.nqn, "allow_any_host", s.cfg.AllowAnyHost,
			"serial_number", s.cfg.Serial, "model_number", s.cfg.Model,
			"max_namespaces", s.cfg.MaxNamespaces, "min_cntlid", s.cfg.MinCntlid,
			"max_cntlid", s.cfg.MaxCntlid, "ana_reporting", s.cfg.ANAReporting)})
		for _, h := range s.hosts {
			b = append(b, rpc.ConfigEntry{Method: "nvmf_subsystem_add_host", Params: bdev.Obj("nqn", s.nqn, "host", h)})
		}
		for _, ns := range s.nsList {
			o := ns.appendIDs(bdev.Obj("nsid", ns.nsid, "bdev_name", ns.bdevName))
			o = append(o, bdev.KV{Key: "no_auto_visible", Value: false})
			b = append(b, rpc.ConfigEntry{Method: "nvmf_subsystem_add_ns", Params: bdev.Obj("nqn", s.nqn, "namespace", o)})
		}
		listeners()
		s.t.mu.Unlock()
		out = append(out, rpc.ConfigEntry{Batch: b})
	}
	if len(disc) > 0 {
		out = append(out, rpc.ConfigEntry{Batch: disc})
	}
	return out
}
