package hugemem

import (
	"os"
	"strings"
	"testing"
)

func TestAllocSmallPages(t *testing.T) {
	r, err := Alloc("t", 10000, SmallPages)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	if len(r.Mem) != 12288 || r.Huge {
		t.Fatalf("len %d huge %v", len(r.Mem), r.Huge)
	}
	r.Mem[12287] = 7
}

func TestAllocPreferHugeFallsBack(t *testing.T) {
	r, err := Alloc("t", 1<<20, PreferHuge)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	nr, _ := os.ReadFile("/proc/sys/vm/nr_hugepages")
	if strings.TrimSpace(string(nr)) == "0" && r.Huge {
		t.Fatal("got hugepages with vm.nr_hugepages=0")
	}
	r.Mem[0] = 1
}

func TestRequireHugeFailsClearly(t *testing.T) {
	nr, _ := os.ReadFile("/proc/sys/vm/nr_hugepages")
	if strings.TrimSpace(string(nr)) != "0" {
		t.Skip("hugepages are reserved on this machine; the failure path is not reachable")
	}
	_, err := Alloc("t", 1<<20, RequireHuge)
	if err == nil || !strings.Contains(err.Error(), "nr_hugepages") {
		t.Fatalf("err = %v", err)
	}
}
