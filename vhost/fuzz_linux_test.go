package vhost

import (
	"net"
	"testing"

	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

// discardConn is a session connection that swallows replies.
type discardConn struct{}

func (discardConn) ReadMsgUnix(b, oob []byte) (int, int, int, *net.UnixAddr, error) {
	return 0, 0, 0, nil, net.ErrClosed
}
func (discardConn) WriteMsgUnix(b, oob []byte, _ *net.UnixAddr) (int, int, error) {
	return len(b), len(oob), nil
}
func (discardConn) Close() error { return nil }

// Guest memory the fuzzed session starts with (no fds can come with fuzz
// input, so SET_MEM_TABLE cannot install one): guest 0, user 0x10000.
const (
	fuzzUser = 0x10000
	fuzzMem  = 1 << 20
)

// sessionSeed encodes a message sequence that starts a ring with a NOFD
// kick, does IO-free work on it and stops it.
func sessionSeed(extra ...func(*proto.Msg)) []byte {
	var out []byte
	add := func(req proto.Request, flags proto.Flags, fill func(*proto.Msg)) {
		var m proto.Msg
		m.SetRequest(req, flags)
		if fill != nil {
			fill(&m)
		}
		b := make([]byte, proto.HeaderSize+proto.MaxPayloadSize)
		out = append(out, b[:m.Encode(b)]...)
	}
	lay, _ := virtq.NewLayout(8, 4)
	add(proto.GetFeatures, 0, nil)
	add(proto.GetProtocolFeatures, 0, nil)
	add(proto.SetProtocolFeatures, 0, func(m *proto.Msg) { m.PutU64(ProtocolFeatures) })
	add(proto.SetFeatures, proto.FlagNeedReply, func(m *proto.Msg) {
		m.PutU64(virtq.FeatureVersion1 | virtq.FeatureEventIdx | proto.FeatureProtocolFeatures)
	})
	add(proto.SetOwner, 0, nil)
	add(proto.GetConfig, 0, func(m *proto.Msg) { m.PutConfig(&proto.Config{Size: 60}) })
	add(proto.SetVringNum, 0, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: 0, Num: 8}) })
	add(proto.SetVringBase, 0, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: 0, Num: 0}) })
	add(proto.SetVringAddr, 0, func(m *proto.Msg) {
		m.PutVringAddr(proto.VringAddr{Desc: fuzzUser + lay.DescOff, Avail: fuzzUser + lay.AvailOff, Used: fuzzUser + lay.UsedOff})
	})
	add(proto.SetVringKick, 0, func(m *proto.Msg) { m.PutVringFile(proto.NewVringFile(0, true)) })
	add(proto.SetVringCall, 0, func(m *proto.Msg) { m.PutVringFile(proto.NewVringFile(0, true)) })
	add(proto.SetVringEnable, proto.FlagNeedReply, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: 0, Num: 1}) })
	add(proto.SetStatus, 0, func(m *proto.Msg) { m.PutU64(0xf) })
	add(proto.GetStatus, 0, nil)
	add(proto.GetVringBase, 0, func(m *proto.Msg) { m.PutVringState(proto.VringState{Index: 0}) })
	add(proto.ResetDevice, 0, nil)
	return out
}

// FuzzSession feeds message sequences to a session: any order, any
// values. The target must never panic, and whatever the sequence did, the
// session's teardown must stop every ring it started.
func FuzzSession(f *testing.F) {
	f.Add(sessionSeed())
	f.Add(sessionSeed()[:200])
	e := newTEnv(f, tenvOpts{reactors: 1})
	e.malloc("Malloc0", 512, 1024)
	c := e.ctrl(BlkControllerOptions{Name: "fz", Bdev: "Malloc0"})
	mem := make([]byte, fuzzMem)
	f.Fuzz(func(t *testing.T, in []byte) {
		clear(mem)
		gm, err := virtq.NewGuestMemory(virtq.NewRegion(0, fuzzUser, mem))
		if err != nil {
			t.Fatal(err)
		}
		s := newSession(c, discardConn{}, 0, 0)
		s.mem = gm
		for len(in) >= proto.HeaderSize {
			h, _ := proto.DecodeHeader(in)
			n := proto.HeaderSize + int(h.Size)
			if n > len(in) {
				break
			}
			err := proto.DecodeRequest(in[:n], 0, &s.msg)
			in = in[n:]
			if err != nil {
				if !s.readFailed(err) {
					break
				}
				continue
			}
			if !s.serve() {
				break
			}
		}
		s.teardown()
		if s.running() {
			t.Fatal("a ring still runs after teardown")
		}
	})
}
