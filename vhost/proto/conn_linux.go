package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// Conn is the part of *net.UnixConn this package uses; tests substitute
// their own.
type Conn interface {
	ReadMsgUnix(b, oob []byte) (n, oobn, flags int, addr *net.UnixAddr, err error)
	WriteMsgUnix(b, oob []byte, addr *net.UnixAddr) (n, oobn int, err error)
}

var _ Conn = (*net.UnixConn)(nil)

// oobSize fits one SCM_RIGHTS message of MaxFDs descriptors. A sender that
// passes more gets MSG_CTRUNC: the kernel closes the surplus and we reject
// the message. (*net.UnixConn).ReadMsgUnix receives with MSG_CMSG_CLOEXEC.
var oobSize = unix.CmsgSpace(MaxFDs * 4)

// ReadRequest reads one request (what a back-end receives) into m,
// replacing and closing whatever descriptors m still owned. It blocks until
// a whole message has arrived.
//
// On io.EOF the peer closed the connection between messages. Errors wrapping
// ErrBadHeader (or any I/O error) leave the stream unusable; errors wrapping
// ErrMalformed or ErrUnsupported leave m.Hdr valid and the stream in sync.
// On every error all descriptors that came with the message are closed.
func ReadRequest(c Conn, m *Msg) error { return readMsg(c, m, dirRequest) }

// ReadReply reads one reply (what a front-end receives) into m, with the
// same contract as ReadRequest.
func ReadReply(c Conn, m *Msg) error { return readMsg(c, m, dirReply) }

func readMsg(c Conn, m *Msg, d direction) error {
	m.CloseFDs()
	m.Hdr = Header{}
	oob := m.oob[:oobSize]
	hdr := m.buf[:HeaderSize]
	surplus := false

	// recv reads exactly len(b) bytes, collecting descriptors on the way.
	recv := func(b []byte, first bool) error {
		got := 0
		for got < len(b) {
			n, oobn, flags, _, err := c.ReadMsgUnix(b[got:], oob)
			if oobn > 0 {
				if m.addFDs(oob[:oobn]) {
					surplus = true
				}
			}
			if flags&unix.MSG_CTRUNC != 0 {
				surplus = true
			}
			got += n
			if err != nil {
				if errors.Is(err, io.EOF) && first && got == 0 {
					return io.EOF
				}
				if errors.Is(err, io.EOF) {
					return io.ErrUnexpectedEOF
				}
				return err
			}
			if n == 0 && oobn == 0 {
				// A stream socket reads 0 bytes only at end of file.
				if first && got == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
		}
		return nil
	}

	if err := recv(hdr, true); err != nil {
		m.CloseFDs()
		return err
	}
	h, _ := DecodeHeader(hdr)
	m.Hdr = h
	if err := m.checkHeader(d); err != nil {
		m.CloseFDs()
		m.Hdr = Header{}
		return err
	}
	if h.Size <= MaxPayloadSize {
		if err := recv(m.buf[HeaderSize:HeaderSize+h.Size], false); err != nil {
			m.CloseFDs()
			m.Hdr = Header{}
			return err
		}
	} else {
		// Only requests this package does not decode get here (checkHeader
		// bounds them by maxUnknownPayload); read and drop their payload.
		for left := int(h.Size); left > 0; {
			n := min(left, MaxPayloadSize)
			if err := recv(m.buf[HeaderSize:HeaderSize+n], false); err != nil {
				m.CloseFDs()
				m.Hdr = Header{}
				return err
			}
			left -= n
		}
	}
	nfds := m.nfds
	if surplus {
		nfds = MaxFDs + 1
	}
	if err := m.checkBody(d, nfds); err != nil {
		m.CloseFDs()
		return err
	}
	if _, rule := d.kind(specFor(h.Request)); rule == fdDiscard {
		m.CloseFDs() // REM_MEM_REG: a descriptor sent anyway is closed unused
	}
	return nil
}

// addFDs parses SCM_RIGHTS control messages in oob and keeps up to MaxFDs
// descriptors in m, closing the rest. It reports whether any were dropped.
// Other control message types are ignored.
func (m *Msg) addFDs(oob []byte) (dropped bool) {
	hdrLen := unix.CmsgLen(0)
	for len(oob) >= hdrLen {
		var clen uint64
		if unix.SizeofCmsghdr == 16 {
			clen = binary.NativeEndian.Uint64(oob[0:])
		} else {
			clen = uint64(binary.NativeEndian.Uint32(oob[0:]))
		}
		lenSize := unix.SizeofCmsghdr - 8
		level := int32(binary.NativeEndian.Uint32(oob[lenSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[lenSize+4:]))
		if clen < uint64(hdrLen) || clen > uint64(len(oob)) {
			return true
		}
		data := oob[hdrLen:clen]
		if level == unix.SOL_SOCKET && typ == unix.SCM_RIGHTS {
			for ; len(data) >= 4; data = data[4:] {
				fd := int(int32(binary.NativeEndian.Uint32(data)))
				if m.nfds < MaxFDs {
					m.fds[m.nfds] = fd
					m.nfds++
				} else {
					unix.Close(fd)
					dropped = true
				}
			}
		}
		next := unix.CmsgSpace(int(clen) - hdrLen)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return dropped
}

// CloseFDs closes the descriptors m still owns (those not taken with
// TakeFD) and forgets them.
func (m *Msg) CloseFDs() {
	for i := range m.nfds {
		if m.fds[i] >= 0 {
			unix.Close(m.fds[i])
		}
		m.fds[i] = -1
	}
	m.nfds = 0
}

// WriteMsg sends m with fds (at most MaxFDs) in its ancillary data. The
// descriptors stay owned by the caller. It writes the whole message or
// returns an error.
func WriteMsg(c Conn, m *Msg, fds []int) error {
	if len(fds) > MaxFDs {
		return fmt.Errorf("vhost-user %v: %d descriptors, at most %d: %w", m.Hdr.Request, len(fds), MaxFDs, ErrTooManyFDs)
	}
	buf := m.wire()
	if buf == nil {
		return fmt.Errorf("vhost-user %v: payload of %d bytes too large", m.Hdr.Request, m.Hdr.Size)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for off := 0; off < len(buf); {
		w, _, err := c.WriteMsgUnix(buf[off:], oob, nil)
		if err != nil {
			return fmt.Errorf("vhost-user %v: write: %w", m.Hdr.Request, err)
		}
		if w == 0 {
			return fmt.Errorf("vhost-user %v: write: %w", m.Hdr.Request, io.ErrShortWrite)
		}
		off += w
		oob = nil // descriptors travel with the first byte only
	}
	return nil
}
