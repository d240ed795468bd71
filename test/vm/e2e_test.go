package vm

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// End-to-end tests: real Linux guests under QEMU. Each needs the image
// (Require installs and builds it, or skips saying why). Guests run under
// TCG on a small host, so the slow ones skip under -short.

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots guests that run for tens of seconds; skipped under -short")
	}
}

// TestGuestBasics: exit status, environment, per-boot files (a host-built
// static Go binary), a 9p share both ways, and the split of script output.
func TestGuestBasics(t *testing.T) {
	img := Require(t)
	probe := BuildGo(t, "./test/vm/testdata/guestprobe")
	share := t.TempDir()
	if err := os.WriteFile(filepath.Join(share, "from-host"), []byte("host says hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := img.Run(t, Config{
		Script: `set -e
echo "kernel=$(uname -r) cpus=$(nproc)"
echo "env A=[$A] B=[$B]"
/bin/guestprobe one two
cat /data.txt
cat /host/from-host
echo "written by guest" > /host/from-guest
exit 7
`,
		Env:     map[string]string{"A": "x y", "B": "it's", "PROBE": "probe-env"},
		Files:   map[string]string{"/bin/guestprobe": probe},
		Data:    map[string][]byte{"/data.txt": []byte("inline data\n")},
		Share9p: share,
		Timeout: time.Minute,
	})
	if code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	for _, want := range []string{
		"kernel=" + img.KernelVersion + " cpus=2",
		"env A=[x y] B=[it's]",
		"guestprobe args=one,two cpus=2 kernel=" + img.KernelVersion + " env=probe-env",
		"inline data",
		"host says hi",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "@@hpvm") {
		t.Errorf("output holds a marker:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(share, "from-guest")); err != nil || string(b) != "written by guest\n" {
		t.Errorf("file from guest: %q %v", b, err)
	}
}

// TestGuestLifecycle: several guests at once; a timeout, a kill from the
// host while the guest runs, and a kernel panic each end the guest with
// the matching error and release it.
func TestGuestLifecycle(t *testing.T) {
	img := Require(t)
	var wg sync.WaitGroup
	run := func(name string, f func(t *testing.T)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, f)
		}()
	}
	run("timeout", func(t *testing.T) {
		g := img.Boot(t, Config{Script: "sleep 600", Timeout: 2 * time.Second})
		start := time.Now()
		_, _, err := g.Wait()
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("timeout took %v", d)
		}
	})
	run("kill", func(t *testing.T) {
		g := img.Boot(t, Config{Script: "echo guest-is-up; sleep 600", Timeout: time.Minute})
		if err := g.WaitFor("guest-is-up", time.Minute); err != nil {
			t.Fatal(err)
		}
		pid := g.PID()
		g.Kill()
		if _, _, err := g.Wait(); !errors.Is(err, ErrKilled) {
			t.Fatalf("err = %v, want ErrKilled", err)
		}
		if cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(cmd), "qemu") {
			t.Errorf("qemu pid %d still exists after Kill", pid)
		}
	})
	run("panic", func(t *testing.T) {
		g := img.Boot(t, Config{Script: "echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger; sleep 60", Timeout: time.Minute})
		_, out, err := g.Wait()
		if !errors.Is(err, ErrNoExitMarker) {
			t.Fatalf("err = %v, want ErrNoExitMarker", err)
		}
		if !strings.Contains(out, "Kernel panic") && !strings.Contains(out, "sysrq") {
			t.Errorf("console shows no panic:\n%s", tail(out, 1500))
		}
	})
	wg.Wait()
}

// shmDisk makes a sparse file in /dev/shm for a file-backed export.
func shmDisk(t *testing.T, sizeMiB int64) string {
	t.Helper()
	f, err := os.CreateTemp("/dev/shm", "hpvm-disk-*.img")
	if err != nil {
		t.Skipf("no /dev/shm for a disk file: %v", err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if err := f.Truncate(sizeMiB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}

func logDisk(t *testing.T, r *DiskResult) {
	t.Helper()
	if r == nil {
		return
	}
	for _, s := range r.Steps {
		t.Logf("  %-14s ok=%v %s", s.Name, s.OK, s.Detail)
	}
	t.Logf("  guest ran %v", r.Elapsed.Round(time.Millisecond))
}

// TestVhostUserBlkQSD: the guest's virtio-blk driver through QEMU's
// vhost-user-blk-pci against qemu-storage-daemon, the reference back end:
// two queues, fio verify, discard, ext4 checksums; guest RAM in a memfd
// and on hugetlbfs.
func TestVhostUserBlkQSD(t *testing.T) {
	skipShort(t)
	img := Require(t)
	// The full fio set once; the other variants check their memory
	// backend or data path with less IO (guest IO is slow under TCG).
	cases := []struct {
		name string
		mem  MemBackend
		file bool
		fio  []FioJob
	}{
		{"null-co/memfd", Memfd, false, []FioJob{{"4k", 16}, {"64k", 4}}},
		{"file/memfd", Memfd, true, nil},
		{"file/hugetlbfs", Hugetlbfs, true, []FioJob{{"4k", 8}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sock := filepath.Join(SocketDir(t), "vub.sock")
			bd := NullCo(1024)
			if c.file {
				bd = FileBlockdev(shmDisk(t, 1024))
			}
			StartQSD(t, img, QSDConfig{Blockdev: bd, Socket: sock, NumQueues: 2})
			r, err := CheckVhostBlk(t, img, VhostBlkCheck{
				Socket: sock, NumQueues: 2, MemBackend: c.mem,
				Disk: DiskCheck{Discard: true, NoData: !c.file, Fio: c.fio, FioMiB: 4},
			})
			logDisk(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if r.Queues != 2 || r.SizeBytes != 1<<30 {
				t.Errorf("guest sees %d bytes in %d queues, want 1 GiB in 2", r.SizeBytes, r.Queues)
			}
			want := []string{"device", "discard"}
			for _, j := range c.fio {
				want = append(want, "fio-"+j.BlockSize+"-qd"+strconv.Itoa(j.QueueDepth))
			}
			if c.fio == nil {
				want = append(want, "fio-4k-qd1", "fio-4k-qd16", "fio-64k-qd4")
			}
			if c.file {
				want = append(want, "zeroout", "checksum")
			}
			for _, w := range want {
				if _, ok := r.Step(w); !ok {
					t.Errorf("step %s did not run", w)
				}
			}
		})
	}
}

// TestVhostUserBlkReconnect: QEMU with reconnect= keeps the disk while the
// back end is killed with SIGKILL and restarted (with no request in
// flight); data written before the crash reads back after it.
func TestVhostUserBlkReconnect(t *testing.T) {
	skipShort(t)
	img := Require(t)
	sock := filepath.Join(SocketDir(t), "vub.sock")
	qsd := StartQSD(t, img, QSDConfig{Blockdev: FileBlockdev(shmDisk(t, 64)), Socket: sock, NumQueues: 1})
	share := t.TempDir()
	g := img.Boot(t, Config{
		VhostUserBlk: []VhostUserBlk{{Socket: sock, NumQueues: 1, Reconnect: time.Second}},
		Share9p:      share,
		Timeout:      2 * time.Minute,
		Script: `head -c 4194304 /dev/urandom > /tmp/a
dd if=/tmp/a of=/dev/vda bs=65536 oflag=direct conv=fsync 2>/dev/null || exit 10
echo PHASE1-DONE
i=0; while [ ! -f /host/restarted ]; do sleep 0.1; i=$((i+1)); [ $i -lt 600 ] || exit 11; done
a=$(sha256sum < /tmp/a | cut -d' ' -f1)
b=$(dd if=/dev/vda bs=65536 count=64 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$a" = "$b" ] || { echo "readback differs: $a $b"; exit 12; }
head -c 1048576 /dev/urandom > /tmp/c
dd if=/tmp/c of=/dev/vda bs=65536 seek=64 oflag=direct conv=fsync 2>/dev/null || exit 13
c=$(dd if=/dev/vda bs=65536 skip=64 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$c" = "$(sha256sum < /tmp/c | cut -d' ' -f1)" ] || exit 14
echo "data intact across the back-end restart"
`,
	})
	if err := g.WaitFor("PHASE1-DONE", time.Minute); err != nil {
		t.Fatal(err)
	}
	old := qsd.PID()
	if err := qsd.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("qemu-storage-daemon pid %d killed with SIGKILL, restarted as %d", old, qsd.PID())
	if err := os.WriteFile(filepath.Join(share, "restarted"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, err := g.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(out, "data intact") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// TestSoftRoCE: rdma_rxe on the guest's NIC (an isolated user-mode
// network; RDMA CM cannot route over rxe on lo); ibv_rc_pingpong (RC
// send/recv) and rping (RDMA CM, RDMA READ/WRITE) between two processes
// on the guest's own address.
func TestSoftRoCE(t *testing.T) {
	skipShort(t)
	img := Require(t)
	code, out := img.Run(t, Config{Timeout: 2 * time.Minute, Net: &Net{Isolated: true}, Script: `
modprobe crc32_generic; modprobe rdma_rxe && modprobe rdma_ucm || exit 10
rdma link add rxe0 type rxe netdev eth0 || exit 11
ibv_devices
# GID of 10.0.2.15 (IPv4-mapped) on rxe0 (one grep: every fork costs under TCG).
G=$(grep -l 0000:0000:0000:0000:0000:ffff:0a00:020f /sys/class/infiniband/rxe0/ports/1/gids/* | head -1)
G=${G##*/}
[ -n "$G" ] || { cat /sys/class/infiniband/rxe0/ports/1/gids/*; exit 12; }
echo "gid index $G"
listening() { grep -qi ":$1 .* 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
ibv_rc_pingpong -d rxe0 -g $G -n 50 > /tmp/srv.log 2>&1 &
i=0; while ! listening 4853; do sleep 0.1; i=$((i+1)); [ $i -lt 100 ] || exit 13; done
ibv_rc_pingpong -d rxe0 -g $G -n 50 127.0.0.1 > /tmp/cli.log 2>&1; c=$?
wait $!; s=$?
cat /tmp/srv.log /tmp/cli.log
[ $c = 0 ] && [ $s = 0 ] || exit 14
echo "STEP pingpong ok"
rping -s -a 10.0.2.15 -C 10 > /tmp/rs.log 2>&1 &
S=$!
i=0
until rping -c -a 10.0.2.15 -C 10 -v > /tmp/rc.log 2>&1; do
	i=$((i+1))
	[ $i -lt 10 ] && kill -0 $S 2>/dev/null || { cat /tmp/rs.log /tmp/rc.log; exit 15; }
	sleep 0.2
done
wait $S || { cat /tmp/rs.log; exit 16; }
tail -1 /tmp/rc.log
echo "STEP rping ok"
`})
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"rxe0", "STEP pingpong ok", "STEP rping ok", "bytes in"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestKernelNVMeTCPTarget: the kernel's nvmet-tcp target on null_blk in a
// guest, its own nvme-tcp initiator connected to it (SelfTest), and a host
// client exchanging ICReq/ICResp with it through the forwarded port.
func TestKernelNVMeTCPTarget(t *testing.T) {
	skipShort(t)
	img := Require(t)
	port := FreePort(t)
	g := StartKernelTarget(t, img, KernelTarget{HostPort: port, SelfTest: true, Timeout: 2 * time.Minute})
	for _, want := range []string{"STEP target ok", "STEP selftest ok"} {
		if !strings.Contains(g.Console(), want) {
			t.Fatalf("console lacks %q:\n%s", want, g.ConsoleTail(3000))
		}
	}
	// NVMe/TCP 1.0 §3.6.2: ICReq is a 128-byte PDU (type 0x00, hlen=plen=128);
	// the target answers ICResp (type 0x01) with its MAXH2CDATA.
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := make([]byte, 128)
	req[0], req[2] = 0x00, 128
	binary.LittleEndian.PutUint32(req[4:], 128)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, 128)
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatalf("reading ICResp: %v", err)
	}
	plen := binary.LittleEndian.Uint32(resp[4:])
	maxData := binary.LittleEndian.Uint32(resp[12:])
	if resp[0] != 0x01 || resp[2] != 128 || plen != 128 || maxData < 4096 {
		t.Fatalf("ICResp type %#x hlen %d plen %d maxh2cdata %d", resp[0], resp[2], plen, maxData)
	}
	t.Logf("ICResp from the guest's nvmet: pfv %d cpda %d dgst %#x maxh2cdata %d", binary.LittleEndian.Uint16(resp[8:]), resp[10], resp[11], maxData)
}

// TestCheckNVMeTCP: two guests at once. One runs the kernel target on a
// file namespace behind a host port; the other's kernel initiator connects
// to that port through the host's loopback and runs the disk check.
func TestCheckNVMeTCP(t *testing.T) {
	skipShort(t)
	img := Require(t)
	port := FreePort(t)
	StartKernelTarget(t, img, KernelTarget{HostPort: port, Backing: "file", SizeMiB: 256, Timeout: 4 * time.Minute})
	r, err := CheckNVMeTCP(t, img, NVMeTCPCheck{
		Port: port, NQN: DefaultTargetNQN,
		Disk: DiskCheck{Fio: []FioJob{{"4k", 4}, {"64k", 8}}, FioMiB: 2, FsMiB: 4},
	})
	logDisk(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Step("checksum"); !ok {
		t.Error("checksum step did not run")
	}
}

// TestKernelNVMeRDMALoop: the kernel's nvmet-rdma target and nvme-rdma
// initiator in one guest over Soft-RoCE on its NIC (SelfTest moves 4 MiB).
func TestKernelNVMeRDMALoop(t *testing.T) {
	skipShort(t)
	img := Require(t)
	g := StartKernelTarget(t, img, KernelTarget{Transport: "rdma", Backing: "file", SizeMiB: 16, SelfTest: true, Timeout: 2 * time.Minute})
	for _, want := range []string{"STEP target ok nqn=" + DefaultTargetNQN + " transport=rdma", "STEP selftest ok"} {
		if !strings.Contains(g.Console(), want) {
			t.Fatalf("console lacks %q:\n%s", want, g.ConsoleTail(3000))
		}
	}
}
