package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCpioRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	c := newCpioWriter(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Dir("/proc"))
	must(c.Bytes("/usr/bin/tool", 0o755, []byte("#!/bin/sh\necho hi\n")))
	must(c.Bytes("/etc/empty", 0o644, nil))
	must(c.Bytes("etc/odd", 0o600, []byte("12345")))
	must(c.Symlink("/usr/sbin/mkfs.ext4", "mke2fs"))
	must(c.CharDev("/dev/console", 0o600, 5, 1))
	must(c.Close())
	if buf.Len()%4 != 0 {
		t.Fatalf("archive length %d is not a multiple of 4", buf.Len())
	}
	// A second archive appended, as Boot does.
	c2 := newCpioWriter(&buf)
	must(c2.Bytes("/guest.sh", 0o755, []byte("exit 7\n")))
	must(c2.Close())

	got, err := readCpio(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		mode uint32
		data string
	}{
		"proc":               {modeDir | 0o755, ""},
		"usr":                {modeDir | 0o755, ""},
		"usr/bin":            {modeDir | 0o755, ""},
		"usr/bin/tool":       {modeFile | 0o755, "#!/bin/sh\necho hi\n"},
		"etc":                {modeDir | 0o755, ""},
		"etc/empty":          {modeFile | 0o644, ""},
		"etc/odd":            {modeFile | 0o600, "12345"},
		"usr/sbin":           {modeDir | 0o755, ""},
		"usr/sbin/mkfs.ext4": {modeSymlink | 0o777, "mke2fs"},
		"dev":                {modeDir | 0o755, ""},
		"dev/console":        {modeChar | 0o600, ""},
		"guest.sh":           {modeFile | 0o755, "exit 7\n"},
	}
	seen := map[string]bool{}
	for _, e := range got {
		w, ok := want[e.Name]
		if !ok {
			t.Errorf("unexpected member %q", e.Name)
			continue
		}
		if seen[e.Name] {
			t.Errorf("member %q twice", e.Name)
		}
		seen[e.Name] = true
		if e.Mode != w.mode || string(e.Data) != w.data {
			t.Errorf("%s: mode %o data %q, want %o %q", e.Name, e.Mode, e.Data, w.mode, w.data)
		}
		if e.Name == "dev/console" && (e.Major != 5 || e.Minor != 1) {
			t.Errorf("dev/console is %d:%d", e.Major, e.Minor)
		}
	}
	for n := range want {
		if !seen[n] {
			t.Errorf("member %q missing", n)
		}
	}

	// An independent reader must agree.
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox to cross-check the archive")
	}
	cmd := exec.Command(bb, "cpio", "-t")
	cmd.Stdin = bytes.NewReader(buf.Bytes()) // it stops at the first trailer
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v\n%s", err, out)
	}
	for _, n := range []string{"usr/bin/tool", "usr/sbin/mkfs.ext4", "dev/console"} {
		if !strings.Contains(string(out), n+"\n") {
			t.Errorf("busybox cpio -t does not list %s:\n%s", n, out)
		}
	}
}

func TestCpioRejectsBadNames(t *testing.T) {
	c := newCpioWriter(&bytes.Buffer{})
	for _, n := range []string{"", "/", "."} {
		if err := c.Bytes(n, 0o644, nil); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}

func TestReadCpioMalformed(t *testing.T) {
	var good bytes.Buffer
	c := newCpioWriter(&good)
	c.Bytes("/a", 0o644, []byte("data"))
	c.Close()
	g := good.Bytes()
	cases := map[string][]byte{
		"bad magic":     append([]byte("070707"), g[6:]...),
		"truncated hdr": g[:50],
		"truncated":     g[:len(g)/2],
		"not hex":       append(append(append([]byte{}, g[:6]...), 'z'), g[7:]...),
		"huge namesize": append(append(append([]byte{}, g[:94]...), []byte("7fffffff")...), g[102:]...),
	}
	for name, b := range cases {
		if _, err := readCpio(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzReadCpio(f *testing.F) {
	var good bytes.Buffer
	c := newCpioWriter(&good)
	c.Bytes("/bin/x", 0o755, []byte("hello"))
	c.Symlink("/bin/y", "x")
	c.Close()
	f.Add(good.Bytes())
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := readCpio(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Size <= readCpioMaxData && int64(len(e.Data)) != e.Size {
				t.Fatalf("%s: %d data bytes for size %d", e.Name, len(e.Data), e.Size)
			}
		}
	})
}

func TestEnvScript(t *testing.T) {
	env := map[string]string{"A": "plain", "B": "it's \"quoted\" $HOME `x` \\n", "C_1": "", "LONG": strings.Repeat("x ", 100)}
	b, err := envScript(env)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	f := filepath.Join(t.TempDir(), "env")
	os.WriteFile(f, b, 0o644)
	for k, v := range env {
		out, err := exec.Command(sh, "-c", ". "+f+"; printf %s \"$"+k+"\"").Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != v {
			t.Errorf("%s = %q, want %q", k, out, v)
		}
	}
	for _, bad := range []string{"1A", "A-B", "A B", ""} {
		if _, err := envScript(map[string]string{bad: "x"}); !errors.Is(err, errBadEnvName) {
			t.Errorf("name %q: err %v", bad, err)
		}
	}
}

func TestQemuArgs(t *testing.T) {
	img := &Image{Kernel: "/k/vmlinux", Tools: "/k/tools.img"}
	cfg := Config{Script: "true"}
	cfg.defaults()
	args := strings.Join(img.qemuArgs(cfg, "/t/initrd", ""), " ")
	for _, want := range []string{
		"-accel tcg,thread=multi -cpu max", "-smp 2 -m 512M",
		"-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem",
		"-serial stdio -no-reboot", "-kernel /k/vmlinux -initrd /t/initrd",
		"console=ttyS0",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, "-netdev") || strings.Contains(args, "-virtfs") || strings.Contains(args, "vhost-user") {
		t.Errorf("unrequested devices:\n%s", args)
	}
	if !strings.HasSuffix(args, "-device virtio-blk-pci,drive=hpvm-tools,serial=hpvm-tools") {
		t.Errorf("the tools disk must come last:\n%s", args)
	}

	cfg = Config{
		Script: "true", MemoryMiB: 1024, CPUs: 1, MemBackend: Hugetlbfs,
		VhostUserBlk: []VhostUserBlk{{Socket: "/s/a.sock", NumQueues: 2, Reconnect: 1500 * time.Millisecond}, {Socket: "/s/b.sock"}},
		Net:          &Net{HostForwards: []HostForward{{HostPort: 14420, GuestPort: 4420}}, Isolated: true},
		Share9p:      "/share",
		QEMUArgs:     []string{"-d", "guest_errors"},
		KernelArgs:   []string{"loglevel=7"},
	}
	cfg.defaults()
	args = strings.Join(img.qemuArgs(cfg, "/t/initrd", "/huge"), " ")
	for _, want := range []string{
		"-smp 1 -m 1024M",
		"memory-backend-file,id=mem,size=1024M,mem-path=/huge,share=on,prealloc=on",
		"-chardev socket,id=vub0,path=/s/a.sock,reconnect=2 -device vhost-user-blk-pci,chardev=vub0,num-queues=2",
		"-chardev socket,id=vub1,path=/s/b.sock -device vhost-user-blk-pci,chardev=vub1,num-queues=1",
		"-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:14420-:4420 -device virtio-net-pci,netdev=net0",
		"-virtfs local,path=/share,mount_tag=host,security_model=none",
		"console=ttyS0 quiet panic=-1 loglevel=7",
		"-d guest_errors -drive",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
}

func TestParseSteps(t *testing.T) {
	out := "noise\nSTEP device ok size=1073741824 queues=2 lbs=512\n[ 1.2] kernel says STEP bogus\n" +
		"x STEP fio-4k-qd1 ok write_iops=5000\nSTEP discard FAIL the device offers no discard\nSTEP short\n"
	r, err := diskResult(1, out, time.Second)
	if err == nil || !strings.Contains(err.Error(), "discard failed: the device offers no discard") {
		t.Fatalf("err = %v", err)
	}
	if len(r.Steps) != 3 || r.SizeBytes != 1<<30 || r.Queues != 2 {
		t.Fatalf("result %+v", r)
	}
	if s, ok := r.Step("fio-4k-qd1"); !ok || !s.OK || detailField(s.Detail, "write_iops") != "5000" {
		t.Fatalf("fio step %+v", s)
	}
	if _, err := diskResult(0, "STEP device ok size=1 queues=1\n", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := diskResult(0, "", 0); err == nil {
		t.Fatal("no steps accepted")
	}
	if _, err := diskResult(2, "STEP device ok size=1 queues=1\n", 0); err == nil {
		t.Fatal("non-zero exit accepted")
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/nvme/host/nvme-tcp.ko": "nvme_tcp",
		"nvme-tcp":                             "nvme_tcp",
		"kernel/fs/ext4/ext4.ko.xz":            "ext4",
		"9pnet_virtio":                         "9pnet_virtio",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExtractVmlinuxRejects(t *testing.T) {
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"short": []byte("MZ"),
		"nohdr": make([]byte, 4096),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		if err := extractVmlinux(context.Background(), p, filepath.Join(dir, "out")); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A header whose payload lies outside the file.
	b := make([]byte, 4096)
	copy(b[0x202:], "HdrS")
	b[0x206], b[0x207] = 0x0f, 0x02
	b[0x1f1] = 4
	b[0x24c] = 0xff
	b[0x24d] = 0xff
	p := filepath.Join(dir, "outside")
	os.WriteFile(p, b, 0o644)
	if err := extractVmlinux(context.Background(), p, filepath.Join(dir, "out")); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("payload outside the file: %v", err)
	}
}

func TestImageKey(t *testing.T) {
	k := &kernelInfo{Package: "linux-image-x", PackageVersion: "1", Version: "6.1.0-1-amd64"}
	mk := func(mtime int64) *initrdSpec {
		s := &initrdSpec{}
		s.add(&member{dst: "/init", data: []byte("x"), perm: 0o755})
		s.add(&member{dst: "/usr/bin/fio", src: "/usr/bin/fio", perm: 0o755, size: 10, mtime: mtime})
		return s
	}
	base := imageKey(k, mk(1), &initrdSpec{})
	if imageKey(k, mk(1), &initrdSpec{}) != base {
		t.Fatal("key is not deterministic")
	}
	if imageKey(k, mk(2), &initrdSpec{}) == base {
		t.Error("key ignores an input's mtime")
	}
	k2 := *k
	k2.Version = "6.1.0-2-amd64"
	if imageKey(&k2, mk(1), &initrdSpec{}) == base {
		t.Error("key ignores the kernel version")
	}
	if imageKey(k, &initrdSpec{}, mk(1)) == base {
		t.Error("key ignores which image a file is in")
	}
}

func TestDiskCheckEnv(t *testing.T) {
	env := DiskCheck{Queues: 2, Discard: true, NoData: true, Fio: []FioJob{{"4k", 1}, {"1m", 0}}}.env()
	want := map[string]string{"DEV": "/dev/vda", "QUEUES": "2", "DISCARD": "1", "NODATA": "1", "FIO_JOBS": "4k:1 1m:1", "FIO_MIB": "8", "FS_MIB": "8"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("env %v", env)
	}
}
