package vhost

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"hyperpath/vhost/blk"
)

const hugeDir = "/sys/kernel/mm/hugepages/hugepages-2048kB/"

func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("huge pages: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// addHugepages grows the 2 MiB pool by n pages for the test and shrinks it
// by as many afterwards (other users of the pool keep theirs). It skips
// when the pool cannot grow (not root, no memory).
func addHugepages(t *testing.T, n int) {
	t.Helper()
	nrPath := hugeDir + "nr_hugepages"
	old := readInt(t, nrPath)
	if err := os.WriteFile(nrPath, []byte(strconv.Itoa(old+n)), 0); err != nil {
		t.Skipf("cannot grow the huge page pool: %v", err)
	}
	t.Cleanup(func() {
		cur := readInt(t, nrPath)
		os.WriteFile(nrPath, []byte(strconv.Itoa(max(cur-n, 0))), 0)
	})
	if free := readInt(t, hugeDir+"free_hugepages"); free < n {
		t.Skipf("asked for %d more huge pages, only %d free", n, free)
	}
}

// TestHugetlbGuestMemory runs IO with guest memory in 2 MiB pages (a
// MFD_HUGETLB memfd, as QEMU's memory-backend-memfd,hugetlb=on): the target
// maps it at huge page alignment.
func TestHugetlbGuestMemory(t *testing.T) {
	addHugepages(t, 16)
	e := newTEnv(t, tenvOpts{})
	disk := e.malloc("Malloc0", 512, 16384)
	c := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
	f := dialFrontend(t, c.Socket(), feOpts{memMiB: 16, hugetlb: true})
	f.startAll()
	q := f.queues[0]
	var rs []*freq
	for i := range 16 {
		rs = append(rs, q.request(blk.Header{Type: blk.TypeOut, Sector: uint64(128 * i)}, pattern(65536, uint64(i)), 0))
	}
	q.kickNow()
	q.wait(rs...)
	for i := range 16 {
		if !bytes.Equal(disk.Memory()[65536*i:65536*(i+1)], pattern(65536, uint64(i))) {
			t.Fatalf("write %d lost", i)
		}
	}
	f.resetBufs()
	if r, st, _ := q.do(blk.Header{Type: blk.TypeIn, Sector: 128}, nil, 65536); st != blk.StatusOK || !bytes.Equal(r.data, pattern(65536, 1)) {
		t.Fatalf("read: %d", st)
	}
}
