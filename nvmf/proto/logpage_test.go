package proto

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestGetLogPageCommand(t *testing.T) {
	// 0x12345 dwords requested (NUMD 0x12344 split over NUMDL/NUMDU), LID 70h,
	// RAE, offset 0x1_0000_0400, CSI 2, OT, UUID index 5.
	c := GetLogPageCmd{CID: 2, NSID: NSIDBroadcast, SGL: TCPDataSGL(0x48d14), LID: LIDDiscovery, LSP: 0x7f, RAE: true,
		NUMD: 0x12344, LSI: 0xbeef, Offset: 0x1_0000_0400, UUIDIndex: 5, OT: true, CSI: 2}
	var s SQE
	mustNoErr(t, s.PutGetLogPage(&c))
	b := make([]byte, SQESize)
	mustNoErr(t, s.Encode(b))
	eqBytes(t, "CDW10-14", b[40:60], hexb(t, "70 ff 44 23  01 00 ef be  00 04 00 00  01 00 00 00  05 00 80 02", 0))
	if g := s.GetLogPage(); g != c {
		t.Fatalf("view %+v", g)
	}
	if c.LenBytes() != 0x12345*4 || NUMDForBytes(4096) != 1023 || NUMDForBytes(1) != 0 || NUMDForBytes(5) != 1 {
		t.Fatal("NUMD helpers")
	}
	max := GetLogPageCmd{NUMD: 0xffffffff}
	if max.LenBytes() != 1<<34 {
		t.Fatal("NUMD max")
	}
}

func TestErrorLogEntry(t *testing.T) {
	e := ErrorLogEntry{ErrorCount: 3, SQID: 1, CID: 0x44, Status: StatusLBAOutOfRange.WithDNR(), Phase: true,
		ParamErrLoc: 0x0228, LBA: 0x1000, NSID: 1, TRType: TRTypeTCP, Opcode: IORead, CSInfo: 9, TTSI: 2, LogPageVersion: 1}
	b := make([]byte, ErrorLogEntrySize)
	mustNoErr(t, e.Encode(b))
	want := hexb(t, `03 00 00 00 00 00 00 00  01 00 44 00  01 81  28 02
		00 10 00 00 00 00 00 00  01 00 00 00  00 03 00 02  09 00 00 00 00 00 00 00  02 00`, 64)
	want[63] = 1
	eqBytes(t, "error log entry", b, want)
	var d ErrorLogEntry
	mustNoErr(t, d.Decode(b))
	if d != e {
		t.Fatalf("decode %+v", d)
	}
}

func TestHealthLog(t *testing.T) {
	h := HealthLog{CriticalWarning: CritWarnSpare, CompositeTempK: 310, AvailSpare: 100, AvailSpareThresh: 10, PercentUsed: 1,
		DataUnitsRead: Uint128{Lo: 5}, DataUnitsWritten: Uint128{Lo: 6, Hi: 1}, HostReads: Uint128{Lo: 7}, HostWrites: Uint128{Lo: 8},
		CtrlBusyTime: Uint128{Lo: 9}, PowerCycles: Uint128{Lo: 10}, PowerOnHours: Uint128{Lo: 11}, UnsafeShutdowns: Uint128{Lo: 12},
		MediaErrors: Uint128{Lo: 13}, ErrorLogEntries: Uint128{Lo: 14}, WarnTempTime: 15, CritTempTime: 16,
		TempSensorK: [8]uint16{300, 301}, TMT1Count: 17, TMT2Count: 18, TMT1Time: 19, TMT2Time: 20}
	b := make([]byte, HealthLogSize)
	mustNoErr(t, h.Encode(b))
	le := binary.LittleEndian
	if b[0] != 1 || le.Uint16(b[1:]) != 310 || b[3] != 100 || b[4] != 10 || b[5] != 1 {
		t.Fatal("header bytes")
	}
	for i, want := range []uint64{5, 6, 7, 8, 9, 10, 11, 12, 13, 14} {
		if le.Uint64(b[32+16*i:]) != want {
			t.Errorf("counter %d at %d", i, 32+16*i)
		}
	}
	if le.Uint64(b[56:]) != 1 || le.Uint32(b[192:]) != 15 || le.Uint16(b[202:]) != 301 || le.Uint32(b[228:]) != 20 {
		t.Fatal("tail offsets")
	}
	var d HealthLog
	mustNoErr(t, d.Decode(b))
	if d != h {
		t.Fatalf("decode %+v", d)
	}
}

func TestFirmwareSlotLog(t *testing.T) {
	f := FirmwareSlotLog{AFI: 0x11, FRS: [7]string{"1.0.0", "", "2.0"}}
	b := make([]byte, FirmwareSlotLogSize)
	mustNoErr(t, f.Encode(b))
	eqBytes(t, "slots", b[:32], hexb(t, "11 00 00 00 00 00 00 00  31 2e 30 2e 30 20 20 20  00 00 00 00 00 00 00 00  32 2e 30 20 20 20 20 20", 0))
	var d FirmwareSlotLog
	mustNoErr(t, d.Decode(b))
	if d != f {
		t.Fatalf("decode %+v", d)
	}
	f.FRS[6] = "123456789"
	if err := f.Encode(b); !errors.Is(err, ErrInvalidField) {
		t.Fatal(err)
	}
}

func sampleDiscovery(n int) []DiscoveryEntry {
	es := make([]DiscoveryEntry, n)
	for i := range es {
		es[i] = DiscoveryEntry{
			TRType: TRTypeTCP, AdrFam: AdrFamIPv4, SubType: SubTypeNVM, TReq: TReqSecureChannelNotRequired,
			PortID: uint16(i), CNTLID: CNTLIDDynamic, ASQSZ: 32,
			TRSvcID: "4420", SubNQN: "nqn.2016-06.io.hyperpath:vol" + strings.Repeat("x", i),
			TRAddr: "127.0.0.1", TSAS: TSASTCP(SecTypeNone),
		}
	}
	es[0].SubType = SubTypeCurrentDiscovery
	es[0].SubNQN = DiscoveryNQN
	es[0].TRSvcID = "8009"
	return es
}

func TestDiscoveryEntryLayout(t *testing.T) {
	e := sampleDiscovery(2)[1]
	e.EFlags = 3
	e.TSAS = TSASRDMA(RDMAQPTypeConnected, RDMAPRTypeRoCEv2, RDMACMSRDMACM, 0xffff)
	b := make([]byte, DiscoveryEntrySize)
	mustNoErr(t, e.Encode(b))
	eqBytes(t, "fixed fields", b[:12], hexb(t, "03 01 02 02  01 00  ff ff  20 00  03 00", 0))
	eqBytes(t, "TRSVCID", b[32:64], []byte("4420                            "))
	eqBytes(t, "SUBNQN", b[256:256+len(e.SubNQN)+1], append([]byte(e.SubNQN), 0))
	eqBytes(t, "TRADDR", b[512:512+12], []byte("127.0.0.1   "))
	if b[767] != ' ' {
		t.Fatal("TRADDR must be space padded to 256 bytes")
	}
	eqBytes(t, "TSAS", b[768:778], hexb(t, "01 04 01 00 00 00 00 00 ff ff", 0))
	var d DiscoveryEntry
	mustNoErr(t, d.Decode(b))
	if d != e {
		t.Fatalf("decode %+v", d)
	}
	// NUL padded text fields (as some controllers send) read the same.
	copy(b[32:64], make([]byte, 32))
	copy(b[32:], "4420")
	mustNoErr(t, d.Decode(b))
	if d.TRSvcID != "4420" {
		t.Fatalf("NUL padded TRSVCID %q", d.TRSvcID)
	}
}

func TestDiscoveryLogWindows(t *testing.T) {
	es := sampleDiscovery(5)
	full := make([]byte, DiscoveryLogSize(len(es)))
	mustNoErr(t, EncodeDiscoveryLog(full, 0, 42, es))
	le := binary.LittleEndian
	if le.Uint64(full[0:]) != 42 || le.Uint64(full[8:]) != 5 || le.Uint16(full[16:]) != 0 {
		t.Fatal("header")
	}
	h, got, err := DecodeDiscoveryLog(full)
	mustNoErr(t, err)
	if h.GenCtr != 42 || h.NumRec != 5 || len(got) != 5 {
		t.Fatalf("decode %+v %d", h, len(got))
	}
	for i := range es {
		if got[i] != es[i] {
			t.Fatalf("entry %d: %+v", i, got[i])
		}
	}
	// Every window, aligned or not, equals the slice of the full page, and
	// bytes past the end read as zero.
	for _, w := range []struct{ off, n int }{{0, 1024}, {0, 16}, {8, 8}, {1000, 100}, {1024, 1024}, {2047, 3}, {3000, 4000}, {5000, 2000}, {6144, 10}, {9000, 10}} {
		dst := make([]byte, w.n)
		for i := range dst {
			dst[i] = 0xcc
		}
		mustNoErr(t, EncodeDiscoveryLog(dst, uint64(w.off), 42, es))
		want := make([]byte, w.n)
		if w.off < len(full) {
			copy(want, full[w.off:])
		}
		eqBytes(t, "window", dst, want)
	}
	// NUMREC beyond the buffer.
	var fe *FieldError
	if _, _, err := DecodeDiscoveryLog(full[:len(full)-1]); !errors.As(err, &fe) || fe.Field != "NUMREC" || fe.Offset != 8 {
		t.Fatalf("NUMREC: %v", err)
	}
	// A bad entry names itself and its offset in the log.
	bad := append([]byte(nil), full...)
	for i := 0; i < 256; i++ {
		bad[3*1024+256+i] = 'z'
	}
	if _, _, err := DecodeDiscoveryLog(bad); !errors.As(err, &fe) || fe.Field != "entry[2].SUBNQN" || fe.Offset != 3*1024+256 {
		t.Fatalf("bad entry: %v", err)
	}
	es[3].TRSvcID = strings.Repeat("9", 33)
	if err := EncodeDiscoveryLog(make([]byte, 100), 4*1024+10, 1, es); !errors.As(err, &fe) || fe.Field != "entry[3].TRSVCID" {
		t.Fatalf("encode bad entry: %v", err)
	}
}

func TestFeatures(t *testing.T) {
	var s SQE
	mustNoErr(t, s.PutSetFeatures(&FeaturesCmd{CID: 1, FID: FeatNumberOfQueues, Save: true, CDW11: NumQueues(7, 7)}))
	if s.Opcode != AdminSetFeatures || s.CDW10 != 0x80000007 || s.CDW11 != 0x00070007 {
		t.Fatalf("set features %+v", s)
	}
	f := s.Features()
	if f.FID != FeatNumberOfQueues || !f.Save || f.CDW11 != 0x00070007 {
		t.Fatalf("view %+v", f)
	}
	nsq, ncq := ParseNumQueues(0x0003_0001)
	if nsq != 1 || ncq != 3 {
		t.Fatal("ParseNumQueues")
	}
	mustNoErr(t, s.PutGetFeatures(&FeaturesCmd{CID: 2, FID: FeatKeepAliveTimer, Sel: FeatSelSupported}))
	if s.Opcode != AdminGetFeatures || s.CDW10 != 0x0000030f || s.Features().Sel != FeatSelSupported || s.Dir() != XferCtrlToHost {
		t.Fatalf("get features %+v", s)
	}
	ev := AsyncEvent{Type: AETypeNotice, Info: AENNamespaceAttrChanged, LID: LIDChangedNSList}
	if ev.DW0() != 0x00040002 || ParseAsyncEvent(0x00040002) != ev {
		t.Fatalf("AER DW0 %#x", ev.DW0())
	}
	if (AsyncEvent{Type: AETypeNotice, Info: AENDiscoveryLogChange, LID: LIDDiscovery}).DW0() != 0x0070f002 {
		t.Fatal("discovery AEN")
	}
}
