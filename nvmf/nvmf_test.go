package nvmf

import (
	"errors"
	"testing"
)

func TestNormalizeListenAddr(t *testing.T) {
	for _, tc := range []struct {
		trtype, adrfam, traddr, trsvcid string
		want                            ListenAddr
		bad                             bool
	}{
		{"tcp", "", "127.0.0.1", "4420", ListenAddr{"TCP", "IPv4", "127.0.0.1", "4420"}, false},
		{"TCP", "ipv4", "127.0.0.1", "04420", ListenAddr{"TCP", "IPv4", "127.0.0.1", "4420"}, false},
		{"tcp", "IPv6", "::1", "4420", ListenAddr{"TCP", "IPv6", "::1", "4420"}, false},
		{"tcp", "", "::1", "4420", ListenAddr{"TCP", "IPv6", "::1", "4420"}, false},
		{"rdma", "ipv4", "10.0.0.1", "4420", ListenAddr{"RDMA", "IPv4", "10.0.0.1", "4420"}, false},
		{"fc", "", "127.0.0.1", "4420", ListenAddr{}, true},
		{"tcp", "ipv6", "127.0.0.1", "4420", ListenAddr{}, true},
		{"tcp", "ipv4", "::1", "4420", ListenAddr{}, true},
		{"tcp", "ib", "127.0.0.1", "4420", ListenAddr{}, true},
		{"tcp", "", "localhost", "4420", ListenAddr{}, true},
		{"tcp", "", "127.0.0.1", "", ListenAddr{}, true},
		{"tcp", "", "127.0.0.1", "65536", ListenAddr{}, true},
		{"tcp", "", "127.0.0.1", "http", ListenAddr{}, true},
	} {
		got, err := NormalizeListenAddr(tc.trtype, tc.adrfam, tc.traddr, tc.trsvcid)
		if tc.bad {
			if !errors.Is(err, ErrBadAddress) {
				t.Errorf("%v: err %v, want ErrBadAddress", tc, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v %v", tc, got, err)
		}
	}
}

func TestTransportOptsValidate(t *testing.T) {
	o := DefaultTransportOpts()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*TransportOpts){
		func(o *TransportOpts) { o.MaxQueueDepth = 1 },
		func(o *TransportOpts) { o.MaxAQDepth = 1 },
		func(o *TransportOpts) { o.MaxIOQPairsPerCtrlr = 0 },
		func(o *TransportOpts) { o.MaxIOSize = 3000 },
		func(o *TransportOpts) { o.MaxIOSize = 32 << 20 },
		func(o *TransportOpts) { o.InCapsuleDataSize = 100 },
		func(o *TransportOpts) { o.InCapsuleDataSize = 1 << 21; o.MaxIOSize = 1 << 22 },
		func(o *TransportOpts) { o.KAS = 0 },
	} {
		o := DefaultTransportOpts()
		mut(&o)
		if o.Validate() == nil {
			t.Errorf("%+v validated", o)
		}
	}
}
