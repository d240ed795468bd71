package delay

import (
	"context"
	"encoding/json"
	"errors"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// RegisterRPC registers bdev_delay_create, bdev_delay_delete and
// bdev_delay_update_latency on s. It uses reg's delay module, registering
// one (for Examine) if reg has none.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	m := moduleFor(reg)

	s.Register("bdev_delay_create", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name            string `json:"name" rpc:"required"`
			BaseBdevName    string `json:"base_bdev_name" rpc:"required"`
			AvgReadLatency  uint64 `json:"avg_read_latency" rpc:"required"`
			P99ReadLatency  uint64 `json:"p99_read_latency" rpc:"required"`
			AvgWriteLatency uint64 `json:"avg_write_latency" rpc:"required"`
			P99WriteLatency uint64 `json:"p99_write_latency" rpc:"required"`
			UUID            string `json:"uuid"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o := Options{Name: req.Name, BaseName: req.BaseBdevName,
			AvgReadUs: req.AvgReadLatency, P99ReadUs: req.P99ReadLatency,
			AvgWriteUs: req.AvgWriteLatency, P99WriteUs: req.P99WriteLatency}
		u, err := bdev.ParseOptionalUUID(req.UUID)
		if err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o.UUID = u
		if err := m.Create(o); err != nil {
			return nil, bdev.RPCError(err)
		}
		return req.Name, nil
	})

	s.Register("bdev_delay_delete", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, ModuleName)
	})

	s.Register("bdev_delay_update_latency", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name        string `json:"delay_bdev_name" rpc:"required"`
			LatencyType string `json:"latency_type" rpc:"required"`
			LatencyUs   uint64 `json:"latency_us" rpc:"required"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		l, ok := ParseLatency(req.LatencyType)
		if !ok {
			return nil, rpc.DecodeFailed(errors.New("latency_type: unknown value " + req.LatencyType))
		}
		d, err := m.Lookup(req.Name)
		if err != nil {
			return nil, rpc.InvalidParams("The requested bdev does not exist.").WithCause(err)
		}
		if err := d.SetLatency(l, req.LatencyUs); err != nil {
			return nil, rpc.InvalidParams(err.Error())
		}
		return true, nil
	})
}
