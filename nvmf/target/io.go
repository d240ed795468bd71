package target

import (
	"hyperpath/bdev"
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
)

// execIO runs an NVM command set I/O command on the queue's reactor. It
// allocates nothing: the namespace table is an atomic snapshot, the bdev
// IO comes from the channel's pool, and the completion is a package-level
// function that finds the request in io.Ctx.
func (t *Target) execIO(qs *qpair, req *nvmf.Request) {
	if !qs.ctrl.ready() {
		complete(req, proto.StatusCommandSequenceError.WithDNR())
		return
	}
	sqe := &req.SQE
	ns := qs.ctrl.s.ns(sqe.NSID)
	if ns == nil {
		complete(req, proto.StatusInvalidNamespace.WithDNR())
		return
	}
	switch sqe.Opcode {
	case proto.IORead, proto.IOWrite, proto.IOCompare:
		rw := sqe.RW()
		if !ns.inRange(rw.SLBA, uint64(rw.NLB)) {
			complete(req, proto.StatusLBAOutOfRange.WithDNR())
			return
		}
		n := uint64(rw.NLB) << ns.shift
		if n > uint64(len(req.Data)) {
			complete(req, proto.StatusDataSGLLengthInvalid.WithDNR())
			return
		}
		typ := bdev.IORead
		switch sqe.Opcode {
		case proto.IOWrite:
			typ = bdev.IOWrite
		case proto.IOCompare:
			if !ns.canCompare {
				complete(req, proto.StatusInvalidOpcode.WithDNR())
				return
			}
			typ = bdev.IOCompare
		}
		req.Iov[0] = req.Data[:n]
		req.Length = uint32(n)
		t.submit(qs, ns, req, typ, rw.SLBA, uint64(rw.NLB), true)
	case proto.IOFlush:
		if !ns.canFlush {
			complete(req, proto.StatusSuccess)
			return
		}
		t.submit(qs, ns, req, bdev.IOFlush, 0, ns.blocks, false)
	case proto.IOWriteZeroes:
		rw := sqe.RW()
		if !ns.inRange(rw.SLBA, uint64(rw.NLB)) {
			complete(req, proto.StatusLBAOutOfRange.WithDNR())
			return
		}
		if !ns.canWZ {
			complete(req, proto.StatusInvalidOpcode.WithDNR())
			return
		}
		t.submit(qs, ns, req, bdev.IOWriteZeroes, rw.SLBA, uint64(rw.NLB), false)
	case proto.IODatasetManagement:
		t.dsm(qs, ns, req)
	default:
		complete(req, proto.StatusInvalidOpcode.WithDNR())
	}
}

func (ns *Namespace) inRange(slba, nlb uint64) bool {
	end := slba + nlb
	return end >= slba && end <= ns.blocks
}

// dsm runs Dataset Management: with the Deallocate attribute each range
// becomes an unmap, one after another (req.Aux is the next range);
// without it the command is advisory and succeeds.
func (t *Target) dsm(qs *qpair, ns *Namespace, req *nvmf.Request) {
	d := req.SQE.DSM()
	if d.Attrs&proto.DSMAttrDeallocate == 0 {
		complete(req, proto.StatusSuccess)
		return
	}
	if len(req.Data) < d.Ranges*proto.DSMRangeSize {
		complete(req, proto.StatusDataSGLLengthInvalid.WithDNR())
		return
	}
	if req.Aux == 0 {
		// First pass: check every range before changing anything.
		for i := 0; i < d.Ranges; i++ {
			var r proto.DSMRange
			if r.Decode(req.Data[i*proto.DSMRangeSize:]) != nil || !ns.inRange(r.SLBA, uint64(r.NLB)) {
				complete(req, proto.StatusLBAOutOfRange.WithDNR())
				return
			}
		}
	}
	if !ns.canUnmap {
		complete(req, proto.StatusSuccess)
		return
	}
	for req.Aux < d.Ranges {
		var r proto.DSMRange
		r.Decode(req.Data[req.Aux*proto.DSMRangeSize:])
		if r.NLB == 0 {
			req.Aux++
			continue
		}
		req.Aux2 = 1 // a range is in flight
		t.submit(qs, ns, req, bdev.IOUnmap, r.SLBA, uint64(r.NLB), false)
		return
	}
	complete(req, proto.StatusSuccess)
}

// submit sends one bdev IO for req. When the channel's pool is empty the
// request waits on the reactor's list and execIO runs it again after a
// completion.
func (t *Target) submit(qs *qpair, ns *Namespace, req *nvmf.Request, typ bdev.IOType, off, nblk uint64, data bool) {
	r := qs.qp.Reactor()
	if ns.removed.Load() {
		complete(req, proto.StatusInvalidNamespace.WithDNR())
		return
	}
	ch, err := ns.channel(r)
	if err != nil {
		complete(req, proto.StatusInvalidNamespace.WithDNR())
		return
	}
	io := ch.Alloc()
	if io == nil {
		rs := t.reactorState(r)
		req.Next = nil
		if rs.waitTail == nil {
			rs.waitHead = req
		} else {
			rs.waitTail.Next = req
		}
		rs.waitTail = req
		return
	}
	io.Type, io.OffsetBlocks, io.NumBlocks = typ, off, nblk
	if data {
		io.Iovs = req.Iov[:]
	}
	io.Ctx = req
	ch.Submit(io, ioDone)
}

// bdevStatus maps a bdev completion to an NVMe status (as SPDK's
// nvmf_bdev_ctrlr_complete_cmd does).
func bdevStatus(s bdev.Status) proto.Status {
	switch s {
	case bdev.StatusSuccess:
		return proto.StatusSuccess
	case bdev.StatusMiscompare:
		return proto.StatusCompareFailure
	case bdev.StatusAborted:
		return proto.StatusAbortRequested
	case bdev.StatusInvalid:
		return proto.StatusInvalidField.WithDNR()
	}
	return proto.StatusInternalError
}

// ioDone completes the request of a finished bdev IO, then retries what
// waits on this reactor.
func ioDone(io *bdev.IO) {
	req := io.Ctx.(*nvmf.Request)
	st := io.Status
	qp := req.QPair // fixed for the slot's life: safe to keep past Complete
	qs, _ := qp.Ctx().(*qpair)
	if req.Aux2 != 0 && req.SQE.Opcode == proto.IODatasetManagement && st == bdev.StatusSuccess && qs != nil {
		// Next Dataset Management range.
		req.Aux++
		req.Aux2 = 0
		ns := qs.ctrl.s.ns(req.SQE.NSID)
		if ns == nil {
			complete(req, proto.StatusInvalidNamespace.WithDNR())
		} else {
			qs.t.dsm(qs, ns, req)
		}
	} else {
		complete(req, bdevStatus(st))
	}
	if qs != nil {
		qs.t.retryWaiting(qp)
	}
}

// retryWaiting runs again the commands that found the IO pool empty on
// this reactor.
func (t *Target) retryWaiting(qp nvmf.QPair) {
	rs := t.reactorState(qp.Reactor())
	head := rs.waitHead
	if head == nil {
		return
	}
	rs.waitHead, rs.waitTail = nil, nil
	for r := head; r != nil; {
		nx := r.Next
		r.Next = nil
		if qs, _ := r.QPair.Ctx().(*qpair); qs != nil {
			t.execIO(qs, r)
		} else {
			complete(r, proto.StatusAbortedSQDeletion)
		}
		r = nx
	}
}
