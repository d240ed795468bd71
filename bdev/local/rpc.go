package local

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// RegisterRPC registers SPDK's bdev_aio_create, bdev_aio_delete,
// bdev_uring_create and bdev_uring_delete on s, creating Disks in reg.
//
// Replies follow SPDK: bdev_aio_create answers -errno with strerror's text
// (-2 "No such file or directory", -17 "File exists", -22 "Invalid
// argument", ...); bdev_uring_create answers every failure with -32603
// "Unable to create URING bdev."; the deletes answer -19 for a name that is
// not a bdev of that module and -16 for a claimed bdev.
func RegisterRPC(s *rpc.Server, reg *bdev.Registry) {
	s.Register("bdev_aio_create", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name      string `json:"name" rpc:"required"`
			Filename  string `json:"filename" rpc:"required"`
			BlockSize uint32 `json:"block_size"`
			ReadOnly  bool   `json:"readonly"`
			Fallocate bool   `json:"fallocate"`
			UUID      string `json:"uuid"`
			NoWait    bool   `json:"nowait"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o := Options{Name: req.Name, Filename: req.Filename, BlockSize: req.BlockSize,
			ReadOnly: req.ReadOnly, Fallocate: req.Fallocate, NoWait: req.NoWait, Flavor: FlavorAIO}
		u, err := bdev.ParseOptionalUUID(req.UUID)
		if err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o.UUID = u
		if err := create(reg, o); err != nil {
			return nil, errnoReply(err)
		}
		return req.Name, nil
	})
	s.Register("bdev_aio_delete", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, FlavorAIO.BdevModule())
	})

	s.Register("bdev_uring_create", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Filename  string `json:"filename" rpc:"required"`
			Name      string `json:"name" rpc:"required"`
			BlockSize uint32 `json:"block_size"`
			UUID      string `json:"uuid"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		// SPDK's uring bdev does reads and writes only; ours also serves
		// flush, unmap and write_zeroes.
		o := Options{Name: req.Name, Filename: req.Filename, BlockSize: req.BlockSize,
			Fallocate: true, Flavor: FlavorURING}
		u, err := bdev.ParseOptionalUUID(req.UUID)
		if err != nil {
			return nil, rpc.DecodeFailed(err)
		}
		o.UUID = u
		if err := create(reg, o); err != nil {
			return nil, rpc.Internal("Unable to create URING bdev.").WithCause(err)
		}
		return req.Name, nil
	})
	s.Register("bdev_uring_delete", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		return bdev.DeleteRPC(reg, p, FlavorURING.BdevModule())
	})
}

// create opens and registers a Disk. A taken name fails before the file
// is touched.
func create(reg *bdev.Registry, o Options) error {
	if _, err := reg.Get(o.Name); err == nil {
		return syscall.EEXIST
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

// errnoReply maps a create failure to SPDK's -errno reply, keeping the
// detailed error for the debug log.
func errnoReply(err error) error {
	var en syscall.Errno
	switch {
	case errors.As(err, &en):
		return rpc.Errno(en).WithCause(err)
	case errors.Is(err, bdev.ErrExists):
		return rpc.Errno(syscall.EEXIST).WithCause(err)
	}
	return rpc.Errno(syscall.EINVAL).WithCause(err)
}
