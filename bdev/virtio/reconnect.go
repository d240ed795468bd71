package virtio

import (
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"time"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// ErrBadReconnect is wrapped by every rejection of the reconnect
// parameters (CtrlrLossTimeout, ReconnectDelay, FastIOFailTimeout).
var ErrBadReconnect = errors.New("invalid reconnect parameters")

// checkReconnect applies SPDK's rules for bdev_nvme_attach_controller's
// ctrlr_loss_timeout_sec, reconnect_delay_sec and fast_io_fail_timeout_sec
// to durations (loss < 0 is Forever):
//
//   - loss 0 (no reconnect): delay and fast must be 0 too;
//   - otherwise delay must be positive, and at most a positive loss;
//   - a non-zero fast lies between delay and a positive loss.
//
// The messages name the RPC parameters, which is where users meet them.
func checkReconnect(loss, delay, fast time.Duration) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadReconnect, fmt.Sprintf(format, args...))
	}
	switch {
	case delay < 0:
		return bad("reconnect_delay_sec %v is negative", delay)
	case fast < 0:
		return bad("fast_io_fail_timeout_sec %v is negative", fast)
	case loss == 0:
		if delay != 0 || fast != 0 {
			return bad("reconnect_delay_sec (%v) and fast_io_fail_timeout_sec (%v) must be 0 when ctrlr_loss_timeout_sec is 0 (no reconnect)", delay, fast)
		}
	case delay == 0:
		return bad("reconnect_delay_sec must be non-zero when ctrlr_loss_timeout_sec is not 0")
	case loss > 0 && delay > loss:
		return bad("reconnect_delay_sec (%v) must not exceed ctrlr_loss_timeout_sec (%v)", delay, loss)
	case fast != 0 && fast < delay:
		return bad("fast_io_fail_timeout_sec (%v) must not be less than reconnect_delay_sec (%v)", fast, delay)
	case loss > 0 && fast > loss:
		return bad("fast_io_fail_timeout_sec (%v) must not exceed ctrlr_loss_timeout_sec (%v)", fast, loss)
	}
	return nil
}

// attachParams are bdev_virtio_attach_controller's params: SPDK's, plus
// the three reconnect parameters of bdev_nvme_attach_controller (SPDK's
// virtio RPC has none). Their zero values are the defaults (no
// reconnect), so save_config writes them only when they are not zero.
type attachParams struct {
	Name                 string `json:"name" rpc:"required"`
	TrType               string `json:"trtype" rpc:"required"`
	TrAddr               string `json:"traddr" rpc:"required"`
	DevType              string `json:"dev_type" rpc:"required"`
	VQCount              uint32 `json:"vq_count"`
	VQSize               uint32 `json:"vq_size"`
	CtrlrLossTimeoutSec  int32  `json:"ctrlr_loss_timeout_sec"`
	ReconnectDelaySec    uint32 `json:"reconnect_delay_sec"`
	FastIOFailTimeoutSec uint32 `json:"fast_io_fail_timeout_sec"`
}

// parseAttach decodes and checks bdev_virtio_attach_controller's params
// into Options (before defaults). On error the Options are zero and the
// error is the *rpc.Error to send: -32603 for params that do not decode,
// -95 for transports and device types we do not serve, -22 with a text
// naming the problem for everything else.
func parseAttach(p json.RawMessage) (Options, error) {
	var req attachParams
	if err := rpc.Decode(p, &req); err != nil {
		return Options{}, rpc.DecodeFailed(err)
	}
	switch req.TrType {
	case "user":
	case "pci", "vfio-user":
		return Options{}, rpc.Errorf(-int(syscall.EOPNOTSUPP), "trtype '%s' is not supported: only 'user' (vhost-user)", req.TrType)
	default:
		return Options{}, rpc.Errorf(-int(syscall.EINVAL), "Invalid trtype '%s'", req.TrType)
	}
	switch req.DevType {
	case "blk":
	case "scsi":
		return Options{}, rpc.Errorf(-int(syscall.EOPNOTSUPP), "dev_type 'scsi' is not supported: only 'blk'")
	default:
		return Options{}, rpc.Errorf(-int(syscall.EINVAL), "Invalid dev_type '%s'", req.DevType)
	}
	if req.VQCount > MaxQueueCount || req.VQSize > 1<<16 {
		return Options{}, rpc.Errno(syscall.EINVAL).WithCause(fmt.Errorf("vq_count %d or vq_size %d out of range", req.VQCount, req.VQSize))
	}
	if req.CtrlrLossTimeoutSec < -1 {
		return Options{}, rpc.Errorf(-int(syscall.EINVAL), "ctrlr_loss_timeout_sec %d: must be -1 (reconnect forever), 0 (no reconnect) or a number of seconds", req.CtrlrLossTimeoutSec)
	}
	o := Options{Name: req.Name, SocketPath: req.TrAddr, QueueCount: int(req.VQCount), QueueSize: int(req.VQSize),
		CtrlrLossTimeout:  time.Duration(req.CtrlrLossTimeoutSec) * time.Second,
		ReconnectDelay:    time.Duration(req.ReconnectDelaySec) * time.Second,
		FastIOFailTimeout: time.Duration(req.FastIOFailTimeoutSec) * time.Second,
	}
	if req.CtrlrLossTimeoutSec == -1 {
		o.CtrlrLossTimeout = Forever
	}
	if err := checkReconnect(o.CtrlrLossTimeout, o.ReconnectDelay, o.FastIOFailTimeout); err != nil {
		return Options{}, rpc.Errorf(-int(syscall.EINVAL), "%s", err.Error())
	}
	return o, nil
}

// attachEntry is the bdev_virtio_attach_controller call that recreates a
// device with options o (SPDK's virtio-user write_config_json key order,
// then the reconnect parameters, each only when not zero). Durations are
// written in whole seconds, rounded up, which keeps every rule of
// checkReconnect; options that came from the RPC round-trip exactly.
func attachEntry(o *Options) bdev.Ordered {
	kv := []any{"name", o.Name, "dev_type", "blk", "trtype", "user",
		"traddr", o.SocketPath, "vq_count", o.QueueCount, "vq_size", o.QueueSize}
	if o.CtrlrLossTimeout != 0 {
		loss := int64(-1)
		if o.CtrlrLossTimeout > 0 {
			loss = ceilSec(o.CtrlrLossTimeout)
		}
		kv = append(kv, "ctrlr_loss_timeout_sec", loss)
	}
	if o.ReconnectDelay != 0 {
		kv = append(kv, "reconnect_delay_sec", ceilSec(o.ReconnectDelay))
	}
	if o.FastIOFailTimeout != 0 {
		kv = append(kv, "fast_io_fail_timeout_sec", ceilSec(o.FastIOFailTimeout))
	}
	return bdev.Obj(kv...)
}

// ceilSec is d in seconds, rounded up.
func ceilSec(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
