package proto

import "testing"

// The I/O path allocates nothing: every case runs its operation once per
// AllocsPerRun iteration and must report zero allocations.
func TestIOPathAllocs(t *testing.T) {
	sqeBuf := make([]byte, SQESize)
	cqeBuf := make([]byte, CQESize)
	pduBuf := make([]byte, 8192)
	data := make([]byte, 4096)
	iov := [][]byte{data[:1000], data[1000:]}
	var sqe SQE
	mustNoErr(t, sqe.PutRW(&RWCmd{Opcode: IOWrite, CID: 1, NSID: 1, SGL: TCPDataSGL(4096), SLBA: 8, NLB: 8}))
	cqe := CQE{CID: 1, Status: StatusLBAOutOfRange.WithDNR()}

	ctrl := negotiated(t, RoleController, DigestHeader|DigestData, 0)
	host := negotiated(t, RoleHost, DigestHeader|DigestData, 0)
	f := Framing{Digests: DigestHeader | DigestData}
	cmdPDU := make([]byte, 4096)
	n, _ := EncodeCapsuleCmd(cmdPDU, f, &sqe, 0)
	cmdPDU = cmdPDU[:n]
	c2h := make([]byte, 64)
	n, _ = EncodeC2HData(c2h, f, &DataPDU{CCCID: 1, DataL: 4096, Last: true})
	c2h = c2h[:n]
	h2c := make([]byte, 64)
	n, _ = EncodeH2CData(h2c, f, &DataPDU{CCCID: 1, TTag: 1, DataL: 4096, Last: true})
	h2c = h2c[:n]
	ranges := make([]byte, 16*8)
	dst := make([]DSMRange, 0, 8)
	var h PDUHeader

	for name, fn := range map[string]func(){
		"SQE.Decode+Encode": func() { _ = sqe.Decode(sqeBuf); _ = sqe.Encode(sqeBuf) },
		"CQE.Decode+Encode": func() { _ = cqe.Decode(cqeBuf); _ = cqe.Encode(cqeBuf) },
		"SQE.RW+PutRW":      func() { rw := sqe.RW(); _ = sqe.PutRW(&rw) },
		"SQE.SGL+SetSGL":    func() { _ = sqe.SetSGL(sqe.SGL()) },
		"SQE.DSM":           func() { _ = sqe.DSM() },
		"DecodeDSMRanges":   func() { dst, _ = DecodeDSMRanges(ranges, 8, dst[:0]) },
		"EncodeCapsuleResp": func() { _, _ = EncodeCapsuleResp(pduBuf, f, &cqe) },
		"EncodeCapsuleCmd":  func() { _, _ = EncodeCapsuleCmd(pduBuf, f, &sqe, 4096) },
		"EncodeC2HData":     func() { _, _ = EncodeC2HData(pduBuf, f, &DataPDU{CCCID: 1, DataL: 4096, Last: true}) },
		"EncodeH2CData":     func() { _, _ = EncodeH2CData(pduBuf, f, &DataPDU{CCCID: 1, DataL: 4096}) },
		"EncodeR2T":         func() { _, _ = EncodeR2T(pduBuf, f, &R2T{CCCID: 1, R2TL: 4096}) },
		"Parse CapsuleCmd":  func() { _, _ = ctrl.Parse(cmdPDU, &h) },
		"Parse H2CData":     func() { _, _ = ctrl.Parse(h2c, &h) },
		"Parse C2HData":     func() { _, _ = host.Parse(c2h, &h) },
		"Parse partial":     func() { _, _ = host.Parse(c2h[:5], &h) },
		"CRC32CVec":         func() { _ = CRC32CVec(iov) },
		"VerifyDataDigest":  func() { _ = VerifyDataDigest(iov, cqeBuf[:4]) },
		"EncodeDiscoveryLog window": func() {
			_ = EncodeDiscoveryLog(pduBuf[:1500], 700, 1, discoveryForAllocs)
		},
	} {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s: %v allocations per run", name, a)
		}
	}
}

var discoveryForAllocs = sampleDiscovery(3)
