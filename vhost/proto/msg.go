package proto

import "encoding/binary"

// payloadKind is the shape of a payload.
type payloadKind uint8

const (
	kindUnknown    payloadKind = iota // not decoded by this package
	kindNone                          // no payload
	kindU64                           // u64
	kindOptU64                        // u64 or nothing (reply to SET_LOG_BASE)
	kindVringState                    // VringState
	kindVringAddr                     // VringAddr
	kindVringFile                     // VringFile
	kindMemory                        // Memory, 8+32*nregions bytes
	kindMemRegion                     // MemRegionMsg
	kindLog                           // Log
	kindConfig                        // Config, 12+size bytes
	kindInflight                      // Inflight
)

// maxSize is the largest payload of a kind: a header announcing more is
// rejected before any payload byte is read.
func (k payloadKind) maxSize() uint32 {
	switch k {
	case kindNone:
		return 0
	case kindU64, kindOptU64, kindVringState, kindVringFile:
		return 8
	case kindVringAddr:
		return VringAddrSize
	case kindMemory:
		return memoryHdrSize + MaxMemRegions*MemRegionSize
	case kindMemRegion:
		return MemRegionMsgSize
	case kindLog:
		return LogSize
	case kindConfig:
		return ConfigHdrSize + MaxConfigSize
	case kindInflight:
		return InflightSize
	}
	return maxUnknownPayload
}

// fdRule is how many descriptors a message must carry.
type fdRule uint8

const (
	fdNone       fdRule = iota // none
	fdOne                      // exactly one
	fdPerRegion                // one per memory region (SET_MEM_TABLE)
	fdUnlessNoFD               // one, or none when the NOFD bit is set
	fdOptional                 // zero or one (SET_LOG_BASE: one with LOG_SHMFD)
	fdDiscard                  // zero or one, closed unused (REM_MEM_REG)
)

// msgSpec describes a request and its reply.
type msgSpec struct {
	req      payloadKind
	reqFDs   fdRule
	reply    payloadKind // kindU64 (an ack) unless the request has a reply of its own
	replyFDs fdRule
}

// specs is indexed by Request. A zero entry is a request this package does
// not decode.
var specs = [...]msgSpec{
	GetFeatures:         {req: kindNone, reply: kindU64},
	SetFeatures:         {req: kindU64, reply: kindU64},
	SetOwner:            {req: kindNone, reply: kindU64},
	ResetOwner:          {req: kindNone, reply: kindU64},
	SetMemTable:         {req: kindMemory, reqFDs: fdPerRegion, reply: kindU64},
	SetLogBase:          {req: kindLog, reqFDs: fdOptional, reply: kindOptU64},
	SetLogFD:            {req: kindNone, reqFDs: fdOne, reply: kindU64},
	SetVringNum:         {req: kindVringState, reply: kindU64},
	SetVringAddr:        {req: kindVringAddr, reply: kindU64},
	SetVringBase:        {req: kindVringState, reply: kindU64},
	GetVringBase:        {req: kindVringState, reply: kindVringState},
	SetVringKick:        {req: kindVringFile, reqFDs: fdUnlessNoFD, reply: kindU64},
	SetVringCall:        {req: kindVringFile, reqFDs: fdUnlessNoFD, reply: kindU64},
	SetVringErr:         {req: kindVringFile, reqFDs: fdUnlessNoFD, reply: kindU64},
	GetProtocolFeatures: {req: kindNone, reply: kindU64},
	SetProtocolFeatures: {req: kindU64, reply: kindU64},
	GetQueueNum:         {req: kindNone, reply: kindU64},
	SetVringEnable:      {req: kindVringState, reply: kindU64},
	SendRARP:            {req: kindU64, reply: kindU64},
	NetSetMTU:           {req: kindU64, reply: kindU64},
	SetBackendReqFD:     {req: kindNone, reqFDs: fdOne, reply: kindU64},
	SetVringEndian:      {req: kindVringState, reply: kindU64},
	GetConfig:           {req: kindConfig, reply: kindConfig},
	SetConfig:           {req: kindConfig, reply: kindU64},
	GetInflightFD:       {req: kindInflight, reply: kindInflight, replyFDs: fdOne},
	SetInflightFD:       {req: kindInflight, reqFDs: fdOne, reply: kindU64},
	ResetDevice:         {req: kindNone, reply: kindU64},
	VringKick:           {req: kindVringState, reply: kindU64},
	GetMaxMemSlots:      {req: kindNone, reply: kindU64},
	AddMemReg:           {req: kindMemRegion, reqFDs: fdOne, reply: kindU64},
	RemMemReg:           {req: kindMemRegion, reqFDs: fdDiscard, reply: kindU64},
	SetStatus:           {req: kindU64, reply: kindU64},
	GetStatus:           {req: kindNone, reply: kindU64},
}

// Known reports whether this package decodes request r.
func Known(r Request) bool { return int(r) < len(specs) && specs[r].req != kindUnknown }

// HasReply reports whether request r is always answered, NEED_REPLY or not
// (GET_FEATURES, GET_PROTOCOL_FEATURES, GET_VRING_BASE, GET_QUEUE_NUM,
// GET_CONFIG, GET_INFLIGHT_FD, GET_MAX_MEM_SLOTS, GET_STATUS).
func HasReply(r Request) bool {
	switch r {
	case GetFeatures, GetProtocolFeatures, GetVringBase, GetQueueNum, GetConfig,
		GetInflightFD, GetMaxMemSlots, GetStatus:
		return true
	}
	return false
}

// direction selects which half of a msgSpec applies.
type direction uint8

const (
	dirRequest direction = iota // front-end to back-end
	dirReply                    // back-end to front-end
)

func (d direction) kind(s msgSpec) (payloadKind, fdRule) {
	if d == dirReply {
		return s.reply, s.replyFDs
	}
	return s.req, s.reqFDs
}

func specFor(r Request) msgSpec {
	if int(r) < len(specs) {
		return specs[r]
	}
	return msgSpec{}
}

// Msg is one vhost-user message: header, payload and the descriptors that
// came with it. The zero value is an empty message; reuse one Msg per
// connection to avoid allocation.
type Msg struct {
	Hdr Header
	// buf holds the message as on the wire: room for the header, then the
	// payload, so WriteMsg sends it without copying.
	buf  [HeaderSize + MaxPayloadSize]byte
	oob  [128]byte // control buffer (>= oobSize on every Linux architecture)
	fds  [MaxFDs]int
	nfds int
}

// Payload returns the payload bytes. The slice aliases m.
func (m *Msg) Payload() []byte { return m.buf[HeaderSize : HeaderSize+min(m.Hdr.Size, MaxPayloadSize)] }

// NumFDs returns how many descriptors arrived with the message (including
// ones already taken).
func (m *Msg) NumFDs() int { return m.nfds }

// TakeFD hands descriptor i to the caller, who then owns it; it returns -1
// if there is no such descriptor or it was already taken.
func (m *Msg) TakeFD(i int) int {
	if i < 0 || i >= m.nfds {
		return -1
	}
	fd := m.fds[i]
	m.fds[i] = -1
	return fd
}

// SetRequest starts a request message (front-end side): header with
// Version|flags and an empty payload. flags may hold FlagNeedReply.
func (m *Msg) SetRequest(req Request, flags Flags) {
	m.Hdr = Header{Request: req, Flags: Version | flags&FlagNeedReply}
}

// SetReply starts the reply to request req (back-end side).
func (m *Msg) SetReply(req Request) {
	m.Hdr = Header{Request: req, Flags: Version | FlagReply}
}

// PutU64 sets a u64 payload (also the ack of REPLY_ACK: 0 success).
func (m *Msg) PutU64(v uint64) {
	binary.NativeEndian.PutUint64(m.buf[HeaderSize:], v)
	m.Hdr.Size = U64Size
}

// PutVringFile sets a SET_VRING_KICK/CALL/ERR payload.
func (m *Msg) PutVringFile(f VringFile) { m.PutU64(uint64(f)) }

// PutVringState sets a VringState payload.
func (m *Msg) PutVringState(s VringState) { m.Hdr.Size = uint32(s.Encode(m.buf[HeaderSize:])) }

// PutVringAddr sets a VringAddr payload.
func (m *Msg) PutVringAddr(a VringAddr) { m.Hdr.Size = uint32(a.Encode(m.buf[HeaderSize:])) }

// PutMemory sets a SET_MEM_TABLE payload (regions beyond MaxMemRegions are
// dropped: the caller must not pass more).
func (m *Msg) PutMemory(mem *Memory) { m.Hdr.Size = uint32(mem.Encode(m.buf[HeaderSize:])) }

// PutMemRegion sets an ADD_MEM_REG/REM_MEM_REG payload.
func (m *Msg) PutMemRegion(r MemRegion) {
	binary.NativeEndian.PutUint64(m.buf[HeaderSize:], 0)
	r.Encode(m.buf[HeaderSize+8:])
	m.Hdr.Size = MemRegionMsgSize
}

// PutLog sets a SET_LOG_BASE payload.
func (m *Msg) PutLog(l Log) { m.Hdr.Size = uint32(l.Encode(m.buf[HeaderSize:])) }

// PutConfig sets a GET_CONFIG/SET_CONFIG payload.
func (m *Msg) PutConfig(c *Config) { m.Hdr.Size = uint32(c.Encode(m.buf[HeaderSize:])) }

// PutInflight sets a GET/SET_INFLIGHT_FD payload.
func (m *Msg) PutInflight(f Inflight) { m.Hdr.Size = uint32(f.Encode(m.buf[HeaderSize:])) }

// PutEmpty clears the payload.
func (m *Msg) PutEmpty() { m.Hdr.Size = 0 }

// Encode writes the header and payload into b and returns the message
// length. It returns 0 if b is too small or the payload is larger than
// MaxPayloadSize.
func (m *Msg) Encode(b []byte) int {
	if m.Hdr.Size > MaxPayloadSize {
		return 0
	}
	n := HeaderSize + int(m.Hdr.Size)
	if len(b) < n {
		return 0
	}
	m.Hdr.Encode(b)
	copy(b[HeaderSize:], m.Payload())
	return n
}

// wire encodes the header in place and returns the message as on the wire,
// or nil if the payload is too large.
func (m *Msg) wire() []byte {
	if m.Hdr.Size > MaxPayloadSize {
		return nil
	}
	m.Hdr.Encode(m.buf[:])
	return m.buf[:HeaderSize+m.Hdr.Size]
}

// sizeErr reports a payload of the wrong size for a getter.
func (m *Msg) sizeErr(want int) error {
	if int(m.Hdr.Size) != want {
		return fieldErr(m.Hdr.Request, "size", 8, ErrMalformed, "payload is %d bytes, want %d", m.Hdr.Size, want)
	}
	return nil
}

// U64 decodes a u64 payload.
func (m *Msg) U64() (uint64, error) {
	if err := m.sizeErr(U64Size); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint64(m.buf[HeaderSize:]), nil
}

// VringFile decodes a SET_VRING_KICK/CALL/ERR payload.
func (m *Msg) VringFile() (VringFile, error) {
	v, err := m.U64()
	if err != nil {
		return 0, err
	}
	f := VringFile(v)
	if f&^(VringIndexMask|VringNoFD) != 0 {
		return 0, fieldErr(m.Hdr.Request, "u64", HeaderSize, ErrMalformed, "reserved bits set in 0x%x", v)
	}
	return f, nil
}

// VringState decodes a VringState payload.
func (m *Msg) VringState() (VringState, error) {
	if err := m.sizeErr(VringStateSize); err != nil {
		return VringState{}, err
	}
	return decodeVringState(m.buf[HeaderSize:]), nil
}

// VringAddr decodes a SET_VRING_ADDR payload.
func (m *Msg) VringAddr() (VringAddr, error) {
	if err := m.sizeErr(VringAddrSize); err != nil {
		return VringAddr{}, err
	}
	return decodeVringAddr(m.buf[HeaderSize:]), nil
}

// Memory decodes a SET_MEM_TABLE payload into dst. On error dst is zeroed.
func (m *Msg) Memory(dst *Memory) error {
	*dst = Memory{}
	p := m.Payload()
	if len(p) < memoryHdrSize {
		return fieldErr(m.Hdr.Request, "size", 8, ErrMalformed, "payload is %d bytes, want at least %d", len(p), memoryHdrSize)
	}
	n := binary.NativeEndian.Uint32(p[0:])
	if n > MaxMemRegions {
		return fieldErr(m.Hdr.Request, "nregions", HeaderSize, ErrMalformed, "%d regions, at most %d", n, MaxMemRegions)
	}
	if want := memoryHdrSize + int(n)*MemRegionSize; len(p) != want {
		return fieldErr(m.Hdr.Request, "size", 8, ErrMalformed,
			"payload is %d bytes, want %d for %d regions", len(p), want, n)
	}
	var out Memory
	out.NRegions = n
	for i := range int(n) {
		off := memoryHdrSize + i*MemRegionSize
		r := decodeMemRegion(p[off:])
		if err := r.check(m.Hdr.Request, HeaderSize+off); err != nil {
			return err
		}
		out.Regions[i] = r
	}
	*dst = out
	return nil
}

// MemRegion decodes an ADD_MEM_REG/REM_MEM_REG payload.
func (m *Msg) MemRegion() (MemRegion, error) {
	if err := m.sizeErr(MemRegionMsgSize); err != nil {
		return MemRegion{}, err
	}
	r := decodeMemRegion(m.buf[HeaderSize+8:])
	if err := r.check(m.Hdr.Request, HeaderSize+8); err != nil {
		return MemRegion{}, err
	}
	return r, nil
}

// Log decodes a SET_LOG_BASE payload.
func (m *Msg) Log() (Log, error) {
	if err := m.sizeErr(LogSize); err != nil {
		return Log{}, err
	}
	return Log{
		MmapSize:   binary.NativeEndian.Uint64(m.buf[HeaderSize:]),
		MmapOffset: binary.NativeEndian.Uint64(m.buf[HeaderSize+8:]),
	}, nil
}

// Config decodes a GET_CONFIG/SET_CONFIG payload into dst. On error dst is
// zeroed.
func (m *Msg) Config(dst *Config) error {
	*dst = Config{}
	p := m.Payload()
	if len(p) < ConfigHdrSize {
		return fieldErr(m.Hdr.Request, "size", 8, ErrMalformed, "payload is %d bytes, want at least %d", len(p), ConfigHdrSize)
	}
	size := binary.NativeEndian.Uint32(p[4:])
	if size > MaxConfigSize {
		return fieldErr(m.Hdr.Request, "config.size", HeaderSize+4, ErrMalformed, "%d bytes, at most %d", size, MaxConfigSize)
	}
	if want := ConfigHdrSize + int(size); len(p) != want {
		return fieldErr(m.Hdr.Request, "size", 8, ErrMalformed,
			"payload is %d bytes, want %d for a %d-byte config access", len(p), want, size)
	}
	dst.Offset = binary.NativeEndian.Uint32(p[0:])
	dst.Size = size
	dst.Flags = binary.NativeEndian.Uint32(p[8:])
	copy(dst.Data[:], p[ConfigHdrSize:])
	return nil
}

// Inflight decodes a GET/SET_INFLIGHT_FD payload.
func (m *Msg) Inflight() (Inflight, error) {
	if err := m.sizeErr(InflightSize); err != nil {
		return Inflight{}, err
	}
	return Inflight{
		MmapSize:   binary.NativeEndian.Uint64(m.buf[HeaderSize:]),
		MmapOffset: binary.NativeEndian.Uint64(m.buf[HeaderSize+8:]),
		NumQueues:  binary.NativeEndian.Uint16(m.buf[HeaderSize+16:]),
		QueueSize:  binary.NativeEndian.Uint16(m.buf[HeaderSize+18:]),
	}, nil
}

// checkHeader validates m.Hdr for direction d before the payload is read.
// A failure means the stream cannot be trusted any more (ErrBadHeader).
func (m *Msg) checkHeader(d direction) error {
	h := m.Hdr
	if h.Flags&VersionMask != Version {
		return fieldErr(h.Request, "flags", 4, ErrBadHeader, "version %d, want %d", h.Flags&VersionMask, Version)
	}
	if h.Flags&^flagsKnown != 0 {
		return fieldErr(h.Request, "flags", 4, ErrBadHeader, "reserved bits set in 0x%x", uint32(h.Flags))
	}
	if d == dirRequest && h.IsReply() {
		return fieldErr(h.Request, "flags", 4, ErrBadHeader, "REPLY set on a request")
	}
	if d == dirReply && (!h.IsReply() || h.NeedsReply()) {
		return fieldErr(h.Request, "flags", 4, ErrBadHeader, "flags 0x%x on a reply, want 0x%x", uint32(h.Flags), uint32(Version|FlagReply))
	}
	kind, _ := d.kind(specFor(h.Request))
	if max := kind.maxSize(); h.Size > max {
		return fieldErr(h.Request, "size", 8, ErrBadHeader, "payload of %d bytes, at most %d", h.Size, max)
	}
	return nil
}

// checkBody validates the payload in m and the count of descriptors that
// came with it, for direction d. Precondition: checkHeader passed.
func (m *Msg) checkBody(d direction, nfds int) error {
	req := m.Hdr.Request
	kind, rule := d.kind(specFor(req))
	if kind == kindUnknown {
		return fieldErr(req, "request", 0, ErrUnsupported, "request code %d not handled", uint32(req))
	}
	if nfds > MaxFDs {
		e := fieldErr(req, "fds", -1, ErrMalformed, "%d descriptors, at most %d", nfds, MaxFDs)
		e.extra = ErrTooManyFDs
		return e
	}
	var err error
	want := -1 // fixed payload size, -1 when the kind checks itself
	switch kind {
	case kindNone:
		want = 0
	case kindU64:
		want = U64Size
	case kindOptU64:
		if m.Hdr.Size != 0 {
			want = U64Size
		}
	case kindVringState:
		want = VringStateSize
	case kindVringAddr:
		want = VringAddrSize
	case kindMemRegion:
		_, err = m.MemRegion()
	case kindLog:
		want = LogSize
	case kindInflight:
		want = InflightSize
	case kindVringFile:
		_, err = m.VringFile()
	case kindMemory:
		var mem Memory
		err = m.Memory(&mem)
	case kindConfig:
		if d == dirReply && req == GetConfig && m.Hdr.Size == 0 {
			// A back-end answers a GET_CONFIG it cannot serve with an
			// empty payload (vhost-user.rst, VHOST_USER_GET_CONFIG).
			want = 0
			break
		}
		var c Config
		err = m.Config(&c)
	}
	if want >= 0 {
		err = m.sizeErr(want)
	}
	if err != nil {
		return err
	}
	return m.checkFDs(rule, nfds)
}

func (m *Msg) checkFDs(rule fdRule, nfds int) error {
	req := m.Hdr.Request
	wantFDs, off := 0, -1
	switch rule {
	case fdNone:
	case fdOne:
		wantFDs = 1
	case fdPerRegion:
		wantFDs, off = int(binary.NativeEndian.Uint32(m.buf[HeaderSize:])), HeaderSize
	case fdUnlessNoFD:
		off = HeaderSize
		if !VringFile(binary.NativeEndian.Uint64(m.buf[HeaderSize:])).NoFD() {
			wantFDs = 1
		}
	case fdOptional, fdDiscard:
		if nfds <= 1 {
			return nil
		}
		wantFDs = 1
	}
	if nfds != wantFDs {
		return fieldErr(req, "fds", off, ErrMalformed, "%d descriptors, want %d", nfds, wantFDs)
	}
	return nil
}

// DecodeRequest parses b, one whole message (header and payload), as a
// request received with nfds descriptors, and validates it exactly as
// ReadRequest does. The payload is copied into m; m gets no descriptors.
func DecodeRequest(b []byte, nfds int, m *Msg) error { return decode(b, nfds, m, dirRequest) }

// DecodeReply is DecodeRequest for a reply (what a front-end reads).
func DecodeReply(b []byte, nfds int, m *Msg) error { return decode(b, nfds, m, dirReply) }

func decode(b []byte, nfds int, m *Msg, d direction) error {
	m.nfds = 0
	m.Hdr = Header{}
	h, err := DecodeHeader(b)
	if err != nil {
		return err
	}
	m.Hdr = h
	if err := m.checkHeader(d); err != nil {
		m.Hdr = Header{}
		return err
	}
	if got := len(b) - HeaderSize; got != int(h.Size) {
		m.Hdr = Header{}
		return fieldErr(h.Request, "size", 8, ErrBadHeader, "header says %d payload bytes, message has %d", h.Size, got)
	}
	if h.Size <= MaxPayloadSize {
		copy(m.buf[HeaderSize:], b[HeaderSize:])
	}
	return m.checkBody(d, nfds)
}
