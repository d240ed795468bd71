package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The 2 MiB pool. When 2 MiB is the default huge page size (x86-64),
// nr_hugepages here is the same value as /proc/sys/vm/nr_hugepages.
const hugeDir = "/sys/kernel/mm/hugepages/hugepages-2048kB"

// hugeMu serialises pool changes within this process; hugeLockPath does so
// across processes (other test binaries may grow the pool at the same time).
var hugeMu sync.Mutex

func hugeLockPath() string { return filepath.Join(os.TempDir(), "hyperpath-vm-hugepages.lock") }

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// reserveHugepages makes sure at least pages 2 MiB pages are free, growing
// the pool if needed. release gives back exactly what was added: with no
// other user of the pool that restores nr_hugepages to its old value, and
// it never takes pages that another process added in the meantime.
func reserveHugepages(pages int) (release func(), err error) {
	hugeMu.Lock()
	defer hugeMu.Unlock()
	unlock, err := lockFile(hugeLockPath())
	if err != nil {
		return nil, err
	}
	defer unlock()
	nrPath, freePath := filepath.Join(hugeDir, "nr_hugepages"), filepath.Join(hugeDir, "free_hugepages")
	nr, err := readInt(nrPath)
	if err != nil {
		return nil, fmt.Errorf("no 2 MiB huge page pool: %w", err)
	}
	free, err := readInt(freePath)
	if err != nil {
		return nil, err
	}
	if free >= pages {
		return func() {}, nil
	}
	want := nr + pages - free
	if err := os.WriteFile(nrPath, []byte(strconv.Itoa(want)), 0); err != nil {
		return nil, fmt.Errorf("cannot raise %s from %d to %d: %w", nrPath, nr, want, err)
	}
	got, _ := readInt(nrPath)
	added := got - nr
	give := func() {
		if added <= 0 {
			return
		}
		cur, err := readInt(nrPath)
		if err != nil {
			return
		}
		os.WriteFile(nrPath, []byte(strconv.Itoa(max(cur-added, 0))), 0)
	}
	if free, _ = readInt(freePath); free < pages {
		give()
		return nil, fmt.Errorf("asked for %d free 2 MiB pages (nr_hugepages %d -> %d) but only %d are free", pages, nr, want, free)
	}
	return func() {
		hugeMu.Lock()
		defer hugeMu.Unlock()
		if unlock, err := lockFile(hugeLockPath()); err == nil {
			defer unlock()
		}
		give()
	}, nil
}

// setupHugetlbfs reserves enough 2 MiB pages for memMiB of guest RAM and
// mounts a private hugetlbfs for QEMU's memory-backend-file. undo unmounts
// it, removes the directory and gives the pages back.
func setupHugetlbfs(memMiB int) (dir string, undo func(), err error) {
	release, err := reserveHugepages((memMiB + 1) / 2)
	if err != nil {
		return "", nil, err
	}
	dir, err = os.MkdirTemp("", "hpvm-huge")
	if err != nil {
		release()
		return "", nil, err
	}
	if err := syscall.Mount("hugetlbfs", dir, "hugetlbfs", syscall.MS_NOSUID|syscall.MS_NODEV, "pagesize=2M,mode=0700"); err != nil {
		os.Remove(dir)
		release()
		return "", nil, fmt.Errorf("mount -t hugetlbfs %s: %w", dir, err)
	}
	return dir, func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		os.Remove(dir)
		release()
	}, nil
}
