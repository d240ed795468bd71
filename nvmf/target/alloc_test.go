//go:build linux

package target

import (
	"testing"

	"hyperpath/nvmf/proto"
	"hyperpath/nvmf/tcp/tcptest"
)

// TestNoAllocsPerIO checks that a command costs no allocation in the
// process: target, transport and bdev layer (the tcptest host allocates
// nothing per command either, so AllocsPerRun's process-wide count is the
// target's).
func TestNoAllocsPerIO(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    tcptest.Options
	}{
		{"plain", tcptest.Options{}},
		{"digests", tcptest.Options{HeaderDigest: true, DataDigest: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{reactors: 1})
			_, cntlid := e.admin(tc.o)
			q := e.io(tc.o, cntlid, 1)
			rbuf := make([]byte, 4096)
			wbuf := pattern(4096, 1)
			big := pattern(65536, 2)
			bigR := make([]byte, 65536)
			var sqe proto.SQE
			run := func(op uint8, nlb uint32, w, r []byte) {
				sqe = tcptest.RW(op, 1, 64, nlb)
				cqe, err := q.Exec(&sqe, w, r)
				if err != nil || !cqe.Status.Success() {
					t.Fatalf("op %#x: %v %v", op, cqe.Status, err)
				}
			}
			cases := []struct {
				name string
				f    func()
			}{
				{"read 4K (C2HData)", func() { run(proto.IORead, 8, nil, rbuf) }},
				{"write 4K (in capsule)", func() { run(proto.IOWrite, 8, wbuf, nil) }},
				{"write 64K (R2T)", func() { run(proto.IOWrite, 128, big, nil) }},
				{"read 64K", func() { run(proto.IORead, 128, nil, bigR) }},
			}
			for _, c := range cases {
				for i := 0; i < 50; i++ { // warm up: buffers grow once
					c.f()
				}
				if a := testing.AllocsPerRun(500, c.f); a != 0 {
					t.Errorf("%s: %.2f allocations per command", c.name, a)
				}
			}
		})
	}
}
