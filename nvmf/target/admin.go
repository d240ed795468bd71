package target

import (
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
)

// adminCmd runs an admin command on the admin reactor (NVMe Base 2.3 §5).
func (c *Controller) adminCmd(req *nvmf.Request) {
	if !c.ready() {
		complete(req, proto.StatusCommandSequenceError.WithDNR())
		return
	}
	op := req.SQE.Opcode
	if c.disc {
		// A discovery controller implements a subset (NVMe Base 2.3
		// §3.1.3.3, Figure 34).
		switch op {
		case proto.AdminIdentify, proto.AdminGetLogPage, proto.AdminGetFeatures, proto.AdminSetFeatures,
			proto.AdminKeepAlive, proto.AdminAsyncEventRequest:
		default:
			complete(req, proto.StatusInvalidOpcode.WithDNR())
			return
		}
	}
	switch op {
	case proto.AdminIdentify:
		c.identify(req)
	case proto.AdminGetLogPage:
		c.getLogPage(req)
	case proto.AdminGetFeatures:
		c.getFeatures(req)
	case proto.AdminSetFeatures:
		c.setFeatures(req)
	case proto.AdminKeepAlive:
		c.lastKA = c.r.IterNow()
		complete(req, proto.StatusSuccess)
	case proto.AdminAsyncEventRequest:
		c.asyncEventRequest(req)
	case proto.AdminAbort:
		c.abort(req)
	default:
		complete(req, proto.StatusInvalidOpcode.WithDNR())
	}
}

// reply copies src into req.Data and completes with success.
func reply(req *nvmf.Request, src []byte) {
	n := copy(req.Data, src)
	req.Length = uint32(n)
	complete(req, proto.StatusSuccess)
}

// --- Identify (NVMe Base 2.3 §5.2.13) ---

func (c *Controller) identify(req *nvmf.Request) {
	id := req.SQE.Identify()
	b := c.scratch[:]
	clear(b)
	switch id.CNS {
	case proto.CNSController:
		ic := c.identifyController()
		if err := ic.Encode(b); err != nil {
			complete(req, proto.StatusInternalError)
			return
		}
	case proto.CNSNamespace:
		if c.disc {
			complete(req, proto.StatusInvalidField.WithDNR())
			return
		}
		if id.NSID == 0 || id.NSID == proto.NSIDBroadcast || id.NSID > c.s.nn() {
			complete(req, proto.StatusInvalidNamespace.WithDNR())
			return
		}
		if ns := c.s.ns(id.NSID); ns != nil {
			in := ns.identify()
			if err := in.Encode(b); err != nil {
				complete(req, proto.StatusInternalError)
				return
			}
		} // an inactive NSID reads as zeroes
	case proto.CNSActiveNSList:
		if c.disc {
			complete(req, proto.StatusInvalidField.WithDNR())
			return
		}
		if id.NSID >= proto.NSIDBroadcast-1 {
			complete(req, proto.StatusInvalidNamespace.WithDNR())
			return
		}
		var ids []uint32
		tb := c.s.table.Load()
		for _, ns := range tb.byID {
			if ns != nil && ns.nsid > id.NSID && len(ids) < 1024 {
				ids = append(ids, ns.nsid)
			}
		}
		if err := proto.EncodeNSList(b, ids); err != nil {
			complete(req, proto.StatusInternalError)
			return
		}
	case proto.CNSNSDescriptorList:
		if c.disc {
			complete(req, proto.StatusInvalidField.WithDNR())
			return
		}
		ns := c.s.ns(id.NSID)
		if ns == nil {
			complete(req, proto.StatusInvalidNamespace.WithDNR())
			return
		}
		d := proto.NSDescriptors{EUI64: ns.eui64, NGUID: ns.nguid, UUID: ns.uuid,
			HasEUI64: ns.hasEUI64, HasNGUID: ns.hasNGUID, HasUUID: !ns.uuid.IsZero()}
		if err := d.Encode(b); err != nil {
			complete(req, proto.StatusInternalError)
			return
		}
	default:
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	reply(req, b)
}

// identifyController builds Identify Controller for a fabrics controller
// (NVMe Base 2.3 §5.2.13.2.1; NVMe-oF fields at 1792).
func (c *Controller) identifyController() proto.IdentifyController {
	s := c.s
	c.t.mu.Lock()
	cfg := s.cfg
	c.t.mu.Unlock()
	mdts := uint8(0)
	for (4096 << mdts) < int(c.opts.MaxIOSize) {
		mdts++
	}
	ic := proto.IdentifyController{
		VID: 0x4e58, SSVID: 0x4e58, // as SPDK's "NX"
		SN: cfg.Serial, MN: cfg.Model, FR: firmwareRevision,
		RAB:    6,
		CMIC:   proto.CMICMultiPort | proto.CMICMultiController,
		MDTS:   mdts,
		CNTLID: c.cntlid,
		VER:    proto.MakeVS(1, 3, 0),
		CTRATT: proto.CTRATTHostID128,
		ACL:    3,
		AERL:   aerl,
		LPA:    proto.LPAExtendedData,
		ELPE:   0,
		KAS:    c.opts.KAS,
		SQES:   0x66,
		CQES:   0x44,
		MAXCMD: c.opts.MaxQueueDepth,
		SGLS:   proto.SGLSSupported | proto.SGLSAddressAsOffset | proto.SGLSTransportDataBlock,
		SubNQN: s.nqn,
		IOCCSZ: (proto.SQESize + c.opts.InCapsuleDataSize) / 16,
		IORCSZ: proto.CQESize / 16,
		MSDBD:  1,
		OFCS:   proto.OFCSDisconnect,
	}
	if c.disc {
		ic.SN, ic.MN = cfg.Serial, "SPDK bdev Controller"
		ic.CNTRLTYPE = proto.CtrlTypeDiscovery
		ic.OAES = proto.OAESDiscoveryLogChange
		ic.CMIC = 0
		ic.MAXCMD = uint16(c.opts.MaxAQDepth)
		ic.IOCCSZ, ic.IORCSZ, ic.MSDBD = 0, 0, 0
		return ic
	}
	ic.CNTRLTYPE = proto.CtrlTypeIO
	ic.OAES = proto.OAESNamespaceAttr
	ic.NN = s.nn()
	ic.MNAN = 0
	ic.ONCS = proto.ONCSCompare | proto.ONCSDatasetManagement | proto.ONCSWriteZeroes
	ic.VWC = proto.VWCPresent | proto.VWCFlushBroadcastNotSupp
	ic.FUSES = 0
	ic.AWUN, ic.AWUPF = 0, 0
	return ic
}

// identify builds Identify Namespace (NVM Command Set).
func (ns *Namespace) identify() proto.IdentifyNamespace {
	in := proto.IdentifyNamespace{
		NSZE: ns.blocks, NCAP: ns.blocks, NUSE: ns.blocks,
		NLBAF: 0, FLBAS: 0,
		NMIC:  proto.NMICShared,
		NGUID: ns.nguid,
		EUI64: ns.eui64,
	}
	in.LBAF[0] = proto.LBAFormat{LBADS: uint8(ns.shift)}
	if ns.canUnmap {
		in.NSFEAT |= proto.NSFEATThinProvisioning
	}
	if b := ns.info.OptimalIOBoundary; b > 0 && b <= 0xffff {
		in.NOIOB = uint16(b)
	}
	bytes := ns.blocks << ns.shift
	in.NVMCAP = proto.Uint128{Lo: bytes}
	in.ANAGRPID = ns.anagrpid
	return in
}

// --- Get Log Page (NVMe Base 2.3 §5.2.12) ---

func (c *Controller) getLogPage(req *nvmf.Request) {
	lp := req.SQE.GetLogPage()
	n := lp.LenBytes()
	if lp.OT || lp.Offset&3 != 0 {
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	if n > uint64(len(req.Data)) {
		complete(req, proto.StatusDataSGLLengthInvalid.WithDNR())
		return
	}
	dst := req.Data[:n]
	if c.disc {
		if lp.LID != proto.LIDDiscovery {
			complete(req, proto.StatusInvalidLogPage.WithDNR())
			return
		}
		entries := c.t.discoveryEntries(c.hostnqn)
		c.t.mu.Lock()
		gen := c.t.genctr
		c.t.mu.Unlock()
		if err := proto.EncodeDiscoveryLog(dst, lp.Offset, gen, entries); err != nil {
			complete(req, proto.StatusInvalidField.WithDNR())
			return
		}
		if !lp.RAE {
			c.discMasked = false
		}
		req.Length = uint32(n)
		complete(req, proto.StatusSuccess)
		return
	}
	b := c.scratch[:]
	clear(b)
	var size int
	switch lp.LID {
	case proto.LIDErrorInfo:
		size = proto.ErrorLogEntrySize // ELPE 0: one entry, none recorded
	case proto.LIDHealth:
		h := proto.HealthLog{CompositeTempK: 273 + 25, AvailSpare: 100, AvailSpareThresh: 10}
		h.Encode(b)
		size = proto.HealthLogSize
	case proto.LIDFirmwareSlot:
		f := proto.FirmwareSlotLog{AFI: 1}
		f.FRS[0] = firmwareRevision
		f.Encode(b)
		size = proto.FirmwareSlotLogSize
	case proto.LIDChangedNSList:
		ids := c.changedNS
		if c.changedOver {
			ids = make([]uint32, maxChangedNS+1) // forces the overflow marker
			for i := range ids {
				ids[i] = uint32(i + 1)
			}
		}
		if err := proto.EncodeChangedNSList(b, ids); err != nil {
			complete(req, proto.StatusInternalError)
			return
		}
		size = proto.ChangedNSListSize
		if !lp.RAE {
			c.changedNS, c.changedOver, c.nsMasked = c.changedNS[:0], false, false
		}
	default:
		complete(req, proto.StatusInvalidLogPage.WithDNR())
		return
	}
	if lp.Offset > uint64(size) {
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	m := copy(dst, b[lp.Offset:size])
	clear(dst[m:])
	req.Length = uint32(n)
	complete(req, proto.StatusSuccess)
}

// --- Features (NVMe Base 2.3 §5.2.11, §5.2.26) ---

// changeable features and whether a discovery controller has them.
func featureKnown(fid uint8, disc bool) bool {
	switch fid {
	case proto.FeatKeepAliveTimer, proto.FeatAsyncEventConfig:
		return true
	case proto.FeatArbitration, proto.FeatPowerManagement, proto.FeatTemperatureThreshold,
		proto.FeatErrorRecovery, proto.FeatVolatileWriteCache, proto.FeatNumberOfQueues,
		proto.FeatInterruptCoalescing, proto.FeatInterruptVectorCfg, proto.FeatWriteAtomicity,
		proto.FeatHostIdentifier:
		return !disc
	}
	return false
}

func (c *Controller) getFeatures(req *nvmf.Request) {
	f := req.SQE.Features()
	if !featureKnown(f.FID, c.disc) {
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	if f.Sel == proto.FeatSelSupported {
		// Changeable, not saveable, not namespace specific.
		req.Rsp.DW0 = 1 << 2
		complete(req, proto.StatusSuccess)
		return
	}
	switch f.FID {
	case proto.FeatKeepAliveTimer:
		req.Rsp.DW0 = c.katoMs
	case proto.FeatAsyncEventConfig:
		req.Rsp.DW0 = c.aec
	case proto.FeatHostIdentifier:
		if f.CDW11&1 == 0 {
			// Only the 128-bit host identifier is supported (CTRATT).
			complete(req, proto.StatusInvalidField.WithDNR())
			return
		}
		reply(req, c.hostid[:])
		return
	case proto.FeatVolatileWriteCache:
		req.Rsp.DW0 = c.feat[f.FID] & proto.VWCEnable
	default:
		req.Rsp.DW0 = c.feat[f.FID]
	}
	complete(req, proto.StatusSuccess)
}

func (c *Controller) setFeatures(req *nvmf.Request) {
	f := req.SQE.Features()
	if !featureKnown(f.FID, c.disc) {
		complete(req, proto.StatusInvalidField.WithDNR())
		return
	}
	if f.Save {
		complete(req, proto.StatusFeatureNotSaveable.WithDNR())
		return
	}
	switch f.FID {
	case proto.FeatKeepAliveTimer:
		c.katoMs = c.roundKATO(f.CDW11)
		c.startKeepAlive()
	case proto.FeatAsyncEventConfig:
		c.aec = f.CDW11
	case proto.FeatNumberOfQueues:
		nsq, ncq := proto.ParseNumQueues(f.CDW11)
		if nsq == 0xffff || ncq == 0xffff {
			complete(req, proto.StatusInvalidField.WithDNR())
			return
		}
		// The controller grants max_io_qpairs_per_ctrlr whatever was asked
		// (as SPDK); the host uses the smaller.
		req.Rsp.DW0 = c.feat[proto.FeatNumberOfQueues]
	case proto.FeatHostIdentifier:
		complete(req, proto.StatusCommandSequenceError.WithDNR())
		return
	case proto.FeatPowerManagement:
		if f.CDW11&0x1f != 0 { // only power state 0 exists (NPSS 0)
			complete(req, proto.StatusInvalidField.WithDNR())
			return
		}
		c.feat[f.FID] = f.CDW11
	default:
		c.feat[f.FID] = f.CDW11
	}
	complete(req, proto.StatusSuccess)
}

// --- Asynchronous Event Request and Abort ---

func (c *Controller) asyncEventRequest(req *nvmf.Request) {
	if len(c.pendingAEN) > 0 {
		req.Rsp.DW0 = c.pendingAEN[0]
		c.pendingAEN = c.pendingAEN[1:]
		complete(req, proto.StatusSuccess)
		return
	}
	if len(c.aers) > aerl {
		complete(req, proto.StatusAERLimitExceeded.WithDNR())
		return
	}
	c.aers = append(c.aers, req)
}

// abort is best effort (NVMe Base 2.3 §5.2.1): only a held Asynchronous
// Event Request can be aborted; DW0 bit 0 set means "not aborted".
func (c *Controller) abort(req *nvmf.Request) {
	sqid := uint16(req.SQE.CDW10)
	cid := uint16(req.SQE.CDW10 >> 16)
	req.Rsp.DW0 = 1
	if sqid == 0 {
		for i, r := range c.aers {
			if r.SQE.CID == cid {
				c.aers = append(c.aers[:i], c.aers[i+1:]...)
				r.Rsp.Status = proto.StatusAbortRequested
				r.QPair.Complete(r)
				req.Rsp.DW0 = 0
				break
			}
		}
	}
	complete(req, proto.StatusSuccess)
}
