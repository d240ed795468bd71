package malloc

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// RegisterRPC registers bdev_malloc_create and bdev_malloc_delete.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	var mu sync.Mutex
	next := 0
	s.Register("bdev_malloc_create", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name              string `json:"name"`
			BlockSize         uint32 `json:"block_size" rpc:"required"`
			NumBlocks         uint64 `json:"num_blocks" rpc:"required"`
			UUID              string `json:"uuid"`
			OptimalIOBoundary uint32 `json:"optimal_io_boundary"`
			MDSize            uint32 `json:"md_size"`
			MDInterleave      bool   `json:"md_interleave"`
			DIFType           int32  `json:"dif_type"`
			DIFIsHeadOfMD     bool   `json:"dif_is_head_of_md"`
			PhysicalBlockSize uint32 `json:"physical_block_size"`
			DIFPIFormat       uint32 `json:"dif_pi_format"`
			NumaID            int32  `json:"numa_id"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		if req.MDSize != 0 || req.DIFType != 0 {
			return nil, rpc.Errorf(-int(syscall.EOPNOTSUPP), "metadata and DIF are not supported")
		}
		o := Options{Name: req.Name, BlockSize: req.BlockSize, NumBlocks: req.NumBlocks,
			PhysicalBlockSize: req.PhysicalBlockSize, OptimalIOBoundary: req.OptimalIOBoundary}
		u, err := bdev.ParseOptionalUUID(req.UUID)
		if err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o.UUID = u
		mu.Lock()
		defer mu.Unlock()
		if o.Name == "" {
			for {
				o.Name = fmt.Sprintf("Malloc%d", next)
				next++
				if _, err := reg.Get(o.Name); err != nil {
					break
				}
			}
		}
		if _, err := reg.Get(o.Name); err == nil {
			return nil, rpc.Errno(syscall.EEXIST)
		}
		d, err := New(o)
		if err != nil {
			return nil, rpc.Errorf(-int(syscall.EINVAL), "%v", err)
		}
		if _, err := reg.Register(d); err != nil {
			d.Destroy()
			return nil, bdev.RPCError(err)
		}
		return o.Name, nil
	})
	s.Register("bdev_malloc_delete", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, ModuleName)
	})
}
