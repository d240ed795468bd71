package proto

import (
	"errors"
	"reflect"
	"testing"
)

// sample is one valid message used by round-trip tests and as a fuzz seed.
type sample struct {
	name  string
	reply bool
	nfds  int
	build func(m *Msg)
	check func(t *testing.T, m *Msg) // decodes m with the typed getter and compares
}

func wantEq[T any](t *testing.T, got T, err error, want T) {
	t.Helper()
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func u64Sample(name string, req Request, v uint64, reply bool) sample {
	return sample{name: name, reply: reply,
		build: func(m *Msg) {
			if reply {
				m.SetReply(req)
			} else {
				m.SetRequest(req, 0)
			}
			m.PutU64(v)
		},
		check: func(t *testing.T, m *Msg) { got, err := m.U64(); wantEq(t, got, err, v) }}
}

func emptySample(name string, req Request, nfds int) sample {
	return sample{name: name, nfds: nfds,
		build: func(m *Msg) { m.SetRequest(req, FlagNeedReply); m.PutEmpty() },
		check: func(t *testing.T, m *Msg) {
			if m.Hdr.Size != 0 || !m.Hdr.NeedsReply() {
				t.Fatalf("header %v", m.Hdr)
			}
		}}
}

func stateSample(name string, req Request, s VringState, reply bool) sample {
	return sample{name: name, reply: reply,
		build: func(m *Msg) {
			if reply {
				m.SetReply(req)
			} else {
				m.SetRequest(req, 0)
			}
			m.PutVringState(s)
		},
		check: func(t *testing.T, m *Msg) { got, err := m.VringState(); wantEq(t, got, err, s) }}
}

func fileSample(name string, req Request, f VringFile) sample {
	n := 1
	if f.NoFD() {
		n = 0
	}
	return sample{name: name, nfds: n,
		build: func(m *Msg) { m.SetRequest(req, 0); m.PutVringFile(f) },
		check: func(t *testing.T, m *Msg) { got, err := m.VringFile(); wantEq(t, got, err, f) }}
}

func samples() []sample {
	mem := Memory{NRegions: 2}
	mem.Regions[0] = MemRegion{GuestPhysAddr: 0, MemorySize: 0xc0000000, UserspaceAddr: 0x7f0000000000, MmapOffset: 0}
	mem.Regions[1] = MemRegion{GuestPhysAddr: 0x100000000, MemorySize: 0x40000000, UserspaceAddr: 0x7f00c0000000, MmapOffset: 0xc0000000}
	full := Memory{NRegions: MaxMemRegions}
	for i := range full.Regions {
		full.Regions[i] = MemRegion{GuestPhysAddr: uint64(i) << 30, MemorySize: 1 << 30, UserspaceAddr: 0x7f0000000000 + uint64(i)<<30, MmapOffset: uint64(i) << 12}
	}
	reg := MemRegion{GuestPhysAddr: 0x200000000, MemorySize: 0x8000000, UserspaceAddr: 0x7e0000000000, MmapOffset: 0x1000}
	addr := VringAddr{Index: 3, Flags: VringFlagLog, Desc: 0x7f0000001000, Used: 0x7f0000003000, Avail: 0x7f0000002000, Log: 0x3000}
	var cfg Config
	cfg.Offset, cfg.Size, cfg.Flags = 20, 60, ConfigFlagWritable
	for i := range cfg.Size {
		cfg.Data[i] = byte(i*7 + 1)
	}
	var cfgMax Config
	cfgMax.Size = MaxConfigSize
	cfgMax.Data[255] = 0xee
	infl := Inflight{MmapSize: 0x4000, MmapOffset: 0, NumQueues: 4, QueueSize: 256}

	return []sample{
		emptySample("get_features", GetFeatures, 0),
		u64Sample("get_features_reply", GetFeatures, 1<<32|FeatureProtocolFeatures|1<<28|1<<29, true),
		u64Sample("set_features", SetFeatures, 1<<32|FeatureProtocolFeatures, false),
		emptySample("set_owner", SetOwner, 0),
		emptySample("reset_owner", ResetOwner, 0),
		{name: "set_mem_table", nfds: 2,
			build: func(m *Msg) { m.SetRequest(SetMemTable, FlagNeedReply); m.PutMemory(&mem) },
			check: func(t *testing.T, m *Msg) {
				var got Memory
				err := m.Memory(&got)
				wantEq(t, got, err, mem)
			}},
		{name: "set_mem_table_full", nfds: MaxMemRegions,
			build: func(m *Msg) { m.SetRequest(SetMemTable, 0); m.PutMemory(&full) },
			check: func(t *testing.T, m *Msg) {
				var got Memory
				err := m.Memory(&got)
				wantEq(t, got, err, full)
			}},
		{name: "set_log_base", nfds: 1,
			build: func(m *Msg) { m.SetRequest(SetLogBase, 0); m.PutLog(Log{MmapSize: 4096, MmapOffset: 0}) },
			check: func(t *testing.T, m *Msg) { got, err := m.Log(); wantEq(t, got, err, Log{MmapSize: 4096}) }},
		emptySample("set_log_fd", SetLogFD, 1),
		stateSample("set_vring_num", SetVringNum, VringState{Index: 0, Num: 256}, false),
		{name: "set_vring_addr",
			build: func(m *Msg) { m.SetRequest(SetVringAddr, 0); m.PutVringAddr(addr) },
			check: func(t *testing.T, m *Msg) { got, err := m.VringAddr(); wantEq(t, got, err, addr) }},
		stateSample("set_vring_base", SetVringBase, VringState{Index: 1, Num: 65535}, false),
		stateSample("get_vring_base", GetVringBase, VringState{Index: 1}, false),
		stateSample("get_vring_base_reply", GetVringBase, VringState{Index: 1, Num: 4242}, true),
		fileSample("set_vring_kick", SetVringKick, NewVringFile(2, false)),
		fileSample("set_vring_kick_nofd", SetVringKick, NewVringFile(255, true)),
		fileSample("set_vring_call", SetVringCall, NewVringFile(0, false)),
		fileSample("set_vring_err", SetVringErr, NewVringFile(7, false)),
		emptySample("get_protocol_features", GetProtocolFeatures, 0),
		u64Sample("get_protocol_features_reply", GetProtocolFeatures, ProtocolMQ|ProtocolReplyAck|ProtocolConfig|ProtocolInflightSHMFD, true),
		u64Sample("set_protocol_features", SetProtocolFeatures, ProtocolMQ|ProtocolReplyAck, false),
		emptySample("get_queue_num", GetQueueNum, 0),
		u64Sample("get_queue_num_reply", GetQueueNum, 16, true),
		stateSample("set_vring_enable", SetVringEnable, VringState{Index: 3, Num: 1}, false),
		emptySample("set_backend_req_fd", SetBackendReqFD, 1),
		{name: "get_config",
			build: func(m *Msg) { m.SetRequest(GetConfig, 0); m.PutConfig(&cfg) },
			check: func(t *testing.T, m *Msg) { var got Config; err := m.Config(&got); wantEq(t, got, err, cfg) }},
		{name: "get_config_reply", reply: true,
			build: func(m *Msg) { m.SetReply(GetConfig); m.PutConfig(&cfgMax) },
			check: func(t *testing.T, m *Msg) { var got Config; err := m.Config(&got); wantEq(t, got, err, cfgMax) }},
		{name: "get_config_reply_failed", reply: true, // 0-byte payload: the back-end's error answer
			build: func(m *Msg) { m.SetReply(GetConfig); m.PutEmpty() },
			check: func(t *testing.T, m *Msg) {
				var got Config
				if m.Hdr.Size != 0 || m.Config(&got) == nil {
					t.Fatalf("empty GET_CONFIG reply: size %d", m.Hdr.Size)
				}
			}},
		{name: "set_config",
			build: func(m *Msg) { m.SetRequest(SetConfig, FlagNeedReply); m.PutConfig(&cfg) },
			check: func(t *testing.T, m *Msg) { var got Config; err := m.Config(&got); wantEq(t, got, err, cfg) }},
		{name: "get_inflight_fd",
			build: func(m *Msg) { m.SetRequest(GetInflightFD, 0); m.PutInflight(Inflight{NumQueues: 4, QueueSize: 256}) },
			check: func(t *testing.T, m *Msg) {
				got, err := m.Inflight()
				wantEq(t, got, err, Inflight{NumQueues: 4, QueueSize: 256})
			}},
		{name: "get_inflight_fd_reply", reply: true, nfds: 1,
			build: func(m *Msg) { m.SetReply(GetInflightFD); m.PutInflight(infl) },
			check: func(t *testing.T, m *Msg) { got, err := m.Inflight(); wantEq(t, got, err, infl) }},
		{name: "set_inflight_fd", nfds: 1,
			build: func(m *Msg) { m.SetRequest(SetInflightFD, 0); m.PutInflight(infl) },
			check: func(t *testing.T, m *Msg) { got, err := m.Inflight(); wantEq(t, got, err, infl) }},
		emptySample("reset_device", ResetDevice, 0),
		stateSample("vring_kick", VringKick, VringState{Index: 1}, false),
		emptySample("get_max_mem_slots", GetMaxMemSlots, 0),
		u64Sample("get_max_mem_slots_reply", GetMaxMemSlots, 32, true),
		{name: "add_mem_reg", nfds: 1,
			build: func(m *Msg) { m.SetRequest(AddMemReg, FlagNeedReply); m.PutMemRegion(reg) },
			check: func(t *testing.T, m *Msg) { got, err := m.MemRegion(); wantEq(t, got, err, reg) }},
		{name: "rem_mem_reg",
			build: func(m *Msg) { m.SetRequest(RemMemReg, FlagNeedReply); m.PutMemRegion(reg) },
			check: func(t *testing.T, m *Msg) { got, err := m.MemRegion(); wantEq(t, got, err, reg) }},
		u64Sample("set_status", SetStatus, 0xf, false),
		emptySample("get_status", GetStatus, 0),
		u64Sample("get_status_reply", GetStatus, 0xf, true),
		u64Sample("ack_reply", SetMemTable, 0, true),
		u64Sample("nack_reply", SetVringAddr, 1, true),
	}
}

func encodeSample(s sample) []byte {
	var m Msg
	s.build(&m)
	b := make([]byte, HeaderSize+MaxPayloadSize)
	return b[:m.Encode(b)]
}

func decodeDir(b []byte, nfds int, m *Msg, reply bool) error {
	if reply {
		return DecodeReply(b, nfds, m)
	}
	return DecodeRequest(b, nfds, m)
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			b := encodeSample(s)
			var m Msg
			if err := decodeDir(b, s.nfds, &m, s.reply); err != nil {
				t.Fatalf("decode %x: %v", b, err)
			}
			s.check(t, &m)
			// Encoding the decoded message gives the same bytes.
			out := make([]byte, len(b))
			if n := m.Encode(out); n != len(b) || string(out) != string(b) {
				t.Fatalf("re-encode: got %x, want %x", out[:n], b)
			}
			// The same bytes read in the other direction are rejected at the
			// header (REPLY bit), except where both are well-formed.
			var o Msg
			if err := decodeDir(b, s.nfds, &o, !s.reply); !errors.Is(err, ErrBadHeader) {
				t.Fatalf("wrong direction: got %v, want ErrBadHeader", err)
			}
		})
	}
}

func TestHeaderEncoding(t *testing.T) {
	b := encodeSample(samples()[0])
	h, err := DecodeHeader(b)
	if err != nil || h.Request != GetFeatures || h.Flags != Version|FlagNeedReply || h.Size != 0 {
		t.Fatalf("got %v %v", h, err)
	}
	if _, err := DecodeHeader(b[:11]); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("short header: %v", err)
	}
	if got := SetVringKick.String(); got != "SET_VRING_KICK" {
		t.Fatal(got)
	}
	if got := Request(99).String(); got != "REQUEST_99" {
		t.Fatal(got)
	}
}

// mutate builds a message from a sample and lets f edit its bytes.
func mutate(name string, f func(b []byte) []byte) []byte {
	for _, s := range samples() {
		if s.name == name {
			return f(encodeSample(s))
		}
	}
	panic("no sample " + name)
}

func put32(b []byte, off int, v uint32) []byte {
	b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	return b
}

func TestDecodeErrors(t *testing.T) {
	type tc struct {
		name   string
		b      []byte
		nfds   int
		reply  bool
		kind   error
		field  string
		offset int
	}
	id := func(b []byte) []byte { return b }
	tests := []tc{
		{"version 0", mutate("set_owner", func(b []byte) []byte { return put32(b, 4, 0) }), 0, false, ErrBadHeader, "flags", 4},
		{"version 2", mutate("set_owner", func(b []byte) []byte { return put32(b, 4, 2) }), 0, false, ErrBadHeader, "flags", 4},
		{"reserved flag", mutate("set_owner", func(b []byte) []byte { return put32(b, 4, 0x11) }), 0, false, ErrBadHeader, "flags", 4},
		{"reply on request", mutate("set_owner", func(b []byte) []byte { return put32(b, 4, 0x5) }), 0, false, ErrBadHeader, "flags", 4},
		{"need_reply on reply", mutate("get_queue_num_reply", func(b []byte) []byte { return put32(b, 4, 0xd) }), 0, true, ErrBadHeader, "flags", 4},
		{"size over max", mutate("set_vring_num", func(b []byte) []byte { return append(put32(b, 8, 9), 0) }), 0, false, ErrBadHeader, "size", 8},
		{"size vs bytes", mutate("set_vring_num", func(b []byte) []byte { return b[:len(b)-1] }), 0, false, ErrBadHeader, "size", 8},
		{"u64 short", mutate("set_features", func(b []byte) []byte { return put32(b, 8, 4)[:16] }), 0, false, ErrMalformed, "size", 8},
		{"state empty", mutate("set_vring_base", func(b []byte) []byte { return put32(b, 8, 0)[:12] }), 0, false, ErrMalformed, "size", 8},
		{"addr short", mutate("set_vring_addr", func(b []byte) []byte { return put32(b, 8, 32)[:44] }), 0, false, ErrMalformed, "size", 8},
		{"none with payload", mutate("set_owner", func(b []byte) []byte { return append(put32(b, 8, 8), make([]byte, 8)...) }), 0, false, ErrBadHeader, "size", 8},
		{"mem nregions too many", mutate("set_mem_table", func(b []byte) []byte { return put32(b, 12, 9) }), 2, false, ErrMalformed, "nregions", 12},
		{"mem nregions vs size", mutate("set_mem_table", func(b []byte) []byte { return put32(b, 12, 1) }), 1, false, ErrMalformed, "size", 8},
		{"mem fds fewer", mutate("set_mem_table", id), 1, false, ErrMalformed, "fds", 12},
		{"mem fds more", mutate("set_mem_table", id), 3, false, ErrMalformed, "fds", 12},
		{"mem zero region", mutate("set_mem_table", func(b []byte) []byte { return put32(put32(b, 12+8+8, 0), 12+8+12, 0) }), 2, false, ErrMalformed, "memory_size", 28},
		{"mem gpa wraps", mutate("set_mem_table", func(b []byte) []byte { return put32(put32(b, 12+8+32, 0xffffffff), 12+8+32+4, 0xffffffff) }), 2, false, ErrMalformed, "guest_phys_addr", 52},
		{"mem uaddr wraps", mutate("set_mem_table", func(b []byte) []byte { return put32(put32(b, 12+8+16, 0xffffffff), 12+8+16+4, 0xffffffff) }), 2, false, ErrMalformed, "userspace_addr", 36},
		{"kick missing fd", mutate("set_vring_kick", id), 0, false, ErrMalformed, "fds", 12},
		{"kick nofd with fd", mutate("set_vring_kick_nofd", id), 1, false, ErrMalformed, "fds", 12},
		{"kick reserved bits", mutate("set_vring_kick", func(b []byte) []byte { return put32(b, 12, 0x202) }), 1, false, ErrMalformed, "u64", 12},
		{"call two fds", mutate("set_vring_call", id), 2, false, ErrMalformed, "fds", 12},
		{"too many fds", mutate("set_owner", id), 9, false, ErrTooManyFDs, "fds", -1},
		{"features with fd", mutate("set_features", id), 1, false, ErrMalformed, "fds", -1},
		{"config size over", mutate("set_config", func(b []byte) []byte { return put32(b, 16, 257) }), 0, false, ErrMalformed, "config.size", 16},
		{"config size vs payload", mutate("set_config", func(b []byte) []byte { return put32(b, 16, 59) }), 0, false, ErrMalformed, "size", 8},
		{"config short", mutate("set_config", func(b []byte) []byte { return put32(b, 8, 8)[:20] }), 0, false, ErrMalformed, "size", 8},
		{"inflight no fd", mutate("set_inflight_fd", id), 0, false, ErrMalformed, "fds", -1},
		{"inflight short", mutate("set_inflight_fd", func(b []byte) []byte { return put32(b, 8, 20)[:32] }), 1, false, ErrMalformed, "size", 8},
		{"get inflight reply no fd", mutate("get_inflight_fd_reply", id), 0, true, ErrMalformed, "fds", -1},
		{"add_mem_reg no fd", mutate("add_mem_reg", id), 0, false, ErrMalformed, "fds", -1},
		{"add_mem_reg zero", mutate("add_mem_reg", func(b []byte) []byte { return put32(put32(b, 12+16, 0), 12+20, 0) }), 1, false, ErrMalformed, "memory_size", 28},
		{"rem_mem_reg two fds", mutate("rem_mem_reg", id), 2, false, ErrMalformed, "fds", -1},
		{"log_base two fds", mutate("set_log_base", id), 2, false, ErrMalformed, "fds", -1},
		{"unknown request", mutate("set_owner", func(b []byte) []byte { return put32(b, 0, 77) }), 0, false, ErrUnsupported, "request", 0},
		{"iotlb unsupported", mutate("set_features", func(b []byte) []byte { return put32(b, 0, uint32(IOTLBMsg)) }), 0, false, ErrUnsupported, "request", 0},
		{"unknown too big", append(put32(put32(put32(make([]byte, 12), 0, 77), 4, 1), 8, 5000), make([]byte, 5000)...), 0, false, ErrBadHeader, "size", 8},
		{"reply ack short", mutate("ack_reply", func(b []byte) []byte { return put32(b, 8, 0)[:12] }), 0, true, ErrMalformed, "size", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Msg
			err := decodeDir(tt.b, tt.nfds, &m, tt.reply)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a *FieldError", err)
			}
			if fe.Field != tt.field || fe.Offset != tt.offset {
				t.Fatalf("got field %q offset %d, want %q %d (%v)", fe.Field, fe.Offset, tt.field, tt.offset, err)
			}
			if errors.Is(err, ErrBadHeader) && m.Hdr != (Header{}) {
				t.Fatalf("bad header left Hdr %v", m.Hdr)
			}
			if !errors.Is(err, ErrBadHeader) && m.Hdr.Request == ReqNone {
				t.Fatalf("recoverable error lost the header")
			}
		})
	}
}

func TestRecvOnlyReplyKinds(t *testing.T) {
	// SET_LOG_BASE is answered with an empty or a u64 payload.
	for _, size := range []uint32{0, 8} {
		var m Msg
		m.SetReply(SetLogBase)
		if size == 8 {
			m.PutU64(0)
		}
		b := make([]byte, 32)
		if err := DecodeReply(b[:m.Encode(b)], 0, &m); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
	}
	if !Known(SetMemTable) || Known(IOTLBMsg) || Known(Request(1000)) {
		t.Fatal("Known")
	}
	if !HasReply(GetVringBase) || HasReply(SetVringBase) {
		t.Fatal("HasReply")
	}
}

func TestGettersRejectWrongShape(t *testing.T) {
	var m Msg
	m.SetRequest(SetOwner, 0)
	if _, err := m.U64(); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	var mem Memory
	mem.NRegions = 1 // garbage the getter must clear
	if err := m.Memory(&mem); err == nil || mem.NRegions != 0 {
		t.Fatal(err, mem.NRegions)
	}
	var c Config
	if err := m.Config(&c); err == nil {
		t.Fatal("config")
	}
	if _, err := m.MemRegion(); err == nil {
		t.Fatal("memregion")
	}
	if _, err := m.VringAddr(); err == nil {
		t.Fatal("vringaddr")
	}
	if _, err := m.Inflight(); err == nil {
		t.Fatal("inflight")
	}
	if _, err := m.Log(); err == nil {
		t.Fatal("log")
	}
	if m.TakeFD(0) != -1 || m.TakeFD(-1) != -1 {
		t.Fatal("TakeFD on empty")
	}
}
