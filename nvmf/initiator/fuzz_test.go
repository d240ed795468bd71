package initiator

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf/proto"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed files")

// fuzzSetup is the host state every FuzzQPairReceive input starts from:
// a connected I/O queue pair over a socketpair with four commands
// outstanding: a 4 KiB read (CID 0), an 8 KiB write waiting for R2T
// (CID 1), a 512-byte in-capsule write (CID 2) and a flush (CID 3); or,
// with onlyRead, the read alone (the receiver then reads speculatively);
// or, with fourReads, four 4 KiB reads (CIDs 0-3) from a host that has seen
// the controller answer 4 KiB reads whole with SUCCESS, so that it guesses
// several C2HData PDUs per readv.
func fuzzSetup(t testing.TB, dg proto.Digest, cpda uint8, onlyRead, fourReads bool) (*QPair, int, *[4]int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proto.NewParser(proto.ParserOptions{Role: proto.RoleHost, RequestedDigests: dg})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Negotiated(dg, 0); err != nil {
		t.Fatal(err)
	}
	c := &conn{fd: fds[0], parser: p, framing: proto.Framing{Digests: dg, PDA: cpda}, maxH2C: 4096, hdrLen: proto.DataHLen}
	if dg&proto.DigestHeader != 0 {
		c.hdrLen += proto.DigestLen
	}
	q := newQPair(1, 8, false)
	q.install(c, 1024)
	var done [4]int
	cb := func(ctx any, _ *proto.CQE) { done[ctx.(int)]++ }
	cmds := []Cmd{
		{Op: OpRead, NSID: 1, NLB: 8, Iovs: [][]byte{make([]byte, 1000), make([]byte, 3096)}, LenBytes: 4096},
		{Op: OpWrite, NSID: 1, NLB: 16, Iovs: [][]byte{make([]byte, 8192)}, LenBytes: 8192},
		{Op: OpWrite, NSID: 1, NLB: 1, Iovs: [][]byte{make([]byte, 512)}, LenBytes: 512},
		{Op: OpFlush, NSID: 1},
	}
	if fourReads {
		onlyRead = false
		q.c2hWhole, q.succSeen, q.specK = 4096, true, specPDUs
		for i := range cmds {
			cmds[i] = Cmd{Op: OpRead, NSID: 1, SLBA: uint64(8 * i), NLB: 8, Iovs: [][]byte{make([]byte, 1000*(i+1)), make([]byte, 4096-1000*(i+1))}, LenBytes: 4096}
		}
	}
	for i, cmd := range cmds {
		if onlyRead && i > 0 {
			done[i] = 1 // not submitted
			continue
		}
		cmd.Done, cmd.Ctx = cb, i
		if err := q.Submit(&cmd); err != nil {
			t.Fatal(err)
		}
	}
	q.flush()
	return q, fds[1], &done
}

// drain discards what the host wrote to the peer end.
func drain(fd int) {
	var b [65536]byte
	for {
		if n, err := unix.Read(fd, b[:]); n <= 0 || err != nil {
			return
		}
	}
}

// FuzzQPairReceive feeds arbitrary controller bytes to a connected queue
// pair: whatever arrives, the host must not panic, must complete every
// command exactly once (when the connection ends it fails them), and must
// leave its pool consistent.
func FuzzQPairReceive(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s.mode, s.data)
	}
	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		q, peer, done := fuzzSetup(t, proto.Digest(mode&3), (mode>>2)&3, mode&0x40 != 0, mode&0x20 != 0)
		defer unix.Close(peer)
		// Feed the bytes in pieces as the mode's high bits say.
		step := len(data)
		if mode&0x80 != 0 && len(data) > 0 {
			step = 1 + len(data)/7
		}
		for off := 0; off < len(data) && q.c != nil; off += step {
			end := min(off+step, len(data))
			if _, err := unix.Write(peer, data[off:end]); err != nil {
				break
			}
			for i := 0; i < 8 && q.c != nil; i++ {
				q.flush()
				if q.c != nil {
					q.receive()
				}
				drain(peer)
			}
		}
		q.setMode(modeClosed)
		for i, n := range done {
			if n != 1 {
				t.Fatalf("command %d completed %d times", i, n)
			}
		}
		if len(q.free) != len(q.reqs) || q.active != 0 || q.held != 0 || q.c2hActive != 0 || q.txN != 0 {
			t.Fatalf("pool left inconsistent: free %d/%d active %d held %d c2h %d tx %d", len(q.free), len(q.reqs), q.active, q.held, q.c2hActive, q.txN)
		}
	})
}

type fuzzSeed struct {
	name string
	mode uint8
	data []byte
}

// fuzzSeeds are valid controller streams for the fuzzSetup commands.
func fuzzSeeds() []fuzzSeed {
	var seeds []fuzzSeed
	for _, mode := range []uint8{0, 3, 3 | 1<<2 | 0x80} {
		dg := proto.Digest(mode & 3)
		f := proto.Framing{Digests: dg}
		var s []byte
		b := make([]byte, 8192)
		add := func(n int, err error) {
			if err != nil {
				panic(err)
			}
			s = append(s, b[:n]...)
		}
		resp := func(cid uint16) { add(proto.EncodeCapsuleResp(b, f, &proto.CQE{CID: cid})) }
		data := func(cid uint16, off, n uint32, last, success bool) {
			h, err := proto.EncodeC2HData(b, f, &proto.DataPDU{CCCID: cid, DataO: off, DataL: n, Last: last, Success: success})
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(i)
			}
			copy(b[h:], payload)
			h += int(n)
			if dg&proto.DigestData != 0 {
				proto.PutDigest(b[h:], proto.CRC32C(payload))
				h += 4
			}
			add(h, err)
		}
		resp(3)
		resp(2)
		data(0, 0, 2048, false, false)
		data(0, 2048, 2048, true, true)
		add(proto.EncodeR2T(b, f, &proto.R2T{CCCID: 1, TTag: 9, R2TO: 0, R2TL: 8192}))
		resp(1)
		seeds = append(seeds, fuzzSeed{name: "all-" + strconv.Itoa(int(mode)), mode: mode, data: s})
	}
	// The read alone (speculative receive): one C2HData with SUCCESS, a
	// split one with a CapsuleResp, and an error CapsuleResp.
	for _, mode := range []uint8{0x40, 0x43} {
		dg := proto.Digest(mode & 3)
		f := proto.Framing{Digests: dg}
		b := make([]byte, 8192)
		c2h := func(off, n uint32, last, success bool) []byte {
			return seedC2HData(f, 0, off, n, last, success, false)
		}
		resp := func(st proto.Status) []byte {
			n, _ := proto.EncodeCapsuleResp(b, f, &proto.CQE{CID: 0, Status: st})
			return append([]byte(nil), b[:n]...)
		}
		seeds = append(seeds,
			fuzzSeed{name: "spec-whole-" + strconv.Itoa(int(mode)), mode: mode, data: c2h(0, 4096, true, true)},
			fuzzSeed{name: "spec-split-" + strconv.Itoa(int(mode)), mode: mode,
				data: append(append(c2h(0, 1024, false, false), c2h(1024, 3072, true, false)...), resp(proto.StatusSuccess)...)},
			fuzzSeed{name: "spec-error-" + strconv.Itoa(int(mode)), mode: mode, data: resp(proto.StatusLBAOutOfRange)})
	}
	// Four reads (fourReads): answered whole in order, in reverse, with one
	// split, with an error CapsuleResp in the middle.
	for _, mode := range []uint8{0x20, 0x23, 0x20 | 0x80} {
		dg := proto.Digest(mode & 3)
		f := proto.Framing{Digests: dg}
		b := make([]byte, 8192)
		c2h := func(cid uint16, off, n uint32, last bool) []byte {
			return seedC2HData(f, cid, off, n, last, last, true)
		}
		stream := func(order []uint16, split, errCID int) []byte {
			var out []byte
			for _, cid := range order {
				switch int(cid) {
				case errCID:
					n, _ := proto.EncodeCapsuleResp(b, f, &proto.CQE{CID: cid, Status: proto.StatusLBAOutOfRange})
					out = append(out, b[:n]...)
				case split:
					out = append(out, c2h(cid, 0, 1500, false)...)
					out = append(out, c2h(cid, 1500, 2596, true)...)
				default:
					out = append(out, c2h(cid, 0, 4096, true)...)
				}
			}
			return out
		}
		m := strconv.Itoa(int(mode))
		seeds = append(seeds,
			fuzzSeed{name: "reads-inorder-" + m, mode: mode, data: stream([]uint16{0, 1, 2, 3}, -1, -1)},
			fuzzSeed{name: "reads-reversed-" + m, mode: mode, data: stream([]uint16{3, 2, 1, 0}, -1, -1)},
			fuzzSeed{name: "reads-split-" + m, mode: mode, data: stream([]uint16{0, 1, 2, 3}, 1, -1)},
			fuzzSeed{name: "reads-error-" + m, mode: mode, data: stream([]uint16{0, 1, 2, 3}, -1, 2)})
	}
	b := make([]byte, 256)
	n, _ := proto.EncodeTermReq(b, proto.PDUC2HTermReq, proto.FESSequenceError, 0, []byte{5, 0, 24, 0, 24, 0, 0, 0})
	seeds = append(seeds, fuzzSeed{name: "termreq", data: b[:n]})
	n, _ = proto.EncodeCapsuleResp(b, proto.Framing{}, &proto.CQE{CID: 7})
	seeds = append(seeds, fuzzSeed{name: "bad-cid", data: b[:n]})
	return seeds
}

// seedC2HData encodes one C2HData PDU for command cid with n payload
// bytes at offset off (zeros, or byte(cid+i) with pattern), and the data
// digest when f asks for one.
func seedC2HData(f proto.Framing, cid uint16, off, n uint32, last, success, pattern bool) []byte {
	b := make([]byte, 256)
	h, _ := proto.EncodeC2HData(b, f, &proto.DataPDU{CCCID: cid, DataO: off, DataL: n, Last: last, Success: success})
	payload := make([]byte, n)
	if pattern {
		for i := range payload {
			payload[i] = byte(int(cid) + i)
		}
	}
	out := append(b[:h:h], payload...)
	if f.Digests&proto.DigestData != 0 {
		var d [4]byte
		proto.PutDigest(d[:], proto.CRC32C(payload))
		out = append(out, d[:]...)
	}
	return out
}

func corpusFile(s fuzzSeed) []byte {
	return []byte(fmt.Sprintf("go test fuzz v1\nuint8(%d)\n[]byte(%q)\n", s.mode, s.data))
}

// TestFuzzSeeds keeps testdata/fuzz in step with fuzzSeeds (go test -run
// TestFuzzSeeds -update-seeds rewrites it) and runs each seed as a test.
func TestFuzzSeeds(t *testing.T) {
	seeds := fuzzSeeds()
	sort.Slice(seeds, func(i, j int) bool { return seeds[i].name < seeds[j].name })
	for _, s := range seeds {
		path := filepath.Join("testdata", "fuzz", "FuzzQPairReceive", "seed-"+s.name)
		want := corpusFile(s)
		if *updateSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s is missing or stale (err %v); run go test -run TestFuzzSeeds -update-seeds", path, err)
		}
	}
	// A full valid stream completes every command successfully.
	for _, s := range seeds[:3] {
		q, peer, done := fuzzSetup(t, proto.Digest(s.mode&3), 0, false, false)
		unix.Write(peer, s.data)
		for i := 0; i < 50 && q.active > 0; i++ {
			q.flush()
			q.receive()
			drain(peer)
		}
		if q.active != 0 || done[0]+done[1]+done[2]+done[3] != 4 || q.c == nil {
			t.Errorf("seed %s: active %d done %v connected %v err %v", s.name, q.active, *done, q.c != nil, q.lastErr)
		}
		q.setMode(modeClosed)
		unix.Close(peer)
	}
	// The four-read streams complete every read once, on one connection;
	// in order, all of them are guessed and nothing is copied.
	for _, s := range seeds {
		if !strings.HasPrefix(s.name, "reads-") {
			continue
		}
		q, peer, done := fuzzSetup(t, proto.Digest(s.mode&3), 0, false, true)
		unix.Write(peer, s.data)
		for i := 0; i < 50 && q.active > 0; i++ {
			q.flush()
			q.receive()
			drain(peer)
		}
		st := q.stats
		if q.active != 0 || *done != [4]int{1, 1, 1, 1} || q.c == nil {
			t.Errorf("seed %s: active %d done %v connected %v err %v", s.name, q.active, *done, q.c != nil, q.lastErr)
		}
		if strings.HasPrefix(s.name, "reads-inorder-") && (st.Speculated != 4 || st.Copied != 0) {
			t.Errorf("seed %s: %d PDUs guessed, %d bytes copied; want 4 and 0", s.name, st.Speculated, st.Copied)
		}
		q.setMode(modeClosed)
		unix.Close(peer)
	}
}
