//go:build linux

package target

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"hyperpath/test/vm"
)

// TestLinuxInitiatorE2E runs the Linux kernel's NVMe/TCP initiator in a
// QEMU guest against this target listening on 127.0.0.1 (the guest reaches
// it as 10.0.2.2): nvme discover, a refused connect from a host NQN that is
// not on the allow-list, then the standard disk check (fio randwrite with
// verify, blkdiscard, write zeroes, mkfs.ext4 and file checksums) with and
// without digests and with two I/O queues.
func TestLinuxInitiatorE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests")
	}
	img := vm.Require(t)
	e := newEnv(t, envOpts{noSubsys: true, blocks: 256 << 11}) // 256 MiB of 512-byte blocks
	s, err := e.tgt.CreateSubsystem(SubsystemConfig{NQN: testNQN, Serial: "HP-E2E-0001", Model: "Hyperpath E2E"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddHost(vm.GuestHostNQN); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNamespace(NamespaceConfig{BdevName: "Malloc0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(e.addr); err != nil {
		t.Fatal(err)
	}
	if err := e.tgt.Discovery().AddListener(e.addr); err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(e.addr.TrSvcID)

	t.Run("discover-and-refuse", func(t *testing.T) {
		script := `modprobe nvme-tcp || exit 1
out=$(nvme discover -t tcp -a 10.0.2.2 -s "$PORT" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "STEP discover FAIL rc=$rc"; exit 1; }
echo "$out" | grep -q "subnqn: *$NQN" || { echo "STEP discover FAIL subsystem not listed"; exit 1; }
echo "STEP discover ok"
if nvme connect -t tcp -a 10.0.2.2 -s "$PORT" -n "$NQN" --hostnqn="$BADHOST" 2>&1; then
	echo "STEP refuse FAIL connect with a host NQN off the allow-list succeeded"; exit 1
fi
echo "STEP refuse ok"
`
		code, out := img.Run(t, vm.Config{Net: &vm.Net{}, Script: script, Timeout: 2 * time.Minute,
			Env: map[string]string{"PORT": strconv.Itoa(port), "NQN": testNQN, "BADHOST": otherNQN}})
		if code != 0 || !strings.Contains(out, "STEP discover ok") || !strings.Contains(out, "STEP refuse ok") {
			t.Fatalf("guest exit %d:\n%s", code, out)
		}
		if !strings.Contains(out, "trsvcid: "+strconv.Itoa(port)) {
			t.Errorf("discovery output lacks the port:\n%s", out)
		}
	})

	for _, c := range []struct {
		name string
		args []string
		fio  []vm.FioJob
	}{
		{"plain", nil, []vm.FioJob{{BlockSize: "4k", QueueDepth: 16}, {BlockSize: "128k", QueueDepth: 4}}},
		{"digests-2q", []string{"--hdr-digest", "--data-digest", "--nr-io-queues=2"}, []vm.FioJob{{BlockSize: "4k", QueueDepth: 8}, {BlockSize: "64k", QueueDepth: 4}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := vm.CheckNVMeTCP(t, img, vm.NVMeTCPCheck{Port: port, NQN: testNQN, ConnectArgs: c.args,
				Disk: vm.DiskCheck{Fio: c.fio, FioMiB: 4, FsMiB: 8, Discard: true}, Timeout: 5 * time.Minute})
			if r != nil {
				for _, st := range r.Steps {
					t.Logf("step %+v", st)
				}
			}
			if err != nil {
				if r != nil {
					t.Logf("guest output:\n%s", r.Output)
				}
				t.Fatal(err)
			}
			for _, want := range []string{"connect", "checksum", "discard", "disconnect"} {
				if _, ok := r.Step(want); !ok {
					t.Errorf("step %s did not run:\n%s", want, r.Output)
				}
			}
			if r.SizeBytes != 256<<20 {
				t.Errorf("guest sees %d bytes", r.SizeBytes)
			}
		})
	}
	waitFor(t, 5*time.Second, "controllers gone after disconnect", func() bool { return len(s.Controllers()) == 0 })
}
