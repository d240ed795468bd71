package proto

import (
	"strings"
	"testing"
)

func TestCQEGolden(t *testing.T) {
	// DW0 12345678h, SQHD 7, SQID 2, CID 0A0Bh, Invalid Field in Command
	// with DNR, phase 1: the status word is (4002h << 1) | 1 = 8005h.
	want := hexb(t, "78 56 34 12  00 00 00 00  07 00 02 00  0b 0a 05 80", CQESize)
	c := CQE{DW0: 0x12345678, SQHead: 7, SQID: 2, CID: 0x0a0b, Status: StatusInvalidField.WithDNR(), Phase: true}
	got := make([]byte, CQESize)
	mustNoErr(t, c.Encode(got))
	eqBytes(t, "CQE", got, want)
	var d CQE
	mustNoErr(t, d.Decode(want))
	if d != c {
		t.Fatalf("decode %+v, want %+v", d, c)
	}
	if d.Status.SCT() != SCTGeneric || d.Status.SC() != 0x02 || !d.Status.DNR() || d.Status.More() || d.Status.Success() {
		t.Fatalf("status fields of %v", d.Status)
	}
}

func TestStatusBits(t *testing.T) {
	for _, tc := range []struct {
		s         Status
		sct       SCT
		sc        uint8
		crd       uint8
		more, dnr bool
		word      uint16 // bytes 14-15 of the CQE with phase 0
	}{
		{StatusSuccess, SCTGeneric, 0, 0, false, false, 0x0000},
		{StatusLBAOutOfRange, SCTGeneric, 0x80, 0, false, false, 0x0100},
		{StatusConnectInvalidParameters.WithDNR(), SCTCommandSpecific, 0x82, 0, false, true, 0x8304},
		{StatusConnectInvalidHost, SCTCommandSpecific, 0x84, 0, false, false, 0x0308},
		{StatusCompareFailure.WithMore(), SCTMedia, 0x85, 0, true, false, 0x450a},
		{StatusNamespaceNotReady.WithCRD(2), SCTGeneric, 0x82, 2, false, false, 0x2104},
		{StatusANATransition, SCTPath, 0x03, 0, false, false, 0x0606},
	} {
		if tc.s.SCT() != tc.sct || tc.s.SC() != tc.sc || tc.s.CRD() != tc.crd || tc.s.More() != tc.more || tc.s.DNR() != tc.dnr {
			t.Errorf("%v: sct %d sc %#x crd %d more %v dnr %v", tc.s, tc.s.SCT(), tc.s.SC(), tc.s.CRD(), tc.s.More(), tc.s.DNR())
		}
		b := make([]byte, CQESize)
		c := CQE{Status: tc.s}
		mustNoErr(t, c.Encode(b))
		if w := uint16(b[14]) | uint16(b[15])<<8; w != tc.word {
			t.Errorf("%v: status word %#04x, want %#04x", tc.s, w, tc.word)
		}
	}
	if MakeStatus(SCTMedia, 0x85) != StatusCompareFailure || StatusCompareFailure.WithDNR().Code() != StatusCompareFailure {
		t.Fatal("MakeStatus/Code")
	}
	for s, want := range map[Status]string{
		StatusInvalidOpcode:                      "invalid command opcode (sct 0 sc 0x01)",
		StatusConnectInvalidHost.WithDNR():       "connect invalid host (sct 1 sc 0x84) DNR",
		StatusConnectInvalidParameters:           "connect invalid parameters / attempted write to read only range (sct 1 sc 0x82)",
		MakeStatus(SCTVendor, 0xc1).WithCRD(1):   "unknown status (sct 7 sc 0xc1) CRD1",
		StatusTransientTransportError.WithMore(): "transient transport error (sct 0 sc 0x22) M",
	} {
		if got := s.String(); got != want {
			t.Errorf("String(%#x) = %q, want %q", uint16(s), got, want)
		}
	}
	if !strings.Contains(StatusSuccess.String(), "success") {
		t.Fatal(StatusSuccess.String())
	}
}
