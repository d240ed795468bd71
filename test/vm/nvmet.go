package vm

import (
	_ "embed"
	"strconv"
	"testing"
	"time"
)

//go:embed scripts/nvmet.sh
var nvmetScript string

// KernelTarget describes a Linux kernel NVMe-oF target (nvmet) in a guest:
// the reference target that Hyperpath's initiator is tested against.
type KernelTarget struct {
	NQN       string // subsystem NQN (default DefaultTargetNQN)
	Transport string // "tcp" (default) or "rdma" (Soft-RoCE on the guest's eth0: in-guest initiators only)
	// Backing of namespace 1: "null_blk" (default; keeps no data) or "file"
	// (a sparse file in the guest's tmpfs; keeps data, costs guest RAM).
	Backing string
	SizeMiB int // namespace size (default 1024 for null_blk, 128 for file)
	// HostPort, if not zero, forwards 127.0.0.1:HostPort to the target's
	// port 4420 in the guest, so host-side initiators can connect.
	HostPort int
	// SelfTest connects the guest's own kernel initiator to the target
	// once (write 4 MiB, read back, disconnect) before the target is
	// reported ready: proof that nvmet, nvme-tcp/nvme-rdma and nvme-cli work.
	SelfTest  bool
	MemoryMiB int           // 0 means 512 (plus SizeMiB for a file namespace)
	Timeout   time.Duration // the guest's whole life (0 means 5 minutes)
}

// DefaultTargetNQN is KernelTarget's default subsystem NQN.
const DefaultTargetNQN = "nqn.2014-08.io.hyperpath:vm-target"

// StartKernelTarget boots a guest running the kernel NVMe-oF target and
// returns once the target listens (the console shows NVMET-READY; its
// "STEP target" and "STEP selftest" lines say what was set up). The guest
// runs until the test ends or it is killed.
func StartKernelTarget(t testing.TB, img *Image, c KernelTarget) *Guest {
	t.Helper()
	if c.NQN == "" {
		c.NQN = DefaultTargetNQN
	}
	if c.Transport == "" {
		c.Transport = "tcp"
	}
	if c.Backing == "" {
		c.Backing = "null_blk"
	}
	if c.SizeMiB <= 0 {
		c.SizeMiB = 1024
		if c.Backing == "file" {
			c.SizeMiB = 128
		}
	}
	if c.MemoryMiB <= 0 {
		c.MemoryMiB = defaultMemoryMiB
		if c.Backing == "file" {
			c.MemoryMiB += c.SizeMiB
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	net := &Net{Isolated: true} // host forwards still work
	if c.HostPort != 0 {
		net.HostForwards = []HostForward{{HostPort: c.HostPort, GuestPort: 4420}}
	}
	env := map[string]string{"NQN": c.NQN, "BACKING": c.Backing, "SIZE_MIB": strconv.Itoa(c.SizeMiB), "TRANSPORT": c.Transport}
	if c.SelfTest {
		env["SELFTEST"] = "1"
	}
	g := img.Boot(t, Config{
		Name:      t.Name() + "/nvmet",
		MemoryMiB: c.MemoryMiB,
		Net:       net,
		Script:    nvmetScript,
		Env:       env,
		Timeout:   c.Timeout,
	})
	if err := g.WaitFor("NVMET-READY", c.Timeout); err != nil {
		t.Fatal(err)
	}
	return g
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago
// (for HostForward and listeners; another process may take it meanwhile).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
