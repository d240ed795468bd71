package passthru_test

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"hyperpath/bdev"
	"hyperpath/bdev/errinject"
	"hyperpath/bdev/internal/bdevtest"
	"hyperpath/bdev/passthru"
	"hyperpath/reactor"
)

// env is a bdevtest.Env with the passthru module and a malloc base "M0"
// of 256 blocks of 512 bytes.
type env struct {
	*bdevtest.Env
	mod *passthru.Module
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{Env: bdevtest.New(t)}
	e.mod = passthru.NewModule(e.Reg)
	e.Reg.RegisterModule(e.mod)
	e.Malloc("M0", 512, 256)
	return e
}

// create makes the passthru bdev name on M0.
func (e *env) create(name string) *passthru.Disk {
	e.T.Helper()
	if err := e.mod.Create(passthru.Options{Name: name, BaseName: "M0"}); err != nil {
		e.T.Fatal(err)
	}
	d, err := e.mod.Lookup(name)
	if err != nil {
		e.T.Fatal(err)
	}
	return d
}

func mallocMem(e *env) []byte {
	b, _ := e.Reg.Get("M0")
	return b.Device().(interface{ Memory() []byte }).Memory()
}

func TestForwarding(t *testing.T) {
	e := newEnv(t)
	d := e.create("P0")
	if in := d.Info(); in.Name != "P0" || in.NumBlocks != 256 || in.BlockSize != 512 || in.ProductName != "passthru" ||
		in.Module != passthru.ModuleName {
		t.Fatalf("info %+v", in)
	}
	if b, _ := e.Reg.Get("M0"); b.Claimed() != passthru.ModuleName || d.Base() != b {
		t.Fatalf("base claimed by %q", b.Claimed())
	}
	_, ch := e.Open("P0")
	w := make([]byte, 1024)
	for i := range w {
		w[i] = byte(i * 3)
	}
	if st := e.Do(ch, bdev.IOWrite, 7, 2, w[:300], w[300:]); st != bdev.StatusSuccess {
		t.Fatal(st)
	}
	if !bytes.Equal(mallocMem(e)[7*512:9*512], w) {
		t.Fatal("write did not reach the base")
	}
	r := make([]byte, 1024)
	if st := e.Do(ch, bdev.IORead, 7, 2, r); st != bdev.StatusSuccess || !bytes.Equal(r, w) {
		t.Fatalf("read: %v", st)
	}
	for _, typ := range []bdev.IOType{bdev.IOFlush, bdev.IOUnmap, bdev.IOWriteZeroes, bdev.IOReset} {
		if st := e.Do(ch, typ, 7, 1); st != bdev.StatusSuccess {
			t.Errorf("%v: %v", typ, st)
		}
	}
	if !bytes.Equal(mallocMem(e)[7*512:8*512], make([]byte, 512)) {
		t.Fatal("unmap/write_zeroes did not reach the base")
	}
	if d.Supports(bdev.IOCompare) != e.mustGet("M0").Device().Supports(bdev.IOCompare) {
		t.Fatal("Supports differs from the base's")
	}
}

// The base's status comes back unchanged: a passthru bdev on an error
// bdev fails exactly the IOs the injection hits.
func TestBaseStatusPropagates(t *testing.T) {
	e := newEnv(t)
	em := errinject.NewModule(e.Reg)
	if err := em.Create("M0", bdev.UUID{}); err != nil {
		t.Fatal(err)
	}
	ee, err := em.Lookup("EE_M0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.mod.Create(passthru.Options{Name: "P0", BaseName: "EE_M0"}); err != nil {
		t.Fatal(err)
	}
	_, ch := e.Open("P0")
	ee.Inject(bdev.IOWrite, errinject.Injection{Type: errinject.ErrorFailure, Num: 1})
	buf := make([]byte, 512)
	for i, want := range []bdev.Status{bdev.StatusFailed, bdev.StatusSuccess} {
		if st := e.Do(ch, bdev.IOWrite, 0, 1, buf); st != want {
			t.Fatalf("write %d: %v, want %v", i, st, want)
		}
	}
}

func (e *env) mustGet(name string) *bdev.Bdev {
	e.T.Helper()
	b, err := e.Reg.Get(name)
	if err != nil {
		e.T.Fatal(err)
	}
	return b
}

// An empty base pool bounces the IO with NoMem; the generic layer retries
// it and it succeeds once base IOs are free again.
func TestBasePoolExhausted(t *testing.T) {
	e := newEnv(t)
	e.create("P0")
	_, ch := e.Open("P0")
	_, base := e.Open("M0") // the same base IOChannel the passthru bdev uses
	var held []*bdev.IO
	for io := base.Alloc(); io != nil; io = base.Alloc() {
		held = append(held, io)
	}
	var st bdev.Status
	buf := make([]byte, 512)
	bdevtest.Submit(ch, &st, bdev.IORead, 0, 1, buf)
	e.Poll(20)
	if st != bdev.StatusPending {
		t.Fatalf("read with the base pool empty: %v, want it parked", st)
	}
	for _, io := range held {
		base.Release(io)
	}
	e.Wait(func() bool { return st != bdev.StatusPending })
	if st != bdev.StatusSuccess {
		t.Fatalf("after the pool refilled: %v", st)
	}
}

func TestZeroAllocsForwarding(t *testing.T) {
	e := newEnv(t)
	e.create("P0")
	_, ch := e.Open("P0")
	iovs := [][]byte{make([]byte, 4096)}
	for _, typ := range []bdev.IOType{bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOReset} {
		done := 0
		cb := func(*bdev.IO) { done++ }
		allocs := testing.AllocsPerRun(1000, func() {
			io := ch.Alloc()
			io.Type, io.OffsetBlocks, io.NumBlocks, io.Iovs = typ, 8, 8, iovs
			ch.Submit(io, cb)
			for ch.Outstanding() > 0 {
				e.R.Poll(0)
			}
		})
		if allocs != 0 || done < 1000 {
			t.Errorf("%v: %.2f allocations per IO, %d done", typ, allocs, done)
		}
	}
}

func TestCreateDeleteExamine(t *testing.T) {
	e := newEnv(t)
	for what, tc := range map[string]struct {
		o    passthru.Options
		want error
	}{
		"no name":    {passthru.Options{BaseName: "M0"}, syscall.EINVAL},
		"no base":    {passthru.Options{Name: "x"}, syscall.EINVAL},
		"name taken": {passthru.Options{Name: "M0", BaseName: "M0"}, syscall.EEXIST},
	} {
		if err := e.mod.Create(tc.o); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", what, err, tc.want)
		}
	}
	e.create("P0")
	if err := e.mod.Create(passthru.Options{Name: "P1", BaseName: "M0"}); !errors.Is(err, bdev.ErrClaimed) {
		t.Errorf("second passthru on a claimed base: %v", err)
	}
	if err := e.Reg.Unregister("M0", nil); !errors.Is(err, bdev.ErrClaimed) {
		t.Fatalf("unregistering the claimed base: %v", err)
	}
	// The failed P1 was forgotten: the name may be used again.
	if err := e.mod.Create(passthru.Options{Name: "P1", BaseName: "Later"}); err != nil {
		t.Fatalf("deferred create: %v", err)
	}
	if err := e.mod.Create(passthru.Options{Name: "P1", BaseName: "Later"}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate deferred create: %v", err)
	}
	if _, err := e.Reg.Get("P1"); err == nil {
		t.Fatal("created without its base")
	}
	e.Malloc("Later", 4096, 8)
	d, err := e.mod.Lookup("P1")
	if err != nil || d.Info().BlockSize != 4096 || d.Base().Name() != "Later" {
		t.Fatalf("not created on examine: %v", err)
	}
	if _, err := e.mod.Lookup("M0"); !errors.Is(err, bdev.ErrNotFound) {
		t.Fatalf("lookup of a malloc bdev: %v", err)
	}
	removed := false
	if err := e.Reg.Unregister("P1", func(error) { removed = true }); err != nil || !removed {
		t.Fatalf("unregister: %v %v", err, removed)
	}
	if e.mustGet("Later").Claimed() != "" {
		t.Fatal("claim kept after delete")
	}
	if err := e.mod.Create(passthru.Options{Name: "P1", BaseName: "Later"}); err != nil {
		t.Fatalf("re-create after delete: %v", err)
	}
}

func TestBaseRemovalUnregisters(t *testing.T) {
	e := newEnv(t)
	d := e.create("P0")
	d.BaseEvent(bdev.EventRemove, nil) // what the registry sends on hot removal
	if _, err := e.Reg.Get("P0"); err == nil {
		t.Fatal("passthru bdev survived its base's removal")
	}
	if e.mustGet("M0").Claimed() != "" {
		t.Fatal("claim kept")
	}
}

// Close runs inside the base channel's completion callback when the last
// IO's child completes; the base channel goes back afterwards, by a
// message, and the base can then be deleted.
func TestCloseInsideCompletion(t *testing.T) {
	e := newEnv(t)
	e.create("P0")
	desc, ch := e.Open("P0")
	var st bdev.Status
	bdevtest.Submit(ch, &st, bdev.IOWrite, 0, 1, make([]byte, 512))
	ch.PutChannel() // closes once the write completes
	e.Wait(func() bool { return st != bdev.StatusPending })
	e.Poll(5)
	desc.Close()
	if err := e.Reg.Unregister("P0", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Reg.Unregister("M0", nil); err != nil {
		t.Fatalf("base after the passthru bdev went: %v", err)
	}
}

// owner is a passthru.Owner that counts, and holds completions until
// told, the way delay does.
type owner struct {
	passthru.Channel
	held    bdev.IOQueue
	aborted int
}

func (o *owner) ChildDone(parent *bdev.IO, st bdev.Status) {
	parent.DriverCtx = uint64(st)
	o.held.Push(parent)
}

func (o *owner) Submit(io *bdev.IO) {
	if io.Type == bdev.IOReset {
		o.Reset(io, abortHeld)
		return
	}
	o.Forward(io)
}

func abortHeld(a any) {
	o := a.(*owner)
	for io := o.held.Pop(); io != nil; io = o.held.Pop() {
		o.aborted++
		io.Complete(bdev.StatusAborted)
	}
}

// holder is a stacked device built on passthru.Device with owner
// channels.
type holder struct {
	passthru.Device
	chans []*owner
}

func (h *holder) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	o := &owner{}
	if err := h.Device.NewChannel(&o.Channel, r, o); err != nil {
		return nil, err
	}
	h.chans = append(h.chans, o)
	return o, nil
}

// An Owner sees each completion with the child's status and Inflight
// counts what is at the base; a reset aborts what the owners hold on
// every reactor (by message on the others) and then reaches the base.
func TestOwnerAndResetAcrossReactors(t *testing.T) {
	var rs []*reactor.Reactor
	for i := 0; i < 2; i++ {
		r, err := reactor.New(i, reactor.Options{Core: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		rs = append(rs, r)
	}
	reg := bdev.NewRegistry(bdev.Options{Reactors: rs})
	e := &bdevtest.Env{T: t, R: rs[0], Reg: reg}
	e.Malloc("M0", 512, 64)
	h := &holder{}
	if err := h.Open(reg, "M0", "holder", bdev.Info{Name: "H0"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Register(h, nil); err != nil {
		t.Fatal(err)
	}
	desc, err := reg.Open("H0", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var chs [2]*bdev.IOChannel
	var st [2]bdev.Status
	buf := make([]byte, 512)
	for i, r := range rs {
		if chs[i], err = desc.GetChannel(r); err != nil {
			t.Fatal(err)
		}
		bdevtest.Submit(chs[i], &st[i], bdev.IORead, uint64(i), 1, buf)
		if h.chans[i].Inflight() != 1 {
			t.Fatalf("reactor %d: %d in flight, want 1", i, h.chans[i].Inflight())
		}
		for j := 0; j < 5; j++ {
			r.Poll(reactor.Now())
		}
		if st[i] != bdev.StatusPending || h.chans[i].held.Len() != 1 || h.chans[i].Inflight() != 0 {
			t.Fatalf("reactor %d: %v, %d held, %d in flight", i, st[i], h.chans[i].held.Len(), h.chans[i].Inflight())
		}
	}
	var rst bdev.Status
	bdevtest.Submit(chs[0], &rst, bdev.IOReset, 0, 0)
	for j := 0; j < 5; j++ {
		rs[0].Poll(reactor.Now())
	}
	if rst != bdev.StatusPending || st[0] != bdev.StatusAborted || st[1] != bdev.StatusPending {
		t.Fatalf("after the reset on reactor 0: reset %v, reads %v", rst, st)
	}
	// The reset's own completion is held by the owner too; release it.
	abortHeld(h.chans[0])
	rs[0].Poll(reactor.Now())
	if rst != bdev.StatusAborted {
		t.Fatalf("reset: %v", rst)
	}
	rs[1].Poll(reactor.Now()) // the abort message
	if st[1] != bdev.StatusAborted || h.chans[1].aborted != 1 {
		t.Fatalf("reactor 1's read after the reset: %v", st[1])
	}
}

func TestConfigs(t *testing.T) {
	var c passthru.Configs[int]
	if !c.Add("a", "B", 1) || !c.Add("b", "B", 2) || !c.Add("c", "C", 3) || c.Add("a", "X", 9) {
		t.Fatal("Add")
	}
	if w := c.Waiting("B"); len(w) != 2 || w[0]+w[1] != 3 {
		t.Fatalf("Waiting(B) = %v", w)
	}
	c.Forget("a")
	if w := c.Waiting("B"); len(w) != 1 || w[0] != 2 {
		t.Fatalf("after Forget: %v", w)
	}
	dup := errors.New("dup")
	boom := errors.New("boom")
	for _, tc := range []struct {
		key     string
		attach  error
		want    error
		waiting int
	}{
		{"d", nil, nil, 1},
		{"d", nil, dup, 1},
		{"e", bdev.ErrNotFound, nil, 2},
		{"f", boom, boom, 2},
	} {
		err := c.Create(tc.key, "D", 0, dup, func(int) error { return tc.attach })
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("Create(%s) with attach %v: %v, want %v", tc.key, tc.attach, err, tc.want)
		}
		if n := len(c.Waiting("D")); n != tc.waiting {
			t.Errorf("Create(%s): %d recorded, want %d", tc.key, n, tc.waiting)
		}
	}
}
