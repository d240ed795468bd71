package vhost

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"

	"hyperpath/bdev"
	"hyperpath/rpc"
)

// Subsystem is the save_config section this target writes; it depends on
// the bdev subsystem.
const Subsystem = "vhost_blk"

// rpcInvalid is the reply SPDK's vhost RPCs send for every failure: -32602
// with the errno's strerror text (packed_ring gets its own text).
func rpcInvalid(err error) error {
	if errors.Is(err, ErrPackedRing) {
		return rpc.InvalidParams(ErrPackedRing.Error()).WithCause(err)
	}
	var e syscall.Errno
	if !errors.As(err, &e) {
		e = syscall.EINVAL
	}
	return rpc.InvalidParams(rpc.Strerror(e)).WithCause(err)
}

// RegisterRPC registers vhost_create_blk_controller, vhost_get_controllers,
// vhost_delete_controller and vhost_controller_set_coalescing on s, and
// returns the writer of the "vhost_blk" save_config section. The app
// registers it: s.RegisterSubsystem(vhost.Subsystem, []string{"bdev"}, w).
func (t *Target) RegisterRPC(s *rpc.Server) func() []rpc.ConfigEntry {
	s.Register("vhost_create_blk_controller", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Ctrlr      string `json:"ctrlr" rpc:"required"`
			DevName    string `json:"dev_name" rpc:"required"`
			CPUMask    string `json:"cpumask"`
			Transport  string `json:"transport"`
			ReadOnly   bool   `json:"readonly"`
			PackedRing bool   `json:"packed_ring"`
		}
		if err := rpc.DecodeRelaxed(p, &req); err != nil {
			return nil, rpcInvalid(err)
		}
		_, err := t.CreateBlkController(BlkControllerOptions{
			Name: req.Ctrlr, Bdev: req.DevName, CPUMask: req.CPUMask, Transport: req.Transport,
			ReadOnly: req.ReadOnly, PackedRing: req.PackedRing,
		})
		if err != nil {
			return nil, rpcInvalid(err)
		}
		return true, nil
	})

	s.Register("vhost_get_controllers", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Name string `json:"name"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpc.Internal(rpc.Strerror(syscall.EINVAL)).WithCause(err)
		}
		var ctrls []*Controller
		if req.Name != "" {
			c, err := t.Controller(req.Name)
			if err != nil {
				return nil, rpc.Internal(rpc.Strerror(syscall.ENODEV)).WithCause(err)
			}
			ctrls = []*Controller{c}
		} else {
			ctrls = t.Controllers()
		}
		out := make([]bdev.Ordered, 0, len(ctrls))
		for _, c := range ctrls {
			out = append(out, describe(c.Info()))
		}
		return out, nil
	})

	s.Register("vhost_delete_controller", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Ctrlr string `json:"ctrlr" rpc:"required"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpcInvalid(err)
		}
		if err := t.DeleteController(req.Ctrlr); err != nil {
			return nil, rpcInvalid(err)
		}
		return true, nil
	})

	s.Register("vhost_controller_set_coalescing", rpc.Runtime, func(_ context.Context, p json.RawMessage) (any, error) {
		var req struct {
			Ctrlr         string `json:"ctrlr" rpc:"required"`
			DelayBaseUs   uint32 `json:"delay_base_us" rpc:"required"`
			IOPSThreshold uint32 `json:"iops_threshold" rpc:"required"`
		}
		if err := rpc.Decode(p, &req); err != nil {
			return nil, rpcInvalid(err)
		}
		if err := t.SetCoalescing(req.Ctrlr, req.DelayBaseUs, req.IOPSThreshold); err != nil {
			return nil, rpcInvalid(err)
		}
		return true, nil
	})

	return t.configEntries
}

// describe renders a controller as vhost_get_controllers does, in SPDK's
// key order.
func describe(c ControllerInfo) bdev.Ordered {
	sessions := make([]bdev.Ordered, 0, len(c.Sessions))
	for _, s := range c.Sessions {
		sessions = append(sessions, bdev.Obj(
			"vid", s.Vid, "id", s.ID, "name", s.Name, "started", s.Started,
			"max_queues", s.MaxQueues, "inflight_task_cnt", s.Inflight,
		))
	}
	var bdevName any
	if c.Bdev != "" {
		bdevName = c.Bdev
	}
	return bdev.Obj(
		"ctrlr", c.Name,
		"cpumask", "0x"+c.CPUMask,
		"delay_base_us", c.DelayBaseUs,
		"iops_threshold", c.IOPSThreshold,
		"socket", c.Socket,
		"sessions", sessions,
		"backend_specific", bdev.Obj("block", bdev.Obj(
			"readonly", c.ReadOnly, "bdev", bdevName, "transport", c.Transport,
		)),
	)
}

// configEntries writes the "vhost_blk" section: one
// vhost_create_blk_controller per controller with a bdev (a hot-removed
// one cannot be recreated), plus vhost_controller_set_coalescing where
// coalescing is on.
func (t *Target) configEntries() []rpc.ConfigEntry {
	out := []rpc.ConfigEntry{}
	for _, c := range t.Controllers() {
		c.mu.Lock()
		gone := c.desc == nil
		c.mu.Unlock()
		if gone {
			continue
		}
		out = append(out, rpc.ConfigEntry{Method: "vhost_create_blk_controller", Params: bdev.Obj(
			"ctrlr", c.name, "dev_name", c.bdevName, "cpumask", c.cpumask(),
			"readonly", c.readOnly, "transport", TransportVhostUserBlk,
		)})
		if d, iops := c.dev.Coalescing(); d > 0 {
			out = append(out, rpc.ConfigEntry{Method: "vhost_controller_set_coalescing", Params: bdev.Obj(
				"ctrlr", c.name, "delay_base_us", d, "iops_threshold", iops,
			)})
		}
	}
	return out
}
