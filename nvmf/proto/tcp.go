package proto

import (
	"encoding/binary"
	"fmt"
)

// PDUType is the PDU-Type byte of an NVMe/TCP PDU (NVMe/TCP 1.0 §3.3,
// Figure 10). Bit 0 is the direction: 0 host to controller, 1 controller to
// host.
type PDUType uint8

const (
	PDUICReq       PDUType = 0x00 // §3.6.2.2, H2C
	PDUICResp      PDUType = 0x01 // §3.6.2.3, C2H
	PDUH2CTermReq  PDUType = 0x02 // §3.6.2.4, H2C
	PDUC2HTermReq  PDUType = 0x03 // §3.6.2.5, C2H
	PDUCapsuleCmd  PDUType = 0x04 // §3.6.2.6, H2C
	PDUCapsuleResp PDUType = 0x05 // §3.6.2.7, C2H
	PDUH2CData     PDUType = 0x06 // §3.6.2.8, H2C
	PDUC2HData     PDUType = 0x07 // §3.6.2.9, C2H
	PDUR2T         PDUType = 0x09 // §3.6.2.10, C2H
)

var pduTypeNames = [...]string{"ICReq", "ICResp", "H2CTermReq", "C2HTermReq", "CapsuleCmd", "CapsuleResp", "H2CData", "C2HData", "", "R2T"}

func (t PDUType) String() string {
	if int(t) < len(pduTypeNames) && pduTypeNames[t] != "" {
		return pduTypeNames[t]
	}
	return fmt.Sprintf("PDU-Type %#02x", uint8(t))
}

// C2H reports whether PDUs of type t travel from controller to host.
func (t PDUType) C2H() bool { return t&1 != 0 }

// PDUFlags is the FLAGS byte of the PDU common header. The bits a PDU type
// does not define are reserved.
type PDUFlags uint8

const (
	FlagHDGST   PDUFlags = 1 << 0 // HDGSTF: a header digest follows the PDU header
	FlagDDGST   PDUFlags = 1 << 1 // DDGSTF: a data digest follows the PDU data
	FlagLastPDU PDUFlags = 1 << 2 // LAST_PDU: H2CData and C2HData
	FlagSuccess PDUFlags = 1 << 3 // SUCCESS: C2HData only, requires LAST_PDU
)

// Digest holds the HDGST_ENABLE (bit 0) and DDGST_ENABLE (bit 1) bits of the
// DGST field of ICReq and ICResp (NVMe/TCP 1.0 §3.6.2.2, §3.6.2.3). A digest
// is used when both the ICReq and the ICResp enable it (§3.3.1.1).
type Digest uint8

const (
	DigestHeader Digest = 1 << 0
	DigestData   Digest = 1 << 1
)

// FES is the Fatal Error Status of an H2CTermReq or C2HTermReq (NVMe/TCP
// 1.0 §3.6.2.4, §3.6.2.5).
type FES uint16

const (
	FESInvalidHeaderField FES = 0x01 // FEI: byte offset of the field in the PDU header
	FESSequenceError      FES = 0x02 // FEI reserved
	FESHeaderDigestError  FES = 0x03 // FEI: the HDGST value received
	FESDataOutOfRange     FES = 0x04 // FEI reserved
	// FESDataLimitExceeded (C2HTermReq) is an H2CData PDU longer than
	// MAXH2CDATA; the same value in an H2CTermReq is FESR2TLimitExceeded, an
	// R2T beyond MAXR2T.
	FESDataLimitExceeded    FES = 0x05
	FESR2TLimitExceeded     FES = 0x05
	FESUnsupportedParameter FES = 0x06 // FEI: byte offset of the field in the PDU header
)

func (f FES) String() string {
	switch f {
	case FESInvalidHeaderField:
		return "01h invalid PDU header field"
	case FESSequenceError:
		return "02h PDU sequence error"
	case FESHeaderDigestError:
		return "03h header digest error"
	case FESDataOutOfRange:
		return "04h data transfer out of range"
	case FESDataLimitExceeded:
		return "05h data transfer / R2T limit exceeded"
	case FESUnsupportedParameter:
		return "06h unsupported parameter"
	}
	return fmt.Sprintf("%02xh reserved", uint16(f))
}

// Sizes and limits of NVMe/TCP PDUs (NVMe/TCP 1.0 §3.6.2).
const (
	CommonHeaderLen   = 8   // CH: PDU-Type, FLAGS, HLEN, PDO, PLEN
	ICLen             = 128 // ICReq and ICResp: HLEN and PLEN
	TermReqHLen       = 24  // H2CTermReq and C2HTermReq
	MaxTermReqData    = 128 // offending header bytes carried by a TermReq
	MaxTermReqPLen    = TermReqHLen + MaxTermReqData
	CapsuleCmdHLen    = 72 // CH + SQE
	CapsuleRespHLen   = 24 // CH + CQE
	DataHLen          = 24 // H2CData and C2HData
	R2THLen           = 24
	MaxPDA            = 31   // HPDA and CPDA range 0..31 dwords, 0's based
	MinMaxH2CData     = 4096 // MAXH2CDATA should be no less than this (§3.6.2.3)
	MaxAdminInCapsule = 8192 // in-capsule data for Fabrics and Admin commands (§3.3, Figure 11)
	PFV10             = 0    // PDU format version 1.0
	PortIO            = 4420 // IANA port for NVMe over Fabrics
	PortDiscovery     = 8009 // IANA port for NVMe over Fabrics discovery (§3.1.2)
)

// Byte offsets of PSH fields, for the FEI of FES 01h and 06h errors a
// transport raises itself (NewPDUError).
const (
	ICOffPFV        = 8  // ICReq, ICResp
	ICOffPDA        = 10 // HPDA in ICReq, CPDA in ICResp
	ICOffDGST       = 11
	ICOffMaxData    = 12 // MAXR2T in ICReq, MAXH2CDATA in ICResp
	DataPDUOffCCCID = 8  // H2CData, C2HData, R2T
	DataPDUOffTTAG  = 10 // H2CData, R2T
	DataPDUOffDATAO = 12 // DATAO or R2TO
	DataPDUOffDATAL = 16 // DATAL or R2TL
)

// PDAAlign returns the PDU data alignment in bytes for an HPDA or CPDA value.
func PDAAlign(pda uint8) int { return (int(pda&MaxPDA) + 1) * 4 }

// Framing is what a sender needs to lay out a PDU: the digests negotiated
// for the connection and the PDU data alignment of the receiver (the HPDA
// from the host's ICReq when the controller sends, the CPDA from the
// controller's ICResp when the host sends).
type Framing struct {
	Digests Digest
	PDA     uint8
}

func (f Framing) hdgstLen() int {
	if f.Digests&DigestHeader != 0 {
		return DigestLen
	}
	return 0
}

// DataOffset returns the PDO of a PDU with header length hlen that carries
// data: the header and header digest rounded up to the receiver's alignment
// (NVMe/TCP 1.0 §3.3; PAD bytes are zero).
func (f Framing) DataOffset(hlen int) int {
	a := PDAAlign(f.PDA)
	return (hlen + f.hdgstLen() + a - 1) / a * a
}

func putCH(b []byte, t PDUType, flags PDUFlags, hlen, pdo uint8, plen uint32) {
	b[0], b[1], b[2], b[3] = uint8(t), uint8(flags), hlen, pdo
	binary.LittleEndian.PutUint32(b[4:], plen)
}

// sealHeader writes the header digest after b[:hlen] when f enables it and
// zeroes the padding up to end.
func sealHeader(b []byte, f Framing, hlen, end int) {
	n := hlen
	if f.Digests&DigestHeader != 0 {
		PutDigest(b[hlen:], CRC32C(b[:hlen]))
		n += DigestLen
	}
	clear(b[n:end])
}

// ICReq is the Initialize Connection Request PDU (NVMe/TCP 1.0 §3.6.2.2,
// Figure 20), 128 bytes:
//
//	 0       1       2       3       4               8     10     11     12         16     128
//	+-------+-------+-------+-------+---------------+-----+------+------+----------+------+
//	| 00h   | FLAGS | HLEN  | PDO   | PLEN          | PFV | HPDA | DGST | MAXR2T   | rsvd |
//	|       | rsvd  | 80h   | rsvd  | 80h           |     |      |      | 0's based|      |
//	+-------+-------+-------+-------+---------------+-----+------+------+----------+------+
type ICReq struct {
	PFV     uint16
	HPDA    uint8 // 0's based dwords, 0..31: alignment of data in C2H PDUs
	Digests Digest
	MaxR2T  uint32 // 0's based number of outstanding R2Ts per command
}

// ICResp is the Initialize Connection Response PDU (NVMe/TCP 1.0 §3.6.2.3,
// Figure 21), 128 bytes, laid out like ICReq with CPDA at byte 10 and
// MAXH2CDATA (bytes, a multiple of 4, at least 4096) at bytes 15:12.
type ICResp struct {
	PFV        uint16
	CPDA       uint8 // 0's based dwords, 0..31: alignment of data in H2C PDUs
	Digests    Digest
	MaxH2CData uint32
}

func encodeIC(b []byte, t PDUType, pfv uint16, pda uint8, d Digest, v uint32) (int, error) {
	if len(b) < ICLen {
		return 0, shortErr(t.String(), ICLen, len(b))
	}
	if pda > MaxPDA {
		return 0, fieldErr(t.String(), "PDA", ICOffPDA, "above 31")
	}
	b = b[:ICLen]
	clear(b)
	putCH(b, t, 0, ICLen, 0, ICLen)
	binary.LittleEndian.PutUint16(b[ICOffPFV:], pfv)
	b[ICOffPDA] = pda
	b[ICOffDGST] = uint8(d)
	binary.LittleEndian.PutUint32(b[ICOffMaxData:], v)
	return ICLen, nil
}

// EncodeICReq writes an ICReq PDU into b and returns its length (128).
func EncodeICReq(b []byte, r *ICReq) (int, error) {
	return encodeIC(b, PDUICReq, r.PFV, r.HPDA, r.Digests, r.MaxR2T)
}

// EncodeICResp writes an ICResp PDU into b and returns its length (128).
func EncodeICResp(b []byte, r *ICResp) (int, error) {
	return encodeIC(b, PDUICResp, r.PFV, r.CPDA, r.Digests, r.MaxH2CData)
}

// EncodeTermReq writes an H2CTermReq (t = PDUH2CTermReq) or C2HTermReq (t =
// PDUC2HTermReq) carrying fes, fei and the first 128 bytes of hdr, the
// header of the PDU in error, and returns its length (NVMe/TCP 1.0
// §3.6.2.4, §3.6.2.5; TermReqs have no digests):
//
//	 0    8       10         14          24
//	+----+-------+----------+-----------+------------------------+
//	| CH |  FES  | FEI (4)  | reserved  | offending header (<=128)|
//	+----+-------+----------+-----------+------------------------+
func EncodeTermReq(b []byte, t PDUType, fes FES, fei uint32, hdr []byte) (int, error) {
	if t != PDUH2CTermReq && t != PDUC2HTermReq {
		return 0, fieldErr("TermReq", "PDU-Type", 0, "not a termination request type")
	}
	hdr = hdr[:min(len(hdr), MaxTermReqData)]
	n := TermReqHLen + len(hdr)
	if len(b) < n {
		return 0, shortErr(t.String(), n, len(b))
	}
	putCH(b, t, 0, TermReqHLen, 0, uint32(n))
	binary.LittleEndian.PutUint16(b[8:], uint16(fes))
	binary.LittleEndian.PutUint32(b[10:], fei)
	clear(b[14:TermReqHLen])
	copy(b[TermReqHLen:n], hdr)
	return n, nil
}

// EncodeCapsuleCmd writes a CapsuleCmd PDU header for sqe with dataLen
// bytes of in-capsule data (NVMe/TCP 1.0 §3.6.2.6, Figure 24):
//
//	 0    8             72       76      PDO                 PLEN-4
//	+----+-------------+--------+-------+-------------------+--------+
//	| CH | SQE (64)    | HDGST? | PAD   | in-capsule data   | DDGST? |
//	+----+-------------+--------+-------+-------------------+--------+
//
// It returns n, the bytes written: the header, its digest and the padding,
// so the data goes at b[n:] (n is PDO when dataLen > 0). The caller sends
// dataLen data bytes and then, when f enables data digests and dataLen > 0,
// the DDGST (PutDigest of CRC32CVec over the data).
func EncodeCapsuleCmd(b []byte, f Framing, sqe *SQE, dataLen int) (int, error) {
	flags, pdo, plen, n, err := dataLayout(f, CapsuleCmdHLen, dataLen)
	if err != nil {
		return 0, err
	}
	if len(b) < n {
		return 0, shortErr("CapsuleCmd", n, len(b))
	}
	putCH(b, PDUCapsuleCmd, flags, CapsuleCmdHLen, pdo, plen)
	_ = sqe.Encode(b[CommonHeaderLen:])
	sealHeader(b, f, CapsuleCmdHLen, n)
	return n, nil
}

// dataLayout computes FLAGS, PDO, PLEN and the header bytes up to the data
// for a PDU that may carry dataLen bytes of data.
func dataLayout(f Framing, hlen, dataLen int) (flags PDUFlags, pdo uint8, plen uint32, n int, err error) {
	if dataLen < 0 || uint64(dataLen) > 1<<32-512 {
		return 0, 0, 0, 0, fieldErr("PDU", "PLEN", 4, "data length out of range")
	}
	hd := f.hdgstLen()
	if hd != 0 {
		flags |= FlagHDGST
	}
	if dataLen == 0 {
		return flags, 0, uint32(hlen + hd), hlen + hd, nil
	}
	off := f.DataOffset(hlen)
	total := off + dataLen
	if f.Digests&DigestData != 0 {
		flags |= FlagDDGST
		total += DigestLen
	}
	return flags, uint8(off), uint32(total), off, nil
}

// EncodeCapsuleResp writes a CapsuleResp PDU for cqe (NVMe/TCP 1.0
// §3.6.2.7, Figure 25) and returns its length:
//
//	 0    8          24       28
//	+----+----------+--------+
//	| CH | CQE (16) | HDGST? |
//	+----+----------+--------+
func EncodeCapsuleResp(b []byte, f Framing, cqe *CQE) (int, error) {
	n := CapsuleRespHLen + f.hdgstLen()
	if len(b) < n {
		return 0, shortErr("CapsuleResp", n, len(b))
	}
	var flags PDUFlags
	if n > CapsuleRespHLen {
		flags = FlagHDGST
	}
	putCH(b, PDUCapsuleResp, flags, CapsuleRespHLen, 0, uint32(n))
	_ = cqe.Encode(b[CommonHeaderLen:])
	sealHeader(b, f, CapsuleRespHLen, n)
	return n, nil
}

// DataPDU holds the PSH of an H2CData (NVMe/TCP 1.0 §3.6.2.8, Figure 26) or
// C2HData (§3.6.2.9, Figure 27) PDU:
//
//	 0    8       10      12        16        20     24       PDO          PLEN-4
//	+----+-------+-------+---------+---------+------+--------+-----+------+--------+
//	| CH | CCCID | TTAG  | DATAO   | DATAL   | rsvd | HDGST? | PAD | DATA | DDGST? |
//	+----+-------+-------+---------+---------+------+--------+-----+------+--------+
//
// TTAG is reserved in C2HData. DATAO is the offset in the command's data
// buffer, DATAL the PDU's data length (both dword multiples by §3.6.2.8).
type DataPDU struct {
	CCCID   uint16 // CID of the command
	TTag    uint16 // H2CData: the TTAG of the R2T being answered
	DataO   uint32
	DataL   uint32
	Last    bool // LAST_PDU
	Success bool // C2HData only: command completed, no CapsuleResp follows; needs Last
}

func encodeData(b []byte, t PDUType, f Framing, d *DataPDU) (int, error) {
	if d.DataL == 0 {
		return 0, fieldErr(t.String(), "DATAL", DataPDUOffDATAL, "zero length data PDU")
	}
	flags, pdo, plen, n, err := dataLayout(f, DataHLen, int(d.DataL))
	if err != nil {
		return 0, err
	}
	if len(b) < n {
		return 0, shortErr(t.String(), n, len(b))
	}
	if d.Last {
		flags |= FlagLastPDU
	}
	ttag := d.TTag
	if t == PDUC2HData {
		ttag = 0
		if d.Success {
			if !d.Last {
				return 0, fieldErr(t.String(), "FLAGS", 1, "SUCCESS without LAST_PDU")
			}
			flags |= FlagSuccess
		}
	}
	putCH(b, t, flags, DataHLen, pdo, plen)
	binary.LittleEndian.PutUint16(b[DataPDUOffCCCID:], d.CCCID)
	binary.LittleEndian.PutUint16(b[DataPDUOffTTAG:], ttag)
	binary.LittleEndian.PutUint32(b[DataPDUOffDATAO:], d.DataO)
	binary.LittleEndian.PutUint32(b[DataPDUOffDATAL:], d.DataL)
	clear(b[20:DataHLen])
	sealHeader(b, f, DataHLen, n)
	return n, nil
}

// EncodeH2CData writes an H2CData PDU header and returns n, the offset of
// the data (PDO). The caller sends d.DataL data bytes and, when f enables
// data digests, the DDGST.
func EncodeH2CData(b []byte, f Framing, d *DataPDU) (int, error) {
	return encodeData(b, PDUH2CData, f, d)
}

// EncodeC2HData writes a C2HData PDU header and returns n, the offset of
// the data (PDO). The caller sends d.DataL data bytes and, when f enables
// data digests, the DDGST.
func EncodeC2HData(b []byte, f Framing, d *DataPDU) (int, error) {
	return encodeData(b, PDUC2HData, f, d)
}

// R2T is the PSH of a Ready to Transfer PDU (NVMe/TCP 1.0 §3.6.2.10,
// Figure 28):
//
//	 0    8       10      12        16        20     24
//	+----+-------+-------+---------+---------+------+--------+
//	| CH | CCCID | TTAG  | R2TO    | R2TL    | rsvd | HDGST? |
//	+----+-------+-------+---------+---------+------+--------+
type R2T struct {
	CCCID uint16
	TTag  uint16 // chosen by the controller, echoed in the H2CData PDUs
	R2TO  uint32 // offset in the command's data buffer
	R2TL  uint32 // bytes requested, nonzero
}

// EncodeR2T writes an R2T PDU and returns its length.
func EncodeR2T(b []byte, f Framing, r *R2T) (int, error) {
	if r.R2TL == 0 {
		return 0, fieldErr("R2T", "R2TL", DataPDUOffDATAL, "zero length")
	}
	n := R2THLen + f.hdgstLen()
	if len(b) < n {
		return 0, shortErr("R2T", n, len(b))
	}
	var flags PDUFlags
	if n > R2THLen {
		flags = FlagHDGST
	}
	putCH(b, PDUR2T, flags, R2THLen, 0, uint32(n))
	binary.LittleEndian.PutUint16(b[DataPDUOffCCCID:], r.CCCID)
	binary.LittleEndian.PutUint16(b[DataPDUOffTTAG:], r.TTag)
	binary.LittleEndian.PutUint32(b[DataPDUOffDATAO:], r.R2TO)
	binary.LittleEndian.PutUint32(b[DataPDUOffDATAL:], r.R2TL)
	clear(b[20:R2THLen])
	sealHeader(b, f, R2THLen, n)
	return n, nil
}
