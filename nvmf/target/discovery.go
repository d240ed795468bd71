package target

import (
	"hyperpath/nvmf"
	"hyperpath/nvmf/proto"
)

// discoveryEntries builds the Discovery log (NVMe Base 2.3 §5.2.12.3.3)
// that hostnqn may see: one entry per listener of every NVM subsystem that
// allows the host, after one "current discovery subsystem" entry per
// listener of the discovery subsystem itself. Control path: it allocates.
func (t *Target) discoveryEntries(hostnqn string) []proto.DiscoveryEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []proto.DiscoveryEntry
	for _, s := range t.subsystems {
		if !s.disc && !s.hostAllowedLocked(hostnqn) {
			continue
		}
		for _, l := range s.listeners {
			out = append(out, t.entryLocked(s, l))
		}
	}
	return out
}

func (t *Target) entryLocked(s *Subsystem, l nvmf.ListenAddr) proto.DiscoveryEntry {
	asqsz := uint16(32)
	if tr := t.transportLocked(l.TrType); tr != nil {
		asqsz = uint16(max(32, min(tr.Opts().MaxAQDepth, 0xffff)))
	}
	e := proto.DiscoveryEntry{
		TRType:  l.TrTypeCode(),
		AdrFam:  l.AdrFamCode(),
		SubType: proto.SubTypeNVM,
		TReq:    proto.TReqSecureChannelNotRequired,
		PortID:  t.portIDs[l],
		CNTLID:  proto.CNTLIDDynamic,
		ASQSZ:   asqsz,
		TRSvcID: l.TrSvcID,
		SubNQN:  s.nqn,
		TRAddr:  l.TrAddr,
	}
	if s.disc {
		e.SubType = proto.SubTypeCurrentDiscovery
	}
	if l.TrType == "TCP" {
		e.TSAS = proto.TSASTCP(proto.SecTypeNone)
	}
	return e
}
