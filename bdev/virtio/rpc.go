package virtio

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// RegisterRPC registers bdev_virtio_attach_controller,
// bdev_virtio_detach_controller and bdev_virtio_get_controllers on s,
// creating Disks in reg.
//
// Attach and detach follow SPDK's bdev_virtio_rpc.c: params that do not
// decode get -32603 "spdk_json_decode_object failed"; a bad trtype or
// dev_type gets -22 "Invalid trtype 'x'" / "Invalid dev_type 'x'"; the
// transports and device types SPDK knows but we do not serve (pci,
// vfio-user, scsi) get -95; any failure to create the device (name taken,
// no back end, failed handshake) gets -22 "Invalid argument", as SPDK's
// rc = bdev ? 0 : -EINVAL does, with the cause in the debug log. Attach
// returns the array of bdev names (for blk: the given name). Detach of a
// name that is not a virtio bdev gets -19 "No such device".
//
// bdev_virtio_get_controllers is ours (SPDK has no such method): params
// {"name"} optional; it lists each controller with its connection state
// and data-path counters, -19 for an unknown name.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	s.Register("bdev_virtio_attach_controller", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name    string `json:"name" rpc:"required"`
			TrType  string `json:"trtype" rpc:"required"`
			TrAddr  string `json:"traddr" rpc:"required"`
			DevType string `json:"dev_type" rpc:"required"`
			VQCount uint32 `json:"vq_count"`
			VQSize  uint32 `json:"vq_size"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		switch req.TrType {
		case "user":
		case "pci", "vfio-user":
			return nil, rpc.Errorf(-int(syscall.EOPNOTSUPP), "trtype '%s' is not supported: only 'user' (vhost-user)", req.TrType)
		default:
			return nil, rpc.Errorf(-int(syscall.EINVAL), "Invalid trtype '%s'", req.TrType)
		}
		switch req.DevType {
		case "blk":
		case "scsi":
			return nil, rpc.Errorf(-int(syscall.EOPNOTSUPP), "dev_type 'scsi' is not supported: only 'blk'")
		default:
			return nil, rpc.Errorf(-int(syscall.EINVAL), "Invalid dev_type '%s'", req.DevType)
		}
		if req.VQCount > MaxQueueCount || req.VQSize > 1<<16 {
			return nil, rpc.Errno(syscall.EINVAL).WithCause(fmt.Errorf("vq_count %d or vq_size %d out of range", req.VQCount, req.VQSize))
		}
		o := Options{Name: req.Name, SocketPath: req.TrAddr, QueueCount: int(req.VQCount), QueueSize: int(req.VQSize)}
		if err := Attach(reg, o); err != nil {
			return nil, rpc.Errno(syscall.EINVAL).WithCause(err)
		}
		return []string{req.Name}, nil
	})
	s.Register("bdev_virtio_detach_controller", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, ModuleName)
	})
	s.Register("bdev_virtio_get_controllers", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		out := []bdev.Ordered{}
		for _, b := range reg.List() {
			d, ok := b.Device().(*Disk)
			if !ok || (req.Name != "" && b.Name() != req.Name) {
				continue
			}
			out = append(out, d.describe())
		}
		if req.Name != "" && len(out) == 0 {
			return nil, rpc.Errno(syscall.ENODEV)
		}
		return out, nil
	})
}

// Attach creates the device and registers it in reg. A taken name fails
// before the socket is touched.
func Attach(reg *bdev.Registry, o Options) error {
	if _, err := reg.Get(o.Name); err == nil {
		return fmt.Errorf("virtio bdev %q: %w", o.Name, bdev.ErrExists)
	}
	d, err := New(o)
	if err != nil {
		return err
	}
	if _, err := reg.Register(d); err != nil {
		d.Destroy()
		return err
	}
	return nil
}

// describe is one controller as bdev_virtio_get_controllers reports it.
func (d *Disk) describe() bdev.Ordered {
	st := d.Stats()
	return bdev.Obj(
		"name", d.opts.Name,
		"dev_type", "blk",
		"trtype", "user",
		"traddr", d.opts.SocketPath,
		"vq_count", d.opts.QueueCount,
		"vq_size", d.opts.QueueSize,
		"state", d.State().String(),
		"last_error", d.LastError(),
		"reconnects", d.Reconnects(),
		"bdevs", []string{d.opts.Name},
		"features", fmt.Sprintf("0x%x", d.acked),
		"block_size", d.info.BlockSize,
		"num_blocks", d.info.NumBlocks,
		"max_transfer_blocks", d.info.MaxTransferBlocks,
		"seg_max", d.segMax,
		"size_max", d.cfg.SizeMax,
		"hugepages", d.hugepages(),
		"shared_bytes", d.sharedBytes(),
		"zero_copy_ios", st.ZeroCopyIOs,
		"bounced_ios", st.BouncedIOs,
		"bounced_bytes", st.BouncedBytes,
		"kicks", st.Kicks,
		"requests", st.Requests,
	)
}
