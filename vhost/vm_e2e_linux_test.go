package vhost

import (
	"strconv"
	"testing"

	"hyperpath/test/vm"
)

func logDisk(t *testing.T, r *vm.DiskResult) {
	t.Helper()
	if r == nil {
		return
	}
	for _, s := range r.Steps {
		t.Logf("step %-14s ok=%v %s", s.Name, s.OK, s.Detail)
	}
	t.Logf("guest ran %v, saw %d bytes in %d queues", r.Elapsed, r.SizeBytes, r.Queues)
}

// TestGuestVirtioBlk boots a Linux guest under QEMU whose virtio-blk
// driver talks to the target through vhost-user-blk-pci: queue count, fio
// randwrite with crc32c verify at several block sizes and depths,
// blkdiscard, write-zeroes, mkfs.ext4 and checksums across drop_caches and a
// remount. Guest RAM is a shared memfd, or 2 MiB huge pages on hugetlbfs.
func TestGuestVirtioBlk(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a guest (-short)")
	}
	img := vm.Require(t)
	cases := []struct {
		name string
		mem  vm.MemBackend
		fio  []vm.FioJob
	}{
		{"memfd", vm.Memfd, nil},
		{"hugetlbfs", vm.Hugetlbfs, []vm.FioJob{{BlockSize: "4k", QueueDepth: 8}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTEnv(t, tenvOpts{reactors: 2})
			e.malloc("Malloc0", 512, 256<<20/512)
			ctrl := e.ctrl(BlkControllerOptions{Name: "vhost.0", Bdev: "Malloc0"})
			r, err := vm.CheckVhostBlk(t, img, vm.VhostBlkCheck{
				Socket: ctrl.Socket(), NumQueues: 2, MemBackend: c.mem,
				Disk: vm.DiskCheck{Discard: true, Fio: c.fio, FioMiB: 4},
			})
			logDisk(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if r.Queues != 2 || r.SizeBytes != 256<<20 {
				t.Errorf("guest sees %d bytes in %d queues, want 256 MiB in 2", r.SizeBytes, r.Queues)
			}
			want := []string{"device", "discard", "zeroout", "checksum"}
			jobs := c.fio
			if jobs == nil {
				jobs = vm.DefaultFioJobs
			}
			for _, j := range jobs {
				want = append(want, "fio-"+j.BlockSize+"-qd"+strconv.Itoa(j.QueueDepth))
			}
			for _, w := range want {
				if s, ok := r.Step(w); !ok || !s.OK {
					t.Errorf("step %s: ran %v ok %v", w, ok, s.OK)
				}
			}
		})
	}
}
