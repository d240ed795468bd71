package proto

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the seed corpora in testdata/fuzz")

// seed is one seed corpus entry: its file name and the fuzz arguments.
type seed struct {
	name string
	args []any // []byte or uint16
}

// fuzzCfg packs a parser configuration into the uint16 argument of
// FuzzPDUHeader: bit 0 host role, bit 1 negotiated, bit 2 header digest,
// bit 3 data digest, bits 8-12 PDA.
func fuzzCfg(host, neg bool, d Digest, pda uint8) uint16 {
	c := uint16(d&3)<<2 | uint16(pda&MaxPDA)<<8
	if host {
		c |= 1
	}
	if neg {
		c |= 2
	}
	return c
}

func fuzzParser(t testing.TB, cfg uint16) (*Parser, Framing) {
	role := RoleController
	if cfg&1 != 0 {
		role = RoleHost
	}
	p, err := NewParser(ParserOptions{Role: role, MaxInCapsuleData: 8192, MaxH2CData: 64 << 10,
		RequestedDigests: DigestHeader | DigestData, MaxC2HData: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f := Framing{Digests: Digest(cfg>>2) & 3, PDA: uint8(cfg>>8) & MaxPDA}
	if cfg&2 != 0 {
		if err := p.Negotiated(f.Digests, f.PDA); err != nil {
			t.Fatal(err)
		}
	}
	return p, f
}

// seeds returns the seed corpora: valid encodings of every structure the
// fuzz targets decode, built with the encoders under test.
func seeds(t testing.TB) map[string][]seed {
	out := map[string][]seed{}
	enc := func(e interface{ Encode([]byte) error }, n int) []byte {
		b := make([]byte, n)
		if err := e.Encode(b); err != nil {
			t.Fatal(err)
		}
		return b
	}

	// FuzzSQE.
	sqes := map[string]func(*SQE) error{
		"read-tcp": func(s *SQE) error {
			return s.PutRW(&RWCmd{Opcode: IORead, CID: 1, NSID: 1, SGL: TCPDataSGL(4096), SLBA: 8, NLB: 8, FUA: true})
		},
		"write-keyed": func(s *SQE) error {
			return s.PutRW(&RWCmd{Opcode: IOWrite, CID: 2, NSID: 1, SGL: KeyedSGL(0x7f0000001000, 1<<20, 0x1234, true), NLB: 256})
		},
		"connect": func(s *SQE) error {
			return s.PutConnect(&ConnectCmd{CID: 3, SGL: InCapsuleSGL(0, 1024), QID: 1, SQSize: 127, KATO: 0})
		},
		"property-get": func(s *SQE) error {
			s.PutPropertyGet(&PropertyCmd{CID: 4, Attrib: PropSize8, Offset: PropCAP})
			return nil
		},
		"property-set": func(s *SQE) error {
			s.PutPropertySet(&PropertyCmd{CID: 5, Offset: PropCC, Value: uint64(CCFields{EN: true, IOSQES: 6, IOCQES: 4}.CC())})
			return nil
		},
		"identify": func(s *SQE) error {
			return s.PutIdentify(&IdentifyCmd{CID: 6, SGL: TCPDataSGL(4096), CNS: CNSController})
		},
		"get-log-page": func(s *SQE) error {
			return s.PutGetLogPage(&GetLogPageCmd{CID: 7, SGL: TCPDataSGL(3072), LID: LIDDiscovery, NUMD: 767, Offset: 1024})
		},
		"set-features": func(s *SQE) error {
			return s.PutSetFeatures(&FeaturesCmd{CID: 8, FID: FeatKeepAliveTimer, CDW11: 5000})
		},
		"dsm": func(s *SQE) error {
			return s.PutDSM(&DSMCmd{CID: 9, NSID: 1, SGL: InCapsuleSGL(0, 32), Ranges: 2, Attrs: DSMAttrDeallocate})
		},
		"auth-send": func(s *SQE) error {
			return s.PutAuth(&AuthCmd{CID: 10, SGL: InCapsuleSGL(0, 64), SECP: SECPNVMeAuth, SPSP0: 1, SPSP1: 1, Len: 64}, true)
		},
	}
	for name, put := range sqes {
		var s SQE
		if err := put(&s); err != nil {
			t.Fatal(err)
		}
		out["FuzzSQE"] = append(out["FuzzSQE"], seed{name, []any{enc(&s, SQESize)}})
	}
	out["FuzzSQE"] = append(out["FuzzSQE"], seed{"short", []any{make([]byte, 63)}})

	// FuzzPDUHeader: whole PDUs with the configuration that accepts them.
	pduSeed := func(name string, cfg uint16, build func(b []byte, f Framing) int) {
		_, f := fuzzParser(t, cfg)
		b := make([]byte, 16384)
		n := build(b, f)
		out["FuzzPDUHeader"] = append(out["FuzzPDUHeader"], seed{name, []any{b[:n], cfg}})
	}
	must := func(n int, err error) int {
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	withData := func(b []byte, f Framing, n, dataLen int) int {
		for i := 0; i < dataLen; i++ {
			b[n+i] = byte(i)
		}
		end := n + dataLen
		if f.Digests&DigestData != 0 && dataLen > 0 {
			PutDigest(b[end:], CRC32C(b[n:end]))
			end += DigestLen
		}
		return end
	}
	all := DigestHeader | DigestData
	var read SQE
	_ = read.PutRW(&RWCmd{Opcode: IOWrite, CID: 1, NSID: 1, SGL: InCapsuleSGL(0, 512), NLB: 1})
	pduSeed("icreq", fuzzCfg(false, false, 0, 0), func(b []byte, f Framing) int {
		return must(EncodeICReq(b, &ICReq{HPDA: 0, Digests: all, MaxR2T: 0}))
	})
	pduSeed("icresp", fuzzCfg(true, false, 0, 0), func(b []byte, f Framing) int {
		return must(EncodeICResp(b, &ICResp{CPDA: 0, Digests: all, MaxH2CData: 64 << 10}))
	})
	pduSeed("capsule-cmd-digests", fuzzCfg(false, true, all, 0), func(b []byte, f Framing) int {
		return withData(b, f, must(EncodeCapsuleCmd(b, f, &read, 512)), 512)
	})
	pduSeed("capsule-cmd-aligned", fuzzCfg(false, true, 0, 15), func(b []byte, f Framing) int {
		return withData(b, f, must(EncodeCapsuleCmd(b, f, &read, 512)), 512)
	})
	pduSeed("capsule-resp", fuzzCfg(true, true, DigestHeader, 0), func(b []byte, f Framing) int {
		return must(EncodeCapsuleResp(b, f, &CQE{CID: 1, SQHead: 2, Status: StatusSuccess}))
	})
	pduSeed("h2c-data", fuzzCfg(false, true, all, 15), func(b []byte, f Framing) int {
		return withData(b, f, must(EncodeH2CData(b, f, &DataPDU{CCCID: 1, TTag: 3, DataO: 4096, DataL: 4096, Last: true})), 4096)
	})
	pduSeed("c2h-data-success", fuzzCfg(true, true, 0, 3), func(b []byte, f Framing) int {
		return withData(b, f, must(EncodeC2HData(b, f, &DataPDU{CCCID: 1, DataL: 512, Last: true, Success: true})), 512)
	})
	pduSeed("r2t", fuzzCfg(true, true, DigestHeader, 0), func(b []byte, f Framing) int {
		return must(EncodeR2T(b, f, &R2T{CCCID: 1, TTag: 2, R2TO: 0, R2TL: 8192}))
	})
	pduSeed("h2c-termreq", fuzzCfg(false, true, all, 0), func(b []byte, f Framing) int {
		return must(EncodeTermReq(b, PDUH2CTermReq, FESHeaderDigestError, 0x12345678, make([]byte, 28)))
	})
	pduSeed("c2h-termreq", fuzzCfg(true, false, 0, 0), func(b []byte, f Framing) int {
		return must(EncodeTermReq(b, PDUC2HTermReq, FESUnsupportedParameter, ICOffPDA, make([]byte, 128)))
	})

	// FuzzConnectData.
	cd := ConnectData{HostID: [16]byte{1, 2, 3}, CNTLID: CNTLIDDynamic, SubNQN: "nqn.2016-06.io.spdk:cnode1",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"}
	out["FuzzConnectData"] = append(out["FuzzConnectData"], seed{"admin", []any{enc(&cd, ConnectDataSize)}})
	cd = ConnectData{CNTLID: 1, SubNQN: DiscoveryNQN, HostNQN: ""}
	out["FuzzConnectData"] = append(out["FuzzConnectData"], seed{"discovery", []any{enc(&cd, ConnectDataSize)}})

	// FuzzDiscoveryLog.
	for _, n := range []int{0, 1, 3} {
		b := make([]byte, DiscoveryLogSize(n))
		if err := EncodeDiscoveryLog(b, 0, uint64(n)+5, sampleDiscovery(max(n, 1))[:n]); err != nil {
			t.Fatal(err)
		}
		out["FuzzDiscoveryLog"] = append(out["FuzzDiscoveryLog"], seed{fmt.Sprintf("entries-%d", n), []any{b}})
	}
	return out
}

// corpusFile renders a seed in the format of go test's fuzz corpus files.
func corpusFile(s seed) []byte {
	out := "go test fuzz v1\n"
	for _, a := range s.args {
		switch v := a.(type) {
		case []byte:
			out += fmt.Sprintf("[]byte(%q)\n", v)
		case uint16:
			out += fmt.Sprintf("uint16(%d)\n", v)
		}
	}
	return []byte(out)
}

// TestFuzzSeeds keeps testdata/fuzz in step with the encoders: the seeds
// there must be exactly the valid encodings seeds() builds today. Run with
// -update-seeds after changing an encoder.
func TestFuzzSeeds(t *testing.T) {
	targets := seeds(t)
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, target := range names {
		for _, s := range targets[target] {
			path := filepath.Join("testdata", "fuzz", target, "seed-"+s.name)
			want := corpusFile(s)
			if *updateSeeds {
				mustNoErr(t, os.MkdirAll(filepath.Dir(path), 0o755))
				mustNoErr(t, os.WriteFile(path, want, 0o644))
				continue
			}
			checkSeedValid(t, target, s)
			got, err := os.ReadFile(path)
			if err != nil || string(got) != string(want) {
				t.Errorf("%s is missing or stale (err %v); run go test -run TestFuzzSeeds -update-seeds", path, err)
			}
		}
	}
}

// checkSeedValid makes sure a seed is a valid encoding for its target.
func checkSeedValid(t *testing.T, target string, s seed) {
	data, _ := s.args[0].([]byte)
	var err error
	switch target {
	case "FuzzSQE":
		if s.name == "short" {
			return
		}
		var q SQE
		err = q.Decode(data)
	case "FuzzPDUHeader":
		p, _ := fuzzParser(t, s.args[1].(uint16))
		var h PDUHeader
		var n int
		if n, err = p.Parse(data, &h); err == nil && (n > len(data) || int(h.PLen) != len(data)) {
			err = fmt.Errorf("parsed %d of %d bytes, PLEN %d", n, len(data), h.PLen)
		}
	case "FuzzConnectData":
		var d ConnectData
		err = d.Decode(data)
	case "FuzzDiscoveryLog":
		_, _, err = DecodeDiscoveryLog(data)
	}
	if err != nil {
		t.Errorf("%s seed %s is not valid: %v", target, s.name, err)
	}
}

func addSeeds(f *testing.F, target string) {
	for _, s := range seeds(f)[target] {
		f.Add(s.args...)
	}
}

// FuzzSQE: Decode never panics, fails only on short input and then leaves a
// zero SQE, and Encode reproduces the 64 input bytes. Every typed view
// survives Put and view again.
func FuzzSQE(f *testing.F) {
	addSeeds(f, "FuzzSQE")
	f.Fuzz(func(t *testing.T, data []byte) {
		var s SQE
		err := s.Decode(data)
		if len(data) < SQESize {
			if !errors.Is(err, ErrShortBuffer) || s != (SQE{}) {
				t.Fatalf("short input: err %v s %+v", err, s)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, SQESize)
		mustNoErr(t, s.Encode(out))
		eqBytes(t, "round trip", out, data[:SQESize])

		var d SGL
		var raw [SGLSize]byte
		sgl := s.SGL()
		mustNoErr(t, sgl.Encode(raw[:]))
		mustNoErr(t, d.Decode(raw[:]))
		if d != sgl {
			t.Fatalf("SGL %+v -> %+v", sgl, d)
		}
		var s2 SQE
		rw := s.RW()
		mustNoErr(t, s2.PutRW(&rw))
		if s2.RW() != rw {
			t.Fatalf("RW %+v -> %+v", rw, s2.RW())
		}
		c := s.Connect()
		mustNoErr(t, s2.PutConnect(&c))
		if s2.Connect() != c || s2.FCType() != FCTypeConnect {
			t.Fatalf("Connect %+v", c)
		}
		g := s.GetLogPage()
		mustNoErr(t, s2.PutGetLogPage(&g))
		if s2.GetLogPage() != g {
			t.Fatalf("GetLogPage %+v", g)
		}
		id := s.Identify()
		mustNoErr(t, s2.PutIdentify(&id))
		if s2.Identify() != id {
			t.Fatalf("Identify %+v", id)
		}
		feat := s.Features()
		mustNoErr(t, s2.PutSetFeatures(&feat))
		if got := s2.Features(); got.Save != feat.Save || got.FID != feat.FID || got.CDW11 != feat.CDW11 || got.CDW15 != feat.CDW15 {
			t.Fatalf("Features %+v -> %+v", feat, got)
		}
		dsm := s.DSM()
		mustNoErr(t, s2.PutDSM(&dsm))
		if s2.DSM() != dsm {
			t.Fatalf("DSM %+v", dsm)
		}
		prop := s.Property()
		s2.PutPropertySet(&prop)
		if s2.Property() != prop {
			t.Fatalf("Property %+v", prop)
		}
		auth := s.Auth()
		mustNoErr(t, s2.PutAuth(&auth, true))
		if s2.Auth() != auth {
			t.Fatalf("Auth %+v", auth)
		}
		_ = s.Dir()
	})
}

// FuzzPDUHeader feeds every prefix of the input to the incremental parser:
// it never panics; an error comes with n == 0 and a zero header, names a
// defined FES, and stays the same for longer prefixes; a need beyond the
// prefix comes with a zero header; a success is stable for longer prefixes,
// describes a self-consistent PDU layout, and survives re-encoding.
func FuzzPDUHeader(f *testing.F) {
	addSeeds(f, "FuzzPDUHeader")
	f.Fuzz(func(t *testing.T, data []byte, cfg uint16) {
		p, fr := fuzzParser(t, cfg)
		var h, first PDUHeader
		var firstErr *PDUError
		okAt := -1
		limit := min(len(data), 200)
		for k := 0; k <= len(data); k++ {
			if k > limit && k < len(data) {
				continue
			}
			n, err := p.Parse(data[:k], &h)
			if err != nil {
				var pe *PDUError
				if !errors.As(err, &pe) || n != 0 || h != (PDUHeader{}) {
					t.Fatalf("k %d: err %v with n %d h %+v", k, err, n, h)
				}
				if pe.NoReply != (pe.FES == 0) || pe.FES > FESUnsupportedParameter {
					t.Fatalf("k %d: FES %v NoReply %v", k, pe.FES, pe.NoReply)
				}
				if okAt >= 0 || (firstErr != nil && (pe.FES != firstErr.FES || pe.FEI != firstErr.FEI)) {
					t.Fatalf("k %d: result changed to %v", k, err)
				}
				firstErr = pe
				continue
			}
			if firstErr != nil {
				t.Fatalf("k %d: error %v went away", k, firstErr)
			}
			if n > k {
				if h != (PDUHeader{}) || okAt >= 0 || (k < CommonHeaderLen) != (n == CommonHeaderLen) || n > ICLen+DigestLen {
					t.Fatalf("k %d: need %d with h %+v (ok at %d)", k, n, h, okAt)
				}
				continue
			}
			if okAt < 0 {
				okAt, first = k, h
				checkLayout(t, p, n, &h)
			} else if h != first {
				t.Fatalf("k %d: header changed", k)
			}
		}
		if okAt >= 0 {
			reencode(t, p, fr, &first)
		}
	})
}

func checkLayout(t *testing.T, p *Parser, n int, h *PDUHeader) {
	t.Helper()
	if n != h.HeaderLen || n < CommonHeaderLen || h.Type.C2H() != (p.opts.Role == RoleHost) {
		t.Fatalf("n %d header %+v", n, h)
	}
	dd := 0
	if h.DataDigest {
		dd = DigestLen
		if h.DataLen == 0 {
			t.Fatal("data digest without data")
		}
	}
	switch {
	case h.DataLen > 0:
		if h.DataOffset < h.HeaderLen || uint64(h.DataOffset)+uint64(h.DataLen)+uint64(dd) != uint64(h.PLen) {
			t.Fatalf("data layout %+v", h)
		}
	case h.Type == PDUH2CTermReq || h.Type == PDUC2HTermReq:
		if h.PLen != TermReqHLen {
			t.Fatalf("TermReq layout %+v", h)
		}
	default:
		if h.PLen != uint32(h.HeaderLen) || h.DataOffset != 0 {
			t.Fatalf("no-data layout %+v", h)
		}
	}
}

// reencode writes h again with the package's encoders and parses the result.
func reencode(t *testing.T, p *Parser, fr Framing, h *PDUHeader) {
	t.Helper()
	b := make([]byte, 512)
	var n int
	var err error
	switch h.Type {
	case PDUICReq:
		n, err = EncodeICReq(b, &ICReq{PFV: h.PFV, HPDA: h.PDA, Digests: h.Digests, MaxR2T: h.MaxData})
	case PDUICResp:
		n, err = EncodeICResp(b, &ICResp{PFV: h.PFV, CPDA: h.PDA, Digests: h.Digests, MaxH2CData: h.MaxData})
	case PDUH2CTermReq, PDUC2HTermReq:
		n, err = EncodeTermReq(b, h.Type, h.FES, h.FEI, make([]byte, h.DataLen))
	case PDUCapsuleCmd:
		n, err = EncodeCapsuleCmd(b, fr, &h.SQE, h.DataLen)
	case PDUCapsuleResp:
		n, err = EncodeCapsuleResp(b, fr, &h.CQE)
	case PDUH2CData:
		n, err = EncodeH2CData(b, fr, &DataPDU{CCCID: h.CCCID, TTag: h.TTag, DataO: h.Offset, DataL: h.Length, Last: h.Last()})
	case PDUC2HData:
		n, err = EncodeC2HData(b, fr, &DataPDU{CCCID: h.CCCID, DataO: h.Offset, DataL: h.Length, Last: h.Last(), Success: h.Success()})
	case PDUR2T:
		n, err = EncodeR2T(b, fr, &R2T{CCCID: h.CCCID, TTag: h.TTag, R2TO: h.Offset, R2TL: h.Length})
	}
	if err != nil {
		t.Fatalf("re-encode %v: %v", h.Type, err)
	}
	var g PDUHeader
	m, err := p.Parse(b[:n], &g)
	if err != nil || m != n && h.DataLen == 0 {
		t.Fatalf("re-parse %v: n %d m %d err %v", h.Type, n, m, err)
	}
	same := g.Type == h.Type && g.HLen == h.HLen && g.DataLen == h.DataLen && g.DataDigest == h.DataDigest &&
		g.PFV == h.PFV && g.PDA == h.PDA && g.Digests == h.Digests && g.MaxData == h.MaxData &&
		g.FES == h.FES && g.FEI == h.FEI && g.SQE == h.SQE && g.CQE == h.CQE &&
		g.CCCID == h.CCCID && g.TTag == h.TTag && g.Offset == h.Offset && g.Length == h.Length &&
		g.Last() == h.Last() && g.Success() == h.Success()
	if !same {
		t.Fatalf("re-encoded %v differs:\n%+v\n%+v", h.Type, g, *h)
	}
}

// FuzzConnectData: Decode never panics, errors leave a zero value and name
// an NQN field by offset, and a decoded value encodes and decodes to itself.
func FuzzConnectData(f *testing.F) {
	addSeeds(f, "FuzzConnectData")
	f.Fuzz(func(t *testing.T, data []byte) {
		var d ConnectData
		if err := d.Decode(data); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || d != (ConnectData{}) {
				t.Fatalf("err %v d %+v", err, d)
			}
			if errors.Is(err, ErrInvalidField) && fe.Offset != ConnectDataOffSubNQN && fe.Offset != ConnectDataOffHostNQN {
				t.Fatalf("offset %d", fe.Offset)
			}
			return
		}
		b := make([]byte, ConnectDataSize)
		mustNoErr(t, d.Encode(b))
		var e ConnectData
		mustNoErr(t, e.Decode(b))
		if e != d {
			t.Fatalf("round trip %+v -> %+v", d, e)
		}
	})
}

// FuzzDiscoveryLog: DecodeDiscoveryLog never panics and fails with zero
// results; a decoded log re-encodes to a log that decodes the same, and any
// window of the encoding equals the slice of the whole.
func FuzzDiscoveryLog(f *testing.F) {
	addSeeds(f, "FuzzDiscoveryLog")
	f.Fuzz(func(t *testing.T, data []byte) {
		h, es, err := DecodeDiscoveryLog(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || h != (DiscoveryLogHeader{}) || es != nil {
				t.Fatalf("err %v with h %+v, %d entries", err, h, len(es))
			}
			return
		}
		if uint64(len(es)) != h.NumRec {
			t.Fatalf("%d entries for NUMREC %d", len(es), h.NumRec)
		}
		full := make([]byte, DiscoveryLogSize(len(es)))
		mustNoErr(t, EncodeDiscoveryLog(full, 0, h.GenCtr, es))
		h2, es2, err := DecodeDiscoveryLog(full)
		mustNoErr(t, err)
		if h2.GenCtr != h.GenCtr || h2.NumRec != h.NumRec || len(es2) != len(es) {
			t.Fatalf("header %+v -> %+v", h, h2)
		}
		for i := range es {
			if es[i] != es2[i] {
				t.Fatalf("entry %d: %+v -> %+v", i, es[i], es2[i])
			}
		}
		off := uint64(len(data)*7919) % (uint64(len(full)) + 64)
		win := make([]byte, len(data)%3000+1)
		mustNoErr(t, EncodeDiscoveryLog(win, off, h.GenCtr, es))
		want := make([]byte, len(win))
		if off < uint64(len(full)) {
			copy(want, full[off:])
		}
		eqBytes(t, "window", win, want)
	})
}
