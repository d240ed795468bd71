package vhost

import (
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/errinject"
	"hyperpath/test/vm"
)

// TestGuestDetectsCorruptBackend shows the guest disk check can fail: the
// controller exports an error-injection bdev that corrupts one byte of
// every write on its way to the RAM disk, and the guest's fio verify and
// file checksums must notice. A harness that passed here would be checking
// nothing.
func TestGuestDetectsCorruptBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a guest (-short)")
	}
	img := vm.Require(t)
	// fio verify first; then, with no fio jobs, the ext4 + sha256 steps.
	for _, c := range []struct {
		name string
		fio  []vm.FioJob
	}{{"fio", []vm.FioJob{{BlockSize: "4k", QueueDepth: 4}}}, {"checksum", []vm.FioJob{}}} {
		t.Run(c.name, func(t *testing.T) { corruptBackendCheck(t, img, c.fio) })
	}
}

func corruptBackendCheck(t *testing.T, img *vm.Image, fio []vm.FioJob) {
	e := newTEnv(t, tenvOpts{reactors: 1})
	e.malloc("Malloc0", 512, 64<<20/512)
	ee, err := errinject.New(e.reg, errinject.Options{BaseName: "Malloc0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Register(ee); err != nil {
		t.Fatal(err)
	}
	if err := ee.Inject(bdev.IOWrite, errinject.Injection{
		Type: errinject.ErrorCorruptData, Num: 1 << 30, CorruptOffset: 7, CorruptValue: 0x5a,
	}); err != nil {
		t.Fatal(err)
	}
	ctrl := e.ctrl(BlkControllerOptions{Name: "vhost.bad", Bdev: ee.Info().Name})
	r, err := vm.CheckVhostBlk(t, img, vm.VhostBlkCheck{
		Socket: ctrl.Socket(), NumQueues: 1, MemBackend: vm.Memfd,
		Disk: vm.DiskCheck{Fio: fio, FioMiB: 2, FsMiB: 2},
	})
	logDisk(t, r)
	if err == nil {
		t.Fatal("the guest disk check passed on a back end that corrupts every write")
	}
	if r == nil {
		t.Fatalf("no guest result: %v", err)
	}
	for _, st := range r.Steps {
		// write-zeroes carries no data, so the corruption cannot touch it.
		if st.Name != "device" && st.Name != "zeroout" && st.OK {
			t.Errorf("step %s passed on corrupted writes: %s", st.Name, st.Detail)
		}
	}
	want := "checksum"
	if len(fio) > 0 {
		want = "fio-4k-qd4"
	}
	if st, ok := r.Step(want); !ok || st.OK {
		t.Errorf("step %s: ran %v ok %v; it must run and fail", want, ok, st.OK)
	}
	t.Logf("guest check failed as it must: %v", err)
}
