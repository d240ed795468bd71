package initiator

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf/proto"
)

// conn is one NVMe/TCP connection after the ICReq/ICResp exchange: the
// socket, the header parser and what was negotiated. It belongs to exactly
// one goroutine at a time: the control goroutine while it sets the queue up,
// then the reactor of the QPair it was installed in.
type conn struct {
	fd     int
	parser *proto.Parser
	// framing is how we lay out what we send: the negotiated digests and
	// the controller's CPDA.
	framing proto.Framing
	// maxH2C is the controller's MAXH2CDATA: the most data in one H2CData
	// PDU (NVMe/TCP 1.0 §3.6.2.3).
	maxH2C uint32
	// hdrLen is the size of every controller PDU header after setup: 24
	// bytes of CH+PSH, plus 4 with header digests (C2HTermReq has none).
	hdrLen int
}

func (c *conn) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// dialConn opens a TCP connection to the controller and runs the
// ICReq/ICResp exchange (NVMe/TCP 1.0 §3.3): we ask for the digests of o,
// HPDA 0 (no padding before C2H data) and MAXR2T 0 (one outstanding R2T per
// command); the controller answers with the digests it enables, its CPDA and
// its MAXH2CDATA.
func dialConn(ctx context.Context, o *Options, deadline time.Time) (*conn, error) {
	fd, err := dialTCP(ctx, o.AdrFam, o.TRAddr, o.TRSvcID, o.HostAddr, o.HostSvcID, deadline)
	if err != nil {
		return nil, err
	}
	c, err := handshake(ctx, fd, o.digests(), deadline)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (o *Options) digests() proto.Digest {
	var d proto.Digest
	if o.HeaderDigest {
		d |= proto.DigestHeader
	}
	if o.DataDigest {
		d |= proto.DigestData
	}
	return d
}

// handshake sends the ICReq on fd and validates the ICResp. A C2HTermReq
// instead of the ICResp is reported as a *TermReqError.
func handshake(ctx context.Context, fd int, want proto.Digest, deadline time.Time) (*conn, error) {
	p, err := proto.NewParser(proto.ParserOptions{Role: proto.RoleHost, RequestedDigests: want})
	if err != nil {
		return nil, err
	}
	var b [proto.ICLen + proto.MaxTermReqPLen]byte
	n, err := proto.EncodeICReq(b[:], &proto.ICReq{PFV: proto.PFV10, HPDA: 0, Digests: want, MaxR2T: 0})
	if err != nil {
		return nil, err
	}
	if err := writeFull(ctx, fd, b[:n], deadline); err != nil {
		return nil, fmt.Errorf("sending ICReq: %w", err)
	}
	// Read the common header first: a controller refusing the ICReq sends
	// a C2HTermReq, which is shorter than an ICResp.
	var h proto.PDUHeader
	have := 0
	for {
		need, err := p.Parse(b[:have], &h)
		if err != nil {
			return nil, fmt.Errorf("ICResp: %w: %w", ErrProtocol, err)
		}
		if need <= have {
			break
		}
		if need > len(b) {
			return nil, fmt.Errorf("ICResp header of %d bytes: %w", need, ErrProtocol)
		}
		if err := readFull(ctx, fd, b[have:need], deadline); err != nil {
			return nil, fmt.Errorf("reading ICResp: %w", err)
		}
		have = need
	}
	switch h.Type {
	case proto.PDUICResp:
	case proto.PDUC2HTermReq:
		return nil, &TermReqError{FES: h.FES, FEI: h.FEI}
	default:
		return nil, fmt.Errorf("got %v instead of ICResp: %w", h.Type, ErrProtocol)
	}
	if h.MaxData < proto.MinMaxH2CData || h.MaxData%4 != 0 {
		return nil, fmt.Errorf("ICResp MAXH2CDATA %d: %w", h.MaxData, ErrProtocol)
	}
	if err := p.Negotiated(h.Digests, 0); err != nil {
		return nil, fmt.Errorf("ICResp: %w: %w", ErrProtocol, err)
	}
	c := &conn{fd: fd, parser: p, framing: proto.Framing{Digests: h.Digests, PDA: h.PDA},
		maxH2C: h.MaxData, hdrLen: proto.DataHLen}
	if h.Digests&proto.DigestHeader != 0 {
		c.hdrLen += proto.DigestLen
	}
	return c, nil
}
