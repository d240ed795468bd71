package virtio

import (
	"errors"
	"fmt"
	"net"
	"time"

	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

// wantProtocol are the vhost-user protocol features the front end uses
// when the back end offers them: MQ (GET_QUEUE_NUM), REPLY_ACK (an ack for
// every request without a reply of its own, so errors surface at the
// request that caused them) and CONFIG (GET_CONFIG, without which the
// capacity is unknown).
const wantProtocol = proto.ProtocolMQ | proto.ProtocolReplyAck | proto.ProtocolConfig

// ErrHandshake is wrapped by every failure of the vhost-user handshake.
var ErrHandshake = errors.New("vhost-user handshake failed")

// session is the front end's side of one vhost-user connection. It is
// used by one goroutine at a time: the attach or reconnect path during
// the handshake, then the connection monitor.
type session struct {
	path     string
	conn     *net.UnixConn
	msg      proto.Msg
	features uint64 // offered by the back end (GET_FEATURES)
	acked    uint64 // negotiated (SET_FEATURES)
	protocol uint64 // negotiated protocol features
	maxQueue uint64 // GET_QUEUE_NUM, 1 without MQ
	config   BlkConfig
}

// queueSetup is what SET_VRING_* needs for one queue.
type queueSetup struct {
	size   uint16
	desc   uint64 // user addresses
	avail  uint64
	used   uint64
	kickFd int
	callFd int
}

func (s *session) fail(format string, args ...any) error {
	return fmt.Errorf("%w with %s: %s", ErrHandshake, s.path, fmt.Sprintf(format, args...))
}

// dial connects to the back end's socket.
func dial(path string, timeout time.Duration) (*session, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("vhost-user connect %s: %w", path, err)
	}
	return &session{path: path, conn: c.(*net.UnixConn)}, nil
}

func (s *session) close() error { return s.conn.Close() }

// send writes a request without a reply of its own. With REPLY_ACK it
// asks for the ack and checks it.
func (s *session) send(req proto.Request, fds ...int) error {
	ack := s.protocol&proto.ProtocolReplyAck != 0
	if ack {
		s.msg.Hdr.Flags |= proto.FlagNeedReply
	}
	if err := proto.WriteMsg(s.conn, &s.msg, fds); err != nil {
		return s.fail("send %v: %v", req, err)
	}
	if !ack {
		return nil
	}
	if err := s.readReply(req); err != nil {
		return err
	}
	v, err := s.msg.U64()
	if err != nil {
		return s.fail("ack of %v: %v", req, err)
	}
	if v != 0 {
		return s.fail("back end refused %v (ack %d)", req, v)
	}
	return nil
}

// call writes a request that always has a reply and reads the reply.
func (s *session) call(req proto.Request) error {
	if err := proto.WriteMsg(s.conn, &s.msg, nil); err != nil {
		return s.fail("send %v: %v", req, err)
	}
	return s.readReply(req)
}

func (s *session) readReply(req proto.Request) error {
	if err := proto.ReadReply(s.conn, &s.msg); err != nil {
		return s.fail("reply to %v: %v", req, err)
	}
	s.msg.CloseFDs()
	if s.msg.Hdr.Request != req {
		return s.fail("got a reply to %v while waiting for %v", s.msg.Hdr.Request, req)
	}
	return nil
}

func (s *session) getU64(req proto.Request) (uint64, error) {
	s.msg.SetRequest(req, 0)
	if err := s.call(req); err != nil {
		return 0, err
	}
	v, err := s.msg.U64()
	if err != nil {
		return 0, s.fail("%v: %v", req, err)
	}
	return v, nil
}

func (s *session) setU64(req proto.Request, v uint64) error {
	s.msg.SetRequest(req, 0)
	s.msg.PutU64(v)
	return s.send(req)
}

// negotiate runs the device-independent part of the handshake and reads
// the virtio-blk configuration: GET_FEATURES, GET/SET_PROTOCOL_FEATURES,
// GET_QUEUE_NUM, SET_OWNER, GET_CONFIG. wantEventIdx may turn
// VIRTIO_F_EVENT_IDX off.
func (s *session) negotiate(wantEventIdx bool, deadline time.Time) error {
	if err := s.conn.SetDeadline(deadline); err != nil {
		return s.fail("%v", err)
	}
	f, err := s.getU64(proto.GetFeatures)
	if err != nil {
		return err
	}
	s.features = f
	if f&virtq.FeatureVersion1 == 0 {
		return s.fail("back end does not offer VIRTIO_F_VERSION_1 (features %#x); legacy devices are not supported", f)
	}
	if f&proto.FeatureProtocolFeatures == 0 {
		return s.fail("back end does not offer VHOST_USER_F_PROTOCOL_FEATURES (features %#x): without GET_CONFIG the capacity is unknown", f)
	}
	pf, err := s.getU64(proto.GetProtocolFeatures)
	if err != nil {
		return err
	}
	if pf&proto.ProtocolConfig == 0 {
		return s.fail("back end does not offer VHOST_USER_PROTOCOL_F_CONFIG (protocol features %#x): the capacity is unknown", pf)
	}
	if err := s.setU64(proto.SetProtocolFeatures, pf&wantProtocol); err != nil {
		return err
	}
	// Acks start with the next request: SET_PROTOCOL_FEATURES itself
	// went out before REPLY_ACK was in force.
	s.protocol = pf & wantProtocol
	s.maxQueue = 1
	if s.protocol&proto.ProtocolMQ != 0 {
		if s.maxQueue, err = s.getU64(proto.GetQueueNum); err != nil {
			return err
		}
		if s.maxQueue == 0 {
			return s.fail("GET_QUEUE_NUM answered 0 queues")
		}
	}
	s.msg.SetRequest(proto.SetOwner, 0)
	if err := s.send(proto.SetOwner); err != nil {
		return err
	}

	s.acked = f&(blkFeatures|virtq.FeatureVersion1) | proto.FeatureProtocolFeatures
	if wantEventIdx {
		s.acked |= f & virtq.FeatureEventIdx
	}
	s.msg.SetRequest(proto.GetConfig, 0)
	s.msg.PutConfig(&proto.Config{Size: ConfigSize})
	if err := s.call(proto.GetConfig); err != nil {
		return err
	}
	var cfg proto.Config
	if err := s.msg.Config(&cfg); err != nil {
		return s.fail("GET_CONFIG: %v", err)
	}
	if cfg.Offset != 0 || cfg.Size != ConfigSize {
		return s.fail("GET_CONFIG answered %d bytes at offset %d, want %d at 0", cfg.Size, cfg.Offset, ConfigSize)
	}
	if s.config, err = DecodeConfig(cfg.Bytes(), s.acked); err != nil {
		return s.fail("%v", err)
	}
	return nil
}

// queueLimit is the most request queues the back end serves.
func (s *session) queueLimit() int {
	n := uint64(s.config.NumQueues)
	if s.maxQueue < n {
		n = s.maxQueue
	}
	return int(min(n, 256)) // the vring index is 8 bits wide in VringFile
}

// start sends SET_FEATURES, the memory table and every queue's ring, then
// enables the rings (with protocol features negotiated, rings start
// disabled).
func (s *session) start(memFd int, mem proto.MemRegion, queues []queueSetup) error {
	s.msg.SetRequest(proto.SetFeatures, 0)
	s.msg.PutU64(s.acked)
	if err := s.send(proto.SetFeatures); err != nil {
		return err
	}
	table := proto.Memory{NRegions: 1}
	table.Regions[0] = mem
	s.msg.SetRequest(proto.SetMemTable, 0)
	s.msg.PutMemory(&table)
	if err := s.send(proto.SetMemTable, memFd); err != nil {
		return err
	}
	for i, q := range queues {
		idx := uint32(i)
		s.msg.SetRequest(proto.SetVringNum, 0)
		s.msg.PutVringState(proto.VringState{Index: idx, Num: uint32(q.size)})
		if err := s.send(proto.SetVringNum); err != nil {
			return err
		}
		s.msg.SetRequest(proto.SetVringBase, 0)
		s.msg.PutVringState(proto.VringState{Index: idx, Num: 0})
		if err := s.send(proto.SetVringBase); err != nil {
			return err
		}
		s.msg.SetRequest(proto.SetVringAddr, 0)
		s.msg.PutVringAddr(proto.VringAddr{Index: idx, Desc: q.desc, Used: q.used, Avail: q.avail})
		if err := s.send(proto.SetVringAddr); err != nil {
			return err
		}
		s.msg.SetRequest(proto.SetVringKick, 0)
		s.msg.PutVringFile(proto.NewVringFile(uint8(i), false))
		if err := s.send(proto.SetVringKick, q.kickFd); err != nil {
			return err
		}
		s.msg.SetRequest(proto.SetVringCall, 0)
		s.msg.PutVringFile(proto.NewVringFile(uint8(i), false))
		if err := s.send(proto.SetVringCall, q.callFd); err != nil {
			return err
		}
	}
	for i := range queues {
		s.msg.SetRequest(proto.SetVringEnable, 0)
		s.msg.PutVringState(proto.VringState{Index: uint32(i), Num: 1})
		if err := s.send(proto.SetVringEnable); err != nil {
			return err
		}
	}
	return s.conn.SetDeadline(time.Time{})
}
