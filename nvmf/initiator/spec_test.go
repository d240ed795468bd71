package initiator

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/nvmf/proto"
)

// TestSpeculativeBurst: a controller answers bursts of four 4 KiB reads
// with one C2HData (SUCCESS) each, all in one write. Once the host has
// seen that the controller answers 4 KiB reads whole, it reads a burst
// answered in command order with a couple of readv calls, straight into
// the buffers (no copy). Answers in another order, a split answer or an
// error response in the middle make the guesses fail: the data is then
// moved to where it belongs, and every read still completes with its own
// bytes.
func TestSpeculativeBurst(t *testing.T) {
	const n, size = 4, 4096 // the fake queue has 4 command slots
	type burst struct {
		order     []int // answer order (indexes into the burst)
		splitIdx  int   // this one is answered with two PDUs (-1: none)
		errIdx    int   // this one gets an error CapsuleResp instead of data (-1: none)
		maxReads  uint64
		noCopy    bool   // an in-order burst: nothing may be copied
		wantSpecs uint64 // at least
	}
	inOrder := []int{0, 1, 2, 3}
	bursts := []burst{
		{order: inOrder, splitIdx: -1, errIdx: -1, maxReads: 16},                                // learning
		{order: inOrder, splitIdx: -1, errIdx: -1, maxReads: 2, wantSpecs: n - 1, noCopy: true}, // guessed
		{order: []int{3, 2, 1, 0}, splitIdx: -1, errIdx: -1},                                    // reversed
		{order: inOrder, splitIdx: 1, errIdx: -1},                                               // split
		{order: inOrder, splitIdx: -1, errIdx: 2},                                               // error
		{order: inOrder, splitIdx: -1, errIdx: -1, maxReads: 16},                                // after misses
		{order: []int{0, 1, 2, 3}, splitIdx: -1, errIdx: -1, maxReads: 16},                      // recovered
	}
	for _, dg := range []proto.Digest{0, proto.DigestHeader | proto.DigestData} {
		t.Run(fmt.Sprintf("digests=%d", dg), func(t *testing.T) {
			data := make([][]byte, n)
			for i := range data {
				data[i] = make([]byte, size)
				pattern(data[i], uint64(i)*977+uint64(dg))
			}
			q := fakeIOQueue(t, dg, 0, func(f *fakeCtrl) {
				b := make([]byte, 256)
				for _, bu := range bursts {
					cids := make([]uint16, n)
					for i := 0; i < n; i++ {
						if !f.read() || f.h.Type != proto.PDUCapsuleCmd {
							f.t.Error("fake: no read command")
							return
						}
						cids[i] = f.h.SQE.CID
					}
					var out []byte
					c2h := func(i int, off, l uint32, last bool) {
						h, _ := proto.EncodeC2HData(b, f.toHost, &proto.DataPDU{CCCID: cids[i], DataO: off, DataL: l, Last: last, Success: last})
						out = append(out, b[:h]...)
						out = append(out, data[i][off:off+l]...)
						if dg&proto.DigestData != 0 {
							var d [4]byte
							proto.PutDigest(d[:], proto.CRC32C(data[i][off:off+l]))
							out = append(out, d[:]...)
						}
					}
					for _, i := range bu.order {
						switch i {
						case bu.errIdx:
							h, _ := proto.EncodeCapsuleResp(b, f.toHost, &proto.CQE{CID: cids[i], Status: proto.StatusLBAOutOfRange})
							out = append(out, b[:h]...)
						case bu.splitIdx:
							c2h(i, 0, 1000, false)
							c2h(i, 1000, size-1000, true)
						default:
							c2h(i, 0, size, true)
						}
					}
					f.send(out)
				}
				f.read() // until the host closes
			})
			for bi, bu := range bursts {
				got := make([][]byte, n)
				res := make([]syncResult, n)
				for i := 0; i < n; i++ {
					got[i] = make([]byte, size)
					cmd := Cmd{Op: OpRead, NSID: 1, NLB: 8, Iovs: split(got[i], 1+i%3), LenBytes: size, Done: syncDone, Ctx: &res[i]}
					if err := q.Submit(&cmd); err != nil {
						t.Fatal(err)
					}
				}
				q.flush()
				// The whole answer is in the socket before the host reads.
				hl, dl := proto.DataHLen, 0
				if dg&proto.DigestHeader != 0 {
					hl += proto.DigestLen
				}
				if dg&proto.DigestData != 0 {
					dl = proto.DigestLen
				}
				want := 0
				for _, i := range bu.order {
					switch i {
					case bu.errIdx:
						want += hl
					case bu.splitIdx:
						want += 2 * (hl + dl)
					default:
						want += hl + dl
					}
					if i != bu.errIdx {
						want += size
					}
				}
				for wait := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
					n, err := unix.IoctlGetInt(q.c.fd, unix.SIOCINQ)
					if err != nil {
						t.Fatal(err)
					}
					if n >= want {
						break
					}
					if time.Now().After(wait) {
						t.Fatalf("burst %d: %d of %d bytes arrived in 5 s", bi, n, want)
					}
				}
				before := q.stats
				deadline := time.Now().Add(5 * time.Second)
				for q.c != nil && time.Now().Before(deadline) {
					done := 0
					for i := range res {
						if res[i].done {
							done++
						}
					}
					if done == n {
						break
					}
					q.receive()
				}
				st := q.stats
				for i := 0; i < n; i++ {
					if !res[i].done {
						t.Fatalf("burst %d: read %d not completed (err %v)", bi, i, q.lastErr)
					}
					if i == bu.errIdx {
						if res[i].cqe.Status.Code() != proto.StatusLBAOutOfRange.Code() {
							t.Fatalf("burst %d: read %d status %v, want LBA out of range", bi, i, res[i].cqe.Status)
						}
						continue
					}
					if !res[i].cqe.Status.Success() {
						t.Fatalf("burst %d: read %d status %v", bi, i, res[i].cqe.Status)
					}
					if !bytes.Equal(got[i], data[i]) {
						t.Fatalf("burst %d: read %d returned other bytes", bi, i)
					}
				}
				reads, copied := st.Reads-before.Reads, st.Copied-before.Copied
				specs, misses := st.Speculated-before.Speculated, st.SpecMisses-before.SpecMisses
				t.Logf("burst %d: %d readv, %d copied, %d guessed, %d misses", bi, reads, copied, specs, misses)
				if bu.maxReads > 0 && reads > bu.maxReads {
					t.Errorf("burst %d: %d readv calls, want at most %d", bi, reads, bu.maxReads)
				}
				if bu.noCopy && copied > 0 {
					t.Errorf("burst %d: %d bytes copied, want none", bi, copied)
				}
				if specs < bu.wantSpecs {
					t.Errorf("burst %d: %d PDUs guessed, want at least %d", bi, specs, bu.wantSpecs)
				}
			}
		})
	}
}
