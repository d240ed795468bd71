package delay

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"hyperpath/bdev"
	"hyperpath/bdev/passthru"
	"hyperpath/reactor"
)

// ModuleName is SPDK's name for the module; delay bdevs carry it in
// bdev.Info.Module and it is the claim on their bases.
const ModuleName = "delay"

// Latency selects one of a delay bdev's four latencies.
type Latency uint8

const (
	// AvgRead is the latency of 99% of reads.
	AvgRead Latency = iota
	// P99Read is the latency of 1% of reads.
	P99Read
	// AvgWrite is the latency of 99% of writes.
	AvgWrite
	// P99Write is the latency of 1% of writes.
	P99Write
	numLatencies
)

var latencyNames = [...]string{"avg_read", "p99_read", "avg_write", "p99_write"}

func (l Latency) String() string {
	if int(l) < len(latencyNames) {
		return latencyNames[l]
	}
	return "unknown"
}

// ParseLatency maps bdev_delay_update_latency's latency_type names.
func ParseLatency(s string) (Latency, bool) {
	for i, n := range latencyNames {
		if n == s {
			return Latency(i), true
		}
	}
	return 0, false
}

// Options configure a delay bdev (bdev_delay_create's params).
type Options struct {
	Name     string
	BaseName string
	UUID     bdev.UUID
	// Latencies in microseconds; each p99 must be at least its average.
	AvgReadUs, P99ReadUs, AvgWriteUs, P99WriteUs uint64
}

func (o *Options) latencies() [numLatencies]uint64 {
	return [numLatencies]uint64{o.AvgReadUs, o.P99ReadUs, o.AvgWriteUs, o.P99WriteUs}
}

// Disk is a delay bdev. The embedded passthru.Device holds the claimed
// base and the channel list; Disk adds the latencies.
type Disk struct {
	passthru.Device
	opts Options

	// us and ticks are the current latencies; updated by the control
	// plane, read per IO with one atomic load.
	us    [numLatencies]atomic.Uint64
	ticks [numLatencies]atomic.Uint64
}

var (
	_ bdev.Device         = (*Disk)(nil)
	_ bdev.ConfigWriter   = (*Disk)(nil)
	_ bdev.DriverSpecific = (*Disk)(nil)
)

// maxLatencyUs bounds a latency (an hour) so that deadlines never wrap.
const maxLatencyUs = uint64(time.Hour / time.Microsecond)

func validate(o *Options) error {
	if o.Name == "" || o.BaseName == "" {
		return fmt.Errorf("delay bdev: name and base_bdev_name are required: %w", syscall.EINVAL)
	}
	if o.P99ReadUs < o.AvgReadUs || o.P99WriteUs < o.AvgWriteUs {
		return fmt.Errorf("delay bdev %q: a p99 latency is below its average: %w", o.Name, syscall.EINVAL)
	}
	for _, us := range o.latencies() {
		if us > maxLatencyUs {
			return fmt.Errorf("delay bdev %q: latency %d µs above an hour: %w", o.Name, us, syscall.EINVAL)
		}
	}
	return nil
}

// New opens and claims the base bdev and returns the delay bdev (not yet
// registered). Errors wrap bdev.ErrNotFound (no base), bdev.ErrClaimed or
// syscall.EINVAL.
func New(reg *bdev.Registry, o Options) (*Disk, error) {
	if err := validate(&o); err != nil {
		return nil, err
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID()
	}
	d := &Disk{opts: o}
	for l, us := range o.latencies() {
		d.SetLatency(Latency(l), us)
	}
	if err := d.Open(reg, o.BaseName, ModuleName, bdev.Info{Name: o.Name, ProductName: "delay", UUID: o.UUID}); err != nil {
		return nil, fmt.Errorf("delay bdev %q on %q: %w", o.Name, o.BaseName, err)
	}
	return d, nil
}

// SetLatency changes one latency (bdev_delay_update_latency). IOs held
// already keep the latency they got. No check against the other latencies
// is made, as in SPDK.
func (d *Disk) SetLatency(l Latency, us uint64) error {
	if l >= numLatencies || us > maxLatencyUs {
		return fmt.Errorf("delay bdev %q: latency %v = %d µs: %w", d.opts.Name, l, us, syscall.EINVAL)
	}
	d.us[l].Store(us)
	d.ticks[l].Store(uint64(reactor.TicksFromDuration(time.Duration(us) * time.Microsecond)))
	return nil
}

// LatencyUs returns a latency in microseconds.
func (d *Disk) LatencyUs(l Latency) uint64 { return d.us[l].Load() }

func (d *Disk) values() bdev.Ordered {
	return bdev.Obj(
		"name", d.Info().Name,
		"base_bdev_name", d.opts.BaseName,
		"uuid", d.Info().UUID.String(),
		"avg_read_latency", d.us[AvgRead].Load(),
		"p99_read_latency", d.us[P99Read].Load(),
		"avg_write_latency", d.us[AvgWrite].Load(),
		"p99_write_latency", d.us[P99Write].Load(),
	)
}

// DriverSpecific implements bdev.DriverSpecific (SPDK's "delay" object).
func (d *Disk) DriverSpecific() any { return bdev.Obj("delay", d.values()) }

// ConfigEntry implements bdev.ConfigWriter with the current latencies.
func (d *Disk) ConfigEntry() (string, any) { return "bdev_delay_create", d.values() }

// NewChannel implements bdev.Device.
func (d *Disk) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	c := &channel{d: d}
	if err := d.Device.NewChannel(&c.Channel, r, c); err != nil {
		return nil, err
	}
	c.init()
	return c, nil
}
