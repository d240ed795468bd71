package passthru

import (
	"context"
	"encoding/json"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// RegisterRPC registers bdev_passthru_create and bdev_passthru_delete on
// s. It uses reg's passthru module, registering one (for Examine) if reg
// has none.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	m := moduleFor(reg)

	s.Register("bdev_passthru_create", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			BaseBdevName string `json:"base_bdev_name" rpc:"required"`
			Name         string `json:"name" rpc:"required"`
			UUID         string `json:"uuid"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o := Options{Name: req.Name, BaseName: req.BaseBdevName}
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

	s.Register("bdev_passthru_delete", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, ModuleName)
	})
}
