package virtq

import (
	"encoding/binary"
	"testing"
)

// Guest layout of the test fixture: two adjacent regions of 1 MiB (a
// buffer crossing 0x200000 is split in two segments), a hole, and a small
// third region. Rings live at the start of region 0.
const (
	reg0     = 0x100000
	reg1     = 0x200000
	reg2     = 0x400000
	regSize  = 0x100000
	reg2Size = 0x1000
	userBase = 0x7f0000000000 // user address of guest address 0
	dataBase = reg0 + 0x40000 // where tests put buffers
)

type fixture struct {
	t    *testing.T
	mem  *GuestMemory
	host [3][]byte
	cfg  Config
	lay  Layout
}

// newFixture builds memory and a ring configuration of size n at reg0.
func newFixture(t testing.TB, n uint16, eventIdx, indirect bool) *fixture {
	f := &fixture{}
	f.host[0] = make([]byte, regSize)
	f.host[1] = make([]byte, regSize)
	f.host[2] = make([]byte, reg2Size)
	var err error
	f.mem, err = NewGuestMemory(
		NewRegion(reg1, userBase+reg1, f.host[1]), // out of order on purpose
		NewRegion(reg0, userBase+reg0, f.host[0]),
		NewRegion(reg2, userBase+reg2, f.host[2]),
	)
	if err != nil {
		t.Fatal(err)
	}
	f.lay, err = NewLayout(n, 4)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = Config{Size: n, Desc: reg0 + f.lay.DescOff, Avail: reg0 + f.lay.AvailOff, Used: reg0 + f.lay.UsedOff,
		Addrs: GuestAddrs, EventIdx: eventIdx, Indirect: indirect}
	return f
}

// userCfg returns the ring configuration in user addresses, as vhost-user
// sends it.
func (f *fixture) userCfg() Config {
	c := f.cfg
	c.Addrs = UserAddrs
	c.Desc += userBase
	c.Avail += userBase
	c.Used += userBase
	return c
}

// at returns the host bytes at guest address gpa (test code only).
func (f *fixture) at(gpa uint64, n uint64) []byte {
	b, err := f.mem.Slice(gpa, n)
	if err != nil {
		panic(err)
	}
	return b
}

// setDesc writes descriptor i of the table at gpa tbl.
func (f *fixture) setDesc(tbl uint64, i int, addr uint64, length uint32, flags, next uint16) {
	d := f.at(tbl+16*uint64(i), 16)
	binary.LittleEndian.PutUint64(d[0:], addr)
	binary.LittleEndian.PutUint32(d[8:], length)
	binary.LittleEndian.PutUint16(d[12:], flags)
	binary.LittleEndian.PutUint16(d[14:], next)
}

// availIdx reads avail.idx as the driver wrote it.
func (f *fixture) availIdx() uint16 {
	return binary.LittleEndian.Uint16(f.at(f.cfg.Avail+2, 2))
}

// offer appends heads to the available ring and publishes them, playing
// the driver.
func (f *fixture) offer(heads ...uint16) {
	idx := f.availIdx()
	for _, h := range heads {
		slot := uint64(idx & (f.cfg.Size - 1))
		binary.LittleEndian.PutUint16(f.at(f.cfg.Avail+4+2*slot, 2), h)
		idx++
	}
	binary.LittleEndian.PutUint16(f.at(f.cfg.Avail+2, 2), idx)
}

// usedIdx reads used.idx as the device wrote it.
func (f *fixture) usedIdx() uint16 { return binary.LittleEndian.Uint16(f.at(f.cfg.Used+2, 2)) }

// usedElem reads used ring slot i.
func (f *fixture) usedElem(i uint16) (id, length uint32) {
	b := f.at(f.cfg.Used+4+8*uint64(i&(f.cfg.Size-1)), 8)
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
}

func (f *fixture) queue(t testing.TB, base uint16) *Queue {
	q, err := NewQueue(f.mem, f.cfg, base)
	if err != nil {
		t.Fatal(err)
	}
	return q
}
