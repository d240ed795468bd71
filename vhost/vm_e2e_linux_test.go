package vhost

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestGuestReconnectAfterTargetCrash: a guest runs fio randwrite+verify
// through QEMU's vhost-user-blk-pci with reconnect=1 while the target (a
// child process on a file-backed disk) is killed with SIGKILL holding
// requests in flight, and a new target is started on the same socket. QEMU
// reconnects, hands back the inflight area, the new target resubmits the
// requests, and fio must finish with no IO error and verified data.
func TestGuestReconnectAfterTargetCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a guest (-short)")
	}
	if os.Getenv(envChild) == "1" {
		t.Skip("in the child")
	}
	img := vm.Require(t)
	dir, err := os.MkdirTemp("", "vh")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	diskPath := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(diskPath, make([]byte, 64<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	child := startChild(t, dir, diskPath, false)
	g := img.Boot(t, vm.Config{
		VhostUserBlk: []vm.VhostUserBlk{{Socket: filepath.Join(dir, "vhost.0"), NumQueues: 2, Reconnect: time.Second}},
		Script: `echo FIO-START
fio --name=w --filename=/dev/vda --rw=randwrite --bs=4k --iodepth=16 --ioengine=libaio --direct=1 \
    --size=24M --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 --output-format=terse >/tmp/fio.out 2>&1
rc=$?
tail -c 600 /tmp/fio.out
if dmesg | grep -i 'i/o error'; then echo "GUEST-IO-ERROR"; exit 2; fi
echo "FIO-RC=$rc"
exit $rc`,
		Timeout: 4 * time.Minute,
	})
	if err := g.WaitFor("FIO-START", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Close the target's gate once fio writes: requests pile up in flight.
	time.Sleep(time.Second)
	child.cmd.Process.Signal(syscall.SIGUSR1)
	child.waitOutput(t, "GATE-HELD", time.Minute)
	t.Logf("killing the target with requests in flight: %s", lastLine(child.output(), "GATE-HELD"))
	child.kill()
	child2 := startChild(t, dir, diskPath, false)
	code, out, err := g.Wait()
	t.Logf("guest output:\n%s", out)
	if err != nil || code != 0 {
		t.Fatalf("guest: exit %d, %v", code, err)
	}
	if !strings.Contains(out, "FIO-RC=0") {
		t.Fatal("fio did not finish cleanly")
	}
	if !strings.Contains(child2.output(), "resubmitting requests found in flight") {
		t.Fatalf("the new target resubmitted nothing:\n%s", child2.output())
	}
	t.Logf("new target: %s", lastLine(child2.output(), "resubmitting"))
}

// lastLine returns the last line of out that contains s.
func lastLine(out, s string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
