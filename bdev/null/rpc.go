package null

import (
	"context"
	"encoding/json"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// RegisterRPC registers bdev_null_create and bdev_null_delete.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	s.Register("bdev_null_create", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name                      string `json:"name" rpc:"required"`
			BlockSize                 uint32 `json:"block_size" rpc:"required"`
			NumBlocks                 uint64 `json:"num_blocks" rpc:"required"`
			UUID                      string `json:"uuid"`
			PhysicalBlockSize         uint32 `json:"physical_block_size"`
			MDSize                    uint32 `json:"md_size"`
			DIFType                   int32  `json:"dif_type"`
			DIFPIFormat               uint32 `json:"dif_pi_format"`
			DIFIsHeadOfMD             bool   `json:"dif_is_head_of_md"`
			PreferredWriteGranularity uint32 `json:"preferred_write_granularity"`
			PreferredWriteAlignment   uint32 `json:"preferred_write_alignment"`
			OptimalWriteSize          uint32 `json:"optimal_write_size"`
			PreferredUnmapGranularity uint32 `json:"preferred_unmap_granularity"`
			PreferredUnmapAlignment   uint32 `json:"preferred_unmap_alignment"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		if req.MDSize != 0 || req.DIFType != 0 {
			return nil, rpc.Errorf(-int(syscall.EOPNOTSUPP), "metadata and DIF are not supported")
		}
		o := Options{Name: req.Name, BlockSize: req.BlockSize, NumBlocks: req.NumBlocks, PhysicalBlockSize: req.PhysicalBlockSize}
		u, err := bdev.ParseOptionalUUID(req.UUID)
		if err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o.UUID = u
		if _, err := reg.Get(o.Name); err == nil {
			return nil, rpc.Errno(syscall.EEXIST)
		}
		d, err := New(o)
		if err != nil {
			return nil, rpc.Errorf(-int(syscall.EINVAL), "%v", err)
		}
		if _, err := reg.Register(d); err != nil {
			return nil, bdev.RPCError(err)
		}
		return o.Name, nil
	})
	s.Register("bdev_null_delete", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, ModuleName)
	})
}
