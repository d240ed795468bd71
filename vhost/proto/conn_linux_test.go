package proto

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a connected Unix stream socket.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "sock")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// pipe returns a pipe whose read end is non-blocking, so writerClosed can
// tell whether every copy of the write end is closed.
func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]) })
	return p[0], p[1]
}

// writerClosed reports whether no write end of the pipe is open anywhere
// in this process (read returns EOF rather than EAGAIN).
func writerClosed(t *testing.T, r int) bool {
	t.Helper()
	var b [1]byte
	n, err := unix.Read(r, b[:])
	if err == unix.EAGAIN {
		return false
	}
	if err != nil || n != 0 {
		t.Fatalf("read: %d %v", n, err)
	}
	return true
}

func sameFile(t *testing.T, a, b int) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		t.Fatalf("fstat %d: %v", a, err)
	}
	if err := unix.Fstat(b, &sb); err != nil {
		t.Fatalf("fstat %d: %v", b, err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func TestSocketRoundTrip(t *testing.T) {
	front, back := socketPair(t)
	r, w := pipe(t)
	defer unix.Close(w)
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			var out, in Msg
			s.build(&out)
			fds := make([]int, s.nfds)
			for i := range fds {
				fds[i] = w
			}
			sender, receiver := front, back
			if s.reply {
				sender, receiver = back, front
			}
			if err := WriteMsg(sender, &out, fds); err != nil {
				t.Fatal(err)
			}
			var err error
			if s.reply {
				err = ReadReply(receiver, &in)
			} else {
				err = ReadRequest(receiver, &in)
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Hdr != out.Hdr {
				t.Fatalf("header %v, want %v", in.Hdr, out.Hdr)
			}
			s.check(t, &in)
			if in.NumFDs() != s.nfds {
				t.Fatalf("%d fds, want %d", in.NumFDs(), s.nfds)
			}
			for i := range s.nfds {
				fd := in.TakeFD(i)
				if fd == w || !sameFile(t, fd, w) {
					t.Fatalf("fd %d is not a new descriptor for the pipe", fd)
				}
				flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
				if err != nil || flags&unix.FD_CLOEXEC == 0 {
					t.Fatalf("received fd without FD_CLOEXEC: %v", err)
				}
				unix.Close(fd)
			}
			if writerClosed(t, r) {
				t.Fatal("pipe writer closed too early")
			}
		})
	}
}

func TestReceivedFDsOwnedByMsg(t *testing.T) {
	front, back := socketPair(t)
	r, w := pipe(t)
	var out, in Msg
	out.SetRequest(SetVringCall, 0)
	out.PutVringFile(NewVringFile(0, false))
	if err := WriteMsg(front, &out, []int{w}); err != nil {
		t.Fatal(err)
	}
	unix.Close(w)
	if err := ReadRequest(back, &in); err != nil {
		t.Fatal(err)
	}
	if writerClosed(t, r) {
		t.Fatal("received descriptor closed")
	}
	// Reading the next message into the same Msg closes the untaken fd.
	out.SetRequest(SetOwner, 0)
	out.PutEmpty()
	if err := WriteMsg(front, &out, nil); err != nil {
		t.Fatal(err)
	}
	if err := ReadRequest(back, &in); err != nil {
		t.Fatal(err)
	}
	if !writerClosed(t, r) {
		t.Fatal("untaken descriptor leaked")
	}
}

func TestBadMessagesCloseFDs(t *testing.T) {
	type tc struct {
		name string
		nfds int
		kind error
		msg  func(m *Msg)
	}
	tests := []tc{
		{"nofd with fd", 1, ErrMalformed, func(m *Msg) { m.SetRequest(SetVringKick, 0); m.PutVringFile(NewVringFile(1, true)) }},
		{"features with fd", 1, ErrMalformed, func(m *Msg) { m.SetRequest(SetFeatures, 0); m.PutU64(1) }},
		{"mem table fd short", 1, ErrMalformed, func(m *Msg) {
			mem := Memory{NRegions: 2}
			mem.Regions[0] = MemRegion{MemorySize: 4096}
			mem.Regions[1] = MemRegion{GuestPhysAddr: 4096, MemorySize: 4096}
			m.SetRequest(SetMemTable, 0)
			m.PutMemory(&mem)
		}},
		{"unknown request", 2, ErrUnsupported, func(m *Msg) { m.SetRequest(IOTLBMsg, 0); m.PutU64(0) }},
		{"nine fds", 9, ErrTooManyFDs, func(m *Msg) { m.SetRequest(SetOwner, 0); m.PutEmpty() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			front, back := socketPair(t)
			r, w := pipe(t)
			var out, in Msg
			tt.msg(&out)
			var oob []byte
			fds := make([]int, tt.nfds)
			for i := range fds {
				fds[i] = w
			}
			oob = unix.UnixRights(fds...)
			b := make([]byte, HeaderSize+MaxPayloadSize)
			if _, _, err := front.WriteMsgUnix(b[:out.Encode(b)], oob, nil); err != nil {
				t.Fatal(err)
			}
			unix.Close(w)
			err := ReadRequest(back, &in)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
			if in.NumFDs() != 0 {
				t.Fatalf("Msg still holds %d fds", in.NumFDs())
			}
			if !writerClosed(t, r) {
				t.Fatal("descriptors of a bad message were not closed")
			}
			// The stream is still in sync.
			out.SetRequest(GetFeatures, 0)
			out.PutEmpty()
			if err := WriteMsg(front, &out, nil); err != nil {
				t.Fatal(err)
			}
			if err := ReadRequest(back, &in); err != nil || in.Hdr.Request != GetFeatures {
				t.Fatalf("next message: %v %v", in.Hdr, err)
			}
		})
	}
}

func TestControlTruncated(t *testing.T) {
	// More descriptors than the receive buffer holds: the kernel truncates
	// and closes the surplus, we close the rest and reject the message.
	front, back := socketPair(t)
	r, w := pipe(t)
	fds := make([]int, 20)
	for i := range fds {
		fds[i] = w
	}
	var out, in Msg
	out.SetRequest(SetOwner, 0)
	b := make([]byte, HeaderSize)
	if _, _, err := front.WriteMsgUnix(b[:out.Encode(b)], unix.UnixRights(fds...), nil); err != nil {
		t.Fatal(err)
	}
	unix.Close(w)
	if err := ReadRequest(back, &in); !errors.Is(err, ErrTooManyFDs) {
		t.Fatalf("got %v", err)
	}
	if !writerClosed(t, r) {
		t.Fatal("descriptors leaked")
	}
}

func TestRemMemRegClosesFD(t *testing.T) {
	front, back := socketPair(t)
	r, w := pipe(t)
	var out, in Msg
	out.SetRequest(RemMemReg, 0)
	out.PutMemRegion(MemRegion{GuestPhysAddr: 0x1000, MemorySize: 0x1000, UserspaceAddr: 0x7000})
	if err := WriteMsg(front, &out, []int{w}); err != nil {
		t.Fatal(err)
	}
	unix.Close(w)
	if err := ReadRequest(back, &in); err != nil {
		t.Fatal(err)
	}
	if in.NumFDs() != 0 || !writerClosed(t, r) {
		t.Fatal("REM_MEM_REG descriptor not closed")
	}
}

func TestSplitWrites(t *testing.T) {
	// A peer may write the header and payload separately, the descriptors
	// with either part, and in pieces.
	front, back := socketPair(t)
	r, w := pipe(t)
	defer unix.Close(w)
	var out, in Msg
	mem := Memory{NRegions: 1}
	mem.Regions[0] = MemRegion{GuestPhysAddr: 0, MemorySize: 1 << 20, UserspaceAddr: 1 << 40}
	out.SetRequest(SetMemTable, FlagNeedReply)
	out.PutMemory(&mem)
	b := make([]byte, HeaderSize+MaxPayloadSize)
	n := out.Encode(b)
	for _, cut := range []int{1, 5, HeaderSize, HeaderSize + 3, n - 1} {
		if _, _, err := front.WriteMsgUnix(b[:cut], nil, nil); err != nil {
			t.Fatal(err)
		}
		go func() {
			// The rest, with the descriptor, arrives a little later.
			front.WriteMsgUnix(b[cut:n], unix.UnixRights(w), nil)
		}()
		if err := ReadRequest(back, &in); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		var got Memory
		if err := in.Memory(&got); err != nil || got != mem || in.NumFDs() != 1 {
			t.Fatalf("cut %d: %+v %v fds=%d", cut, got, err, in.NumFDs())
		}
		in.CloseFDs()
	}
	if writerClosed(t, r) {
		t.Fatal("our own write end got closed")
	}
}

func TestUnknownLargePayloadSkipped(t *testing.T) {
	front, back := socketPair(t)
	b := make([]byte, HeaderSize+1000)
	Header{Request: Request(200), Flags: Version, Size: 1000}.Encode(b)
	var in, out Msg
	if _, _, err := front.WriteMsgUnix(b, nil, nil); err != nil {
		t.Fatal(err)
	}
	out.SetRequest(GetQueueNum, 0)
	if err := WriteMsg(front, &out, nil); err != nil {
		t.Fatal(err)
	}
	if err := ReadRequest(back, &in); !errors.Is(err, ErrUnsupported) || in.Hdr.Request != 200 {
		t.Fatalf("got %v %v", in.Hdr, err)
	}
	if err := ReadRequest(back, &in); err != nil || in.Hdr.Request != GetQueueNum {
		t.Fatalf("got %v %v", in.Hdr, err)
	}
}

func TestEOF(t *testing.T) {
	front, back := socketPair(t)
	var in Msg
	front.Close()
	if err := ReadRequest(back, &in); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}

	front, back = socketPair(t)
	var out Msg
	out.SetRequest(SetFeatures, 0)
	out.PutU64(1)
	b := make([]byte, 64)
	n := out.Encode(b)
	for _, cut := range []int{3, HeaderSize, n - 1} {
		front, back = socketPair(t)
		front.Write(b[:cut])
		front.Close()
		if err := ReadRequest(back, &in); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut %d: got %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}

func TestBadHeaderOnSocket(t *testing.T) {
	front, back := socketPair(t)
	r, w := pipe(t)
	b := make([]byte, HeaderSize)
	Header{Request: SetOwner, Flags: 0x2}.Encode(b)
	if _, _, err := front.WriteMsgUnix(b, unix.UnixRights(w), nil); err != nil {
		t.Fatal(err)
	}
	unix.Close(w)
	var in Msg
	if err := ReadRequest(back, &in); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("got %v", err)
	}
	if !writerClosed(t, r) {
		t.Fatal("fd leaked on bad header")
	}
}

func TestWriteMsgLimits(t *testing.T) {
	front, _ := socketPair(t)
	var m Msg
	m.SetRequest(SetOwner, 0)
	if err := WriteMsg(front, &m, make([]int, 9)); !errors.Is(err, ErrTooManyFDs) {
		t.Fatalf("got %v", err)
	}
	m.Hdr.Size = MaxPayloadSize + 1
	if err := WriteMsg(front, &m, nil); err == nil {
		t.Fatal("oversized payload written")
	}
}

func TestReadAllocs(t *testing.T) {
	front, back := socketPair(t)
	var out, in Msg
	out.SetRequest(SetVringNum, 0)
	out.PutVringState(VringState{Index: 1, Num: 128})
	allocs := testing.AllocsPerRun(100, func() {
		if err := WriteMsg(front, &out, nil); err != nil {
			t.Fatal(err)
		}
		if err := ReadRequest(back, &in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message round trip", allocs)
	}
}
