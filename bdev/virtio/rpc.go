package virtio

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"time"

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
// Attach also takes bdev_nvme_attach_controller's reconnect parameters,
// ctrlr_loss_timeout_sec (-1: forever, 0: no reconnect, the default),
// reconnect_delay_sec and fast_io_fail_timeout_sec (see Options), checked
// with SPDK's rules; a combination SPDK refuses gets -22 with a message
// naming the rule (SPDK sends "Invalid argument" and logs the rule).
// save_config writes them only when they are not zero.
//
// bdev_virtio_get_controllers is ours (SPDK has no such method): params
// {"name"} optional; it lists each controller with its connection state
// and data-path counters, -19 for an unknown name.
//
// Detach of a device that is reconnecting fails its held IO within
// removalPoll, so that the bdev's users can close it.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	s.Register("bdev_virtio_attach_controller", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		o, err := parseAttach(p)
		if err != nil {
			return nil, err
		}
		if err := Attach(reg, o); err != nil {
			return nil, rpc.Errno(syscall.EINVAL).WithCause(err)
		}
		return []string{o.Name}, nil
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
	d.reg = reg // before Register: the monitor reads it after bdev is set
	b, err := reg.Register(d)
	if err != nil {
		d.Destroy()
		return err
	}
	d.bdev.Store(b)
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
		"ctrlr_loss_timeout_sec", attachSec(d.opts.CtrlrLossTimeout),
		"reconnect_delay_sec", attachSec(d.opts.ReconnectDelay),
		"fast_io_fail_timeout_sec", attachSec(d.opts.FastIOFailTimeout),
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
		"held_ios", st.HeldIOs,
	)
}

// attachSec is a reconnect option as the RPC spells it: seconds, rounded
// up, -1 for Forever.
func attachSec(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return ceilSec(d)
}
