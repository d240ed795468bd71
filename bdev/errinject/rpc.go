package errinject

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// RegisterRPC registers bdev_error_create, bdev_error_delete,
// bdev_error_inject_error and bdev_error_resume_pending on s. It uses
// reg's error module, registering one (for Examine) if reg has none.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	m := moduleFor(reg)

	s.Register("bdev_error_create", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			BaseName string `json:"base_name" rpc:"required"`
			UUID     string `json:"uuid"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		u, err := bdev.ParseOptionalUUID(req.UUID)
		if err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		if err := m.Create(req.BaseName, u); err != nil {
			return nil, bdev.RPCError(err)
		}
		return true, nil
	})

	s.Register("bdev_error_delete", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, ModuleName)
	})

	s.Register("bdev_error_inject_error", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		req := struct {
			Name          string `json:"name" rpc:"required"`
			IOType        string `json:"io_type" rpc:"required"`
			ErrorType     string `json:"error_type" rpc:"required"`
			NVMeSCT       uint32 `json:"nvme_sct"`
			NVMeSC        uint32 `json:"nvme_sc"`
			Num           uint32 `json:"num"`
			QueueDepth    uint64 `json:"queue_depth"`
			CorruptOffset uint64 `json:"corrupt_offset"`
			CorruptValue  uint8  `json:"corrupt_value"`
		}{Num: 1}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		et, ok := ParseErrorType(req.ErrorType)
		if !ok {
			return nil, rpc.DecodeFailed(errors.New("error_type: unknown value " + req.ErrorType))
		}
		var t bdev.IOType
		switch req.IOType {
		case "read", "write", "flush", "unmap":
			t, _ = bdev.ParseIOType(req.IOType)
		case "all", "clear":
		default:
			return nil, rpc.DecodeFailed(errors.New("io_type: unknown value " + req.IOType))
		}
		if (et == ErrorNVMeFailure) == (req.NVMeSCT == 0 && req.NVMeSC == 0) {
			return nil, rpc.Errorf(-int(syscall.EINVAL), "nvme_sct or nvme_sc should be specified for NVMe error injection")
		}
		inj := Injection{Type: et, Num: req.Num, QueueDepth: req.QueueDepth, CorruptOffset: req.CorruptOffset,
			CorruptValue: req.CorruptValue, NVMeSCT: req.NVMeSCT, NVMeSC: req.NVMeSC}
		if err := inj.validate(); err != nil {
			return nil, rpc.Errno(syscall.EINVAL).WithCause(err)
		}
		d, err := m.Lookup(req.Name)
		if err != nil {
			return nil, rpc.Errno(syscall.ENODEV).WithCause(err)
		}
		switch req.IOType {
		case "all":
			err = d.InjectAll(inj)
		case "clear":
			d.Clear()
		default:
			err = d.Inject(t, inj)
		}
		if err != nil {
			return nil, rpc.Errno(syscall.EINVAL).WithCause(err)
		}
		return true, nil
	})

	s.Register("bdev_error_resume_pending", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name" rpc:"required"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		d, err := m.Lookup(req.Name)
		if err != nil {
			return nil, rpc.Errno(syscall.ENODEV).WithCause(err)
		}
		d.ResumePending()
		return true, nil
	})
}
