package bdev

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"syscall"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"hyperpath/reactor"
	"hyperpath/rpc"
)

// spdkIOTypes is SPDK's supported_io_types key order and our IOType for
// each (-1: never supported here).
var spdkIOTypes = []struct {
	name string
	t    int
}{
	{"read", int(IORead)}, {"write", int(IOWrite)}, {"unmap", int(IOUnmap)}, {"flush", int(IOFlush)},
	{"reset", int(IOReset)}, {"nvme_admin", -1}, {"nvme_io", -1}, {"nvme_io_md", -1},
	{"write_zeroes", int(IOWriteZeroes)}, {"zcopy", -1}, {"get_zone_info", -1}, {"zone_management", -1},
	{"zone_append", -1}, {"compare", int(IOCompare)}, {"compare_and_write", -1}, {"abort", -1},
	{"seek_hole", -1}, {"seek_data", -1}, {"copy", -1}, {"nvme_iov_md", -1}, {"nvme_nssr", -1},
	{"write_uncorrectable", -1},
}

// Describe returns the bdev as bdev_get_bdevs reports it, in SPDK's key
// order.
func (b *Bdev) Describe() Ordered {
	info := &b.info
	aliases := info.Aliases
	if aliases == nil {
		aliases = []string{}
	}
	q := b.QoS()
	io := make(Ordered, 0, len(spdkIOTypes))
	for _, t := range spdkIOTypes {
		io = append(io, KV{Key: t.name, Value: t.t >= 0 && b.dev.Supports(IOType(t.t))})
	}
	o := Obj(
		"name", info.Name,
		"aliases", aliases,
		"product_name", info.ProductName,
		"block_size", info.BlockSize,
		"num_blocks", info.NumBlocks,
		"preferred_write_alignment", 0,
		"preferred_write_granularity", 0,
		"optimal_write_size", 0,
		"preferred_unmap_alignment", 0,
		"preferred_unmap_granularity", 0,
		"uuid", info.UUID.String(),
		"assigned_rate_limits", Obj(
			"rw_ios_per_sec", q.RWIOPerSec,
			"rw_mbytes_per_sec", q.RWMBytesPerSec,
			"r_mbytes_per_sec", q.RMBytesPerSec,
			"w_mbytes_per_sec", q.WMBytesPerSec,
		),
	)
	claimed := b.Claimed()
	o = append(o, KV{Key: "claimed", Value: claimed != ""})
	if claimed != "" {
		o = append(o, KV{Key: "claim_type", Value: "exclusive_write"})
	}
	o = append(o, KV{Key: "zoned", Value: false}, KV{Key: "supported_io_types", Value: io})
	var ds any = Obj()
	if d, ok := b.dev.(DriverSpecific); ok {
		ds = d.DriverSpecific()
	}
	o = append(o, KV{Key: "driver_specific", Value: ds})
	return o
}

// rpcError maps bdev layer errors onto SPDK's -errno replies.
func rpcError(err error) error {
	var en syscall.Errno
	switch {
	case errors.As(err, &en):
		return rpc.Errno(en)
	case errors.Is(err, ErrNotFound):
		return rpc.Errno(syscall.ENODEV)
	case errors.Is(err, ErrExists):
		return rpc.Errno(syscall.EEXIST)
	case errors.Is(err, ErrClaimed), errors.Is(err, ErrRemoving):
		return rpc.Errno(syscall.EBUSY)
	}
	return rpc.Errno(syscall.EINVAL)
}

// RPCError is rpcError for modules: it maps a control-plane error to the
// reply SPDK would send.
func RPCError(err error) error { return rpcError(err) }

// Options set through bdev_set_options, kept for save_config.
type setOptions struct {
	BdevIOPoolSize      uint32 `json:"bdev_io_pool_size"`
	BdevIOCacheSize     uint32 `json:"bdev_io_cache_size"`
	BdevAutoExamine     bool   `json:"bdev_auto_examine"`
	IOBufSmallCacheSize uint32 `json:"iobuf_small_cache_size"`
	IOBufLargeCacheSize uint32 `json:"iobuf_large_cache_size"`
}

// rpcState is what the generic bdev RPCs remember for save_config.
type rpcState struct {
	mu      sync.Mutex
	opts    setOptions
	histOpc map[string]string
}

// RegisterRPC registers the generic bdev RPCs on s: bdev_set_options,
// bdev_get_bdevs, bdev_get_iostat, bdev_reset_iostat, bdev_enable_histogram,
// bdev_get_histogram, bdev_set_qos_limit, bdev_examine and
// bdev_wait_for_examine. It returns the writer for the "bdev" subsystem's
// save_config section: bdev_set_options, every device's creation call
// (ConfigWriter), QoS limits and histograms, then bdev_wait_for_examine.
func RegisterRPC(s *rpc.Server, g *Registry) func() []rpc.ConfigEntry {
	st := &rpcState{histOpc: map[string]string{}}
	st.opts = setOptions{BdevIOPoolSize: 65535, BdevIOCacheSize: 256, BdevAutoExamine: true,
		IOBufSmallCacheSize: 128, IOBufLargeCacheSize: 16}

	s.Register("bdev_set_options", rpc.Startup, func(_ context.Context, p json.RawMessage) (any, error) {
		st.mu.Lock()
		o := st.opts
		st.mu.Unlock()
		if err := rpc.Decode(p, &o); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		if o.BdevIOCacheSize == 0 || o.BdevIOPoolSize < o.BdevIOCacheSize {
			return nil, rpc.Errno(syscall.EINVAL)
		}
		st.mu.Lock()
		st.opts = o
		st.mu.Unlock()
		g.SetIOPoolSize(max(1024, int(o.BdevIOCacheSize)))
		return true, nil
	})

	s.Register("bdev_get_bdevs", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name    string `json:"name"`
			Timeout uint64 `json:"timeout"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		out := []Ordered{}
		if req.Name != "" {
			b, err := g.Get(req.Name)
			if err != nil {
				return nil, rpc.Errno(syscall.ENODEV)
			}
			return append(out, b.Describe()), nil
		}
		for _, b := range g.List() {
			out = append(out, b.Describe())
		}
		return out, nil
	})

	getIostat := func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Names      []string `json:"names"`
			Name       string   `json:"name"`
			PerChannel bool     `json:"per_channel"`
			ResetMode  string   `json:"reset_mode"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		mode, ok := ParseResetMode(req.ResetMode)
		if !ok {
			return nil, rpc.DecodeFailed(errors.New("bad reset_mode"))
		}
		names := req.Names
		if req.Name != "" {
			names = append(names, req.Name)
		}
		var bdevs []*Bdev
		if len(names) == 0 {
			bdevs = g.List()
		} else {
			for _, n := range names {
				b, err := g.Get(n)
				if err != nil {
					return nil, rpc.Errno(syscall.ENODEV)
				}
				bdevs = append(bdevs, b)
			}
		}
		if req.PerChannel && len(bdevs) != 1 {
			return nil, rpc.Errno(syscall.EINVAL)
		}
		head := Obj("tick_rate", reactor.TickRate(), "ticks", uint64(reactor.Now()))
		if req.PerChannel {
			_, per := bdevs[0].Stats(mode)
			chans := []Ordered{}
			for _, c := range per {
				o := Obj("thread_id", c.Reactor.ID()+1)
				chans = append(chans, append(o, c.Stat.JSONFields()...))
			}
			return append(head, KV{Key: "name", Value: bdevs[0].Name()}, KV{Key: "channels", Value: chans}), nil
		}
		list := []Ordered{}
		for _, b := range bdevs {
			total, _ := b.Stats(mode)
			list = append(list, append(Obj("name", b.Name()), total.JSONFields()...))
		}
		return append(head, KV{Key: "bdevs", Value: list}), nil
	}
	s.Register("bdev_get_iostat", rpc.Runtime, getIostat)

	s.Register("bdev_reset_iostat", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name"`
			Mode string `json:"mode"`
		}
		req.Mode = "all"
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		mode, ok := ParseResetMode(req.Mode)
		if !ok {
			return nil, rpc.DecodeFailed(errors.New("bad mode"))
		}
		bdevs := g.List()
		if req.Name != "" {
			b, err := g.Get(req.Name)
			if err != nil {
				return nil, rpc.Errno(syscall.ENODEV)
			}
			bdevs = []*Bdev{b}
		}
		for _, b := range bdevs {
			b.Stats(mode)
		}
		return true, nil
	})

	s.Register("bdev_enable_histogram", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		req := struct {
			Name        string `json:"name" rpc:"required"`
			Enable      bool   `json:"enable" rpc:"required"`
			Opc         string `json:"opc"`
			Granularity uint8  `json:"granularity"`
			MinNsec     uint64 `json:"min_nsec"`
			MaxNsec     uint64 `json:"max_nsec"`
		}{Granularity: DefaultHistGranularity, MinNsec: DefaultHistMinNs, MaxNsec: DefaultHistMaxNs}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		b, err := g.Get(req.Name)
		if err != nil {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		if !req.Enable {
			b.EnableHistogram(nil)
			st.mu.Lock()
			delete(st.histOpc, b.Name())
			st.mu.Unlock()
			return true, nil
		}
		opc := -1
		if req.Opc != "" {
			t, ok := ParseIOType(req.Opc)
			if !ok {
				return nil, rpc.Internal("Invalid Io type")
			}
			opc = int(t)
		}
		hs, ok := NewHistogramSettings(opc, uint32(req.Granularity), req.MinNsec, req.MaxNsec)
		if !ok {
			return nil, rpc.Errno(syscall.EINVAL)
		}
		b.EnableHistogram(hs)
		st.mu.Lock()
		st.histOpc[b.Name()] = req.Opc
		st.mu.Unlock()
		return true, nil
	})

	s.Register("bdev_get_histogram", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name" rpc:"required"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		b, err := g.Get(req.Name)
		if err != nil {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		h := b.Histogram()
		if h == nil {
			return nil, rpc.Internal("Bad address")
		}
		return h.SPDKEncoding(), nil
	})

	// bdev_get_histogram_hdr is ours: the HdrHistogram (nanoseconds) behind
	// bdev_get_histogram, for percentile dumps (hpctl bdev_histogram_dump
	// writes it as an .hgrm file). opc limits it to one IO type.
	s.Register("bdev_get_histogram_hdr", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name" rpc:"required"`
			Opc  string `json:"opc"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		b, err := g.Get(req.Name)
		if err != nil {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		h := b.Histogram()
		if h == nil {
			return nil, rpc.Internal("histogram not enabled: call bdev_enable_histogram first")
		}
		m := h.Merged()
		if req.Opc != "" {
			t, ok := ParseIOType(req.Opc)
			if !ok {
				return nil, rpc.Internal("Invalid Io type")
			}
			if m = h.ByType[t]; m == nil {
				m = hdr.New(1, hdrMaxNs, 3)
			}
		}
		enc, err := m.Encode(hdr.V2CompressedEncodingCookieBase)
		if err != nil {
			return nil, rpc.Internal(err.Error())
		}
		return Obj("unit", "ns", "total_count", m.TotalCount(), "histogram", string(enc)), nil
	})

	s.Register("bdev_set_qos_limit", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name           string  `json:"name" rpc:"required"`
			RWIOsPerSec    *uint64 `json:"rw_ios_per_sec"`
			RWMBytesPerSec *uint64 `json:"rw_mbytes_per_sec"`
			RMBytesPerSec  *uint64 `json:"r_mbytes_per_sec"`
			WMBytesPerSec  *uint64 `json:"w_mbytes_per_sec"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		b, err := g.Get(req.Name)
		if err != nil {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		if req.RWIOsPerSec == nil && req.RWMBytesPerSec == nil && req.RMBytesPerSec == nil && req.WMBytesPerSec == nil {
			return nil, rpc.Errorf(-int(syscall.EINVAL), "No rate limits specified")
		}
		l := b.QoS()
		set := func(dst *uint64, v *uint64) {
			if v != nil {
				*dst = *v
			}
		}
		set(&l.RWIOPerSec, req.RWIOsPerSec)
		set(&l.RWMBytesPerSec, req.RWMBytesPerSec)
		set(&l.RMBytesPerSec, req.RMBytesPerSec)
		set(&l.WMBytesPerSec, req.WMBytesPerSec)
		if err := b.SetQoS(l); err != nil {
			return nil, rpc.InvalidParams("Failed to configure rate limit: " + err.Error())
		}
		return true, nil
	})

	s.Register("bdev_examine", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name" rpc:"required"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		if _, err := g.Get(req.Name); err != nil {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		return true, nil
	})

	s.Register("bdev_wait_for_examine", rpc.Startup|rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		if err := rpc.NoParams(p, "bdev_wait_for_examine requires no parameters"); err != nil {
			return nil, err
		}
		return true, nil // examine runs synchronously inside Register
	})

	return func() []rpc.ConfigEntry {
		st.mu.Lock()
		o := st.opts
		hist := map[string]string{}
		for k, v := range st.histOpc {
			hist[k] = v
		}
		st.mu.Unlock()
		out := []rpc.ConfigEntry{{Method: "bdev_set_options", Params: Obj(
			"bdev_io_pool_size", o.BdevIOPoolSize, "bdev_io_cache_size", o.BdevIOCacheSize,
			"bdev_auto_examine", o.BdevAutoExamine, "iobuf_small_cache_size", o.IOBufSmallCacheSize,
			"iobuf_large_cache_size", o.IOBufLargeCacheSize)}}
		var tail []rpc.ConfigEntry
		for _, b := range g.List() {
			if cw, ok := b.dev.(ConfigWriter); ok {
				m, p := cw.ConfigEntry()
				if m != "" {
					out = append(out, rpc.ConfigEntry{Method: m, Params: p})
				}
			}
			if q := b.QoS(); q != (QoSLimits{}) {
				tail = append(tail, rpc.ConfigEntry{Method: "bdev_set_qos_limit", Params: Obj(
					"name", b.Name(), "rw_ios_per_sec", q.RWIOPerSec, "rw_mbytes_per_sec", q.RWMBytesPerSec,
					"r_mbytes_per_sec", q.RMBytesPerSec, "w_mbytes_per_sec", q.WMBytesPerSec)})
			}
			if opc, ok := hist[b.Name()]; ok && b.HistogramSettings() != nil {
				p := Obj("name", b.Name(), "enable", true)
				if opc != "" {
					p = append(p, KV{Key: "opc", Value: opc})
				}
				tail = append(tail, rpc.ConfigEntry{Method: "bdev_enable_histogram", Params: p})
			}
		}
		out = append(out, tail...)
		return append(out, rpc.ConfigEntry{Method: "bdev_wait_for_examine"})
	}
}

// DeleteRPC serves a module's bdev_*_delete: params {"name"}; it
// unregisters the named bdev if module owns it (-19 otherwise), refuses a
// claimed one (-16), and replies once the device is destroyed.
func DeleteRPC(g *Registry, p json.RawMessage, module string) (any, error) {
	var req struct {
		Name string `json:"name" rpc:"required"`
	}
	if err := rpc.Decode(p, &req); err != nil {
		return nil, rpc.DecodeFailed(err)
	}
	b, err := g.Get(req.Name)
	if err != nil || b.Info().Module != module {
		return nil, rpc.Errno(syscall.ENODEV)
	}
	done := make(chan struct{})
	if err := g.Unregister(b.Name(), func(error) { close(done) }); err != nil {
		return nil, rpcError(err)
	}
	<-done
	return true, nil
}
