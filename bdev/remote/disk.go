package remote

import (
	"context"
	"fmt"
	"math"
	"time"

	"hyperpath/bdev"
	"hyperpath/nvmf/initiator"
	"hyperpath/nvmf/proto"
	"hyperpath/reactor"
)

// Disk is the bdev of one namespace of an attached controller.
type Disk struct {
	ctrl *Controller
	ns   initiator.Namespace
	info bdev.Info
	oncs uint16
	// writesConfig: this disk's ConfigEntry carries the controller's
	// bdev_nvme_attach_controller (the first namespace of each controller).
	writesConfig bool
}

var (
	_ bdev.Device         = (*Disk)(nil)
	_ bdev.ConfigWriter   = (*Disk)(nil)
	_ bdev.DriverSpecific = (*Disk)(nil)
)

// maxWZBlocks is the most blocks one Write Zeroes carries (NLB is 16 bits,
// 0's based).
const maxWZBlocks = proto.MaxNLB

func newDisk(ctrl *Controller, ns initiator.Namespace, id *proto.IdentifyController, maxBytes uint64) *Disk {
	d := &Disk{ctrl: ctrl, ns: ns, oncs: id.ONCS}
	mtb := uint64(proto.MaxNLB)
	if maxBytes > 0 && maxBytes/uint64(ns.BlockSize) < mtb {
		mtb = max(maxBytes/uint64(ns.BlockSize), 1)
	}
	u, ok := ns.UUID()
	uuid := bdev.UUID(u)
	if !ok || uuid.IsZero() {
		uuid = namespaceUUID(ctrl.cfg.SubNQN, id.SN, ns.ID)
	}
	d.info = bdev.Info{
		Name:              fmt.Sprintf("%sn%d", ctrl.cfg.Name, ns.ID),
		ProductName:       ProductName,
		UUID:              uuid,
		BlockSize:         ns.BlockSize,
		NumBlocks:         ns.NumBlocks,
		MaxTransferBlocks: mtb,
		WriteCache:        id.VWC&proto.VWCPresent != 0,
		Module:            ModuleName,
	}
	return d
}

// Info implements bdev.Device.
func (d *Disk) Info() *bdev.Info { return &d.info }

// Namespace returns the namespace the disk is built on.
func (d *Disk) Namespace() initiator.Namespace { return d.ns }

// Controller returns the disk's controller.
func (d *Disk) Controller() *Controller { return d.ctrl }

// Supports implements bdev.Device: what the controller's ONCS allows.
func (d *Disk) Supports(t bdev.IOType) bool {
	switch t {
	case bdev.IORead, bdev.IOWrite, bdev.IOFlush, bdev.IOReset:
		return true
	case bdev.IOUnmap:
		return d.oncs&proto.ONCSDatasetManagement != 0
	case bdev.IOWriteZeroes:
		return d.oncs&proto.ONCSWriteZeroes != 0
	case bdev.IOCompare:
		return d.oncs&proto.ONCSCompare != 0
	}
	return false
}

// NewChannel implements bdev.Device: the channel submits to the
// controller's I/O queue pair on r.
func (d *Disk) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	c := d.ctrl.c
	if c == nil {
		return nil, fmt.Errorf("bdev %s: controller not connected", d.info.Name)
	}
	q := c.IOQPair(r)
	if q == nil {
		return nil, fmt.Errorf("bdev %s: reactor %s: %w (%d I/O queues)", d.info.Name, r.Name(), initiator.ErrNoQueue, len(c.IOQPairs()))
	}
	ch := &channel{d: d, q: q, r: r, bs: uint64(d.info.BlockSize), nsid: d.ns.ID, maxBlocks: d.info.MaxTransferBlocks}
	ch.done = ch.complete
	ch.resetDone = ch.completeReset
	return ch, nil
}

// Destroy implements bdev.Device.
func (d *Disk) Destroy() error {
	d.ctrl.diskDestroyed()
	return nil
}

// ConfigEntry implements bdev.ConfigWriter: the first namespace's bdev
// writes its controller's bdev_nvme_attach_controller, in SPDK's shape;
// the others write nothing.
func (d *Disk) ConfigEntry() (string, any) {
	if !d.writesConfig {
		return "", nil
	}
	return "bdev_nvme_attach_controller", d.ctrl.configParams()
}

func (c *Controller) configParams() bdev.Ordered {
	cfg := &c.cfg
	p := bdev.Obj("name", cfg.Name, "trtype", "TCP", "adrfam", cfg.AdrFam.String(), "traddr", cfg.TRAddr,
		"trsvcid", cfg.TRSvcID, "subnqn", cfg.SubNQN,
		"prchk_reftag", cfg.PrchkReftag, "prchk_guard", cfg.PrchkGuard,
		"ctrlr_loss_timeout_sec", cfg.CtrlrLossTimeoutSec, "reconnect_delay_sec", cfg.ReconnectDelaySec,
		"fast_io_fail_timeout_sec", cfg.FastIOFailTimeoutSec,
		"hostnqn", cfg.HostNQN, "hdgst", cfg.HeaderDigest, "ddgst", cfg.DataDigest)
	if cfg.HostAddr != "" {
		p = append(p, bdev.KV{Key: "hostaddr", Value: cfg.HostAddr})
	}
	if cfg.HostSvcID != "" {
		p = append(p, bdev.KV{Key: "hostsvcid", Value: cfg.HostSvcID})
	}
	if cfg.Multipath == "multipath" {
		p = append(p, bdev.KV{Key: "multipath", Value: "multipath"})
	}
	if cfg.NumIOQueues != 0 {
		p = append(p, bdev.KV{Key: "num_io_queues", Value: cfg.NumIOQueues})
	}
	if cfg.DisableSQFlowControl {
		p = append(p, bdev.KV{Key: "disable_sq_flow_control", Value: true})
	}
	return p
}

// trid is the transport ID object of SPDK's JSON (nvme_bdev_dump_trid_json).
func (c *Controller) trid() bdev.Ordered {
	return bdev.Obj("trtype", "TCP", "adrfam", c.cfg.AdrFam.String(), "traddr", c.cfg.TRAddr,
		"trsvcid", c.cfg.TRSvcID, "subnqn", c.cfg.SubNQN)
}

// DriverSpecific implements bdev.DriverSpecific: the "nvme" object of
// bdev_get_bdevs.
func (d *Disk) DriverSpecific() any {
	c := d.ctrl.c
	if c == nil {
		return bdev.Obj()
	}
	id := c.IdentifyController()
	vs := c.VS()
	return bdev.Obj("nvme", []bdev.Ordered{bdev.Obj(
		"trid", d.ctrl.trid(),
		"ctrlr_data", bdev.Obj("cntlid", c.CNTLID(), "vendor_id", fmt.Sprintf("0x%04x", id.VID),
			"model_number", id.MN, "serial_number", id.SN, "firmware_revision", id.FR, "subnqn", id.SubNQN,
			"oacs", bdev.Obj("security", id.OACS&1 != 0, "format", id.OACS&2 != 0, "firmware", id.OACS&4 != 0, "ns_manage", id.OACS&8 != 0),
			"multi_ctrlr", id.CMIC&proto.CMICMultiController != 0, "ana_reporting", id.CMIC&proto.CMICANA != 0),
		"vs", bdev.Obj("nvme_version", fmt.Sprintf("%d.%d", vs.Major(), vs.Minor())),
		"ns_data", bdev.Obj("id", d.ns.ID, "can_share", d.ns.Identify.NMIC&proto.NMICShared != 0),
	)}, "mp_policy", "active_passive")
}

// channel is a Disk's per-reactor state. It belongs to its reactor.
type channel struct {
	d         *Disk
	q         *initiator.QPair
	r         *reactor.Reactor
	bs        uint64
	nsid      uint32
	maxBlocks uint64
	done      initiator.DoneFunc
	resetDone func(any)
	cmd       initiator.Cmd
	ranges    [initiator.MaxRanges]proto.DSMRange
}

var _ bdev.Channel = (*channel)(nil)

// Submit implements bdev.Channel.
func (ch *channel) Submit(io *bdev.IO) {
	io.DriverCtx = 0
	switch io.Type {
	case bdev.IOReset:
		ch.reset(io)
	default:
		if st, ok := ch.next(io); !ok {
			io.Complete(st)
		}
	}
}

// next submits the next command of io (blocks io.DriverCtx onward). It
// returns false with the status to complete io with when it could not.
func (ch *channel) next(io *bdev.IO) (bdev.Status, bool) {
	done := io.DriverCtx
	left := io.NumBlocks - done
	c := &ch.cmd
	*c = initiator.Cmd{NSID: ch.nsid, SLBA: io.OffsetBlocks + done, Done: ch.done, Ctx: io}
	var n uint64
	switch io.Type {
	case bdev.IORead, bdev.IOWrite, bdev.IOCompare:
		n = min(left, ch.maxBlocks)
		c.Op = initiator.OpRead
		if io.Type == bdev.IOWrite {
			c.Op = initiator.OpWrite
		} else if io.Type == bdev.IOCompare {
			c.Op = initiator.OpCompare
		}
		c.NLB = uint32(n)
		c.Iovs, c.IovOffset, c.LenBytes = io.Iovs, done*ch.bs, uint32(n*ch.bs)
	case bdev.IOFlush:
		c.Op = initiator.OpFlush
		n = left
	case bdev.IOWriteZeroes:
		n = min(left, maxWZBlocks)
		c.Op, c.NLB = initiator.OpWriteZeroes, uint32(n)
	case bdev.IOUnmap:
		k := 0
		slba := io.OffsetBlocks + done
		for k < len(ch.ranges) && n < left {
			l := min(left-n, math.MaxUint32)
			ch.ranges[k] = proto.DSMRange{SLBA: slba + n, NLB: uint32(l)}
			n += l
			k++
		}
		c.Op, c.Ranges = initiator.OpDeallocate, ch.ranges[:k]
	default:
		return bdev.StatusInvalid, false
	}
	err := ch.q.Submit(c)
	c.Iovs, c.Ranges, c.Ctx = nil, nil, nil
	switch err {
	case nil:
		io.DriverCtx = done + n
		return bdev.StatusPending, true
	case initiator.ErrQueueFull:
		return bdev.StatusNoMem, false
	case initiator.ErrBadCommand:
		return bdev.StatusInvalid, false
	case initiator.ErrClosed:
		return bdev.StatusAborted, false
	}
	return bdev.StatusFailed, false
}

// complete is the DoneFunc of every command of the channel.
func (ch *channel) complete(ctx any, cpl *proto.CQE) {
	io := ctx.(*bdev.IO)
	st := nvmeStatus(cpl.Status)
	if st == bdev.StatusSuccess && io.Type != bdev.IOFlush && io.DriverCtx < io.NumBlocks {
		if st, ok := ch.next(io); !ok {
			io.Complete(st)
		}
		return
	}
	io.Complete(st)
}

// nvmeStatus maps an NVMe completion status to a bdev status.
func nvmeStatus(s proto.Status) bdev.Status {
	switch s.Code() {
	case proto.StatusSuccess:
		return bdev.StatusSuccess
	case proto.StatusCompareFailure:
		return bdev.StatusMiscompare
	case proto.StatusAbortedByHost, proto.StatusAbortedSQDeletion, proto.StatusAbortRequested:
		return bdev.StatusAborted
	}
	return bdev.StatusFailed
}

// reset resets the controller on a control goroutine and completes io on
// this reactor when the first reconnect attempt is over.
func (ch *channel) reset(io *bdev.IO) {
	c := ch.d.ctrl.c
	go func() {
		err := c.Reset(context.Background())
		if err != nil {
			io.DriverCtx = 1
		}
		for reactor.Send(ch.r, ch.resetDone, io) != nil {
			time.Sleep(time.Millisecond) // the ring is full: retry
		}
	}()
}

func (ch *channel) completeReset(arg any) {
	io := arg.(*bdev.IO)
	if io.DriverCtx != 0 {
		io.Complete(bdev.StatusFailed)
		return
	}
	io.Complete(bdev.StatusSuccess)
}

// Close implements bdev.Channel. The queue pair belongs to the controller
// and stays.
func (ch *channel) Close() {}
