package virtio

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"hyperpath/bdev"
	"hyperpath/internal/hugemem"
	"hyperpath/reactor"
	"hyperpath/vhost/proto"
	"hyperpath/vhost/virtq"
)

// Defaults and limits.
const (
	DefaultQueueCount       = 1
	DefaultQueueSize        = 512 // SPDK's virtio-user default
	DefaultBufferBytes      = 32 << 20
	DefaultBounceChunks     = 256
	DefaultMaxTransferBytes = 1 << 20
	DefaultConnectTimeout   = 5 * time.Second

	// BounceChunkSize is the unit of the bounce pool: an IO whose buffers
	// are not in the shared region takes ceil(len/BounceChunkSize) chunks.
	BounceChunkSize = 16 << 10

	// MaxQueueCount bounds vq_count (VringFile carries an 8-bit index).
	MaxQueueCount = 256

	reapBatch = 32 // used entries reaped per queue per poll (SPDK vhost: 32)
)

// Options configure a virtio-user blk bdev (bdev_virtio_attach_controller).
type Options struct {
	// Name is the bdev's name (SPDK: for dev_type blk the bdev takes the
	// controller's name).
	Name string
	// SocketPath is the back end's vhost-user socket (traddr).
	SocketPath string
	// QueueCount is the number of request queues to use (vq_count,
	// default 1). Each reactor that opens a channel takes one; a channel
	// on more reactors than queues fails to open.
	QueueCount int
	// QueueSize is the number of entries of each queue (vq_size, a power
	// of two, default 512).
	QueueSize int
	// UUID of the bdev; zero: a random one.
	UUID bdev.UUID
	// BufferBytes is the size of the buffer area AllocBuffer hands out
	// (default 32 MiB; negative: none).
	BufferBytes int
	// BounceChunks is the number of BounceChunkSize chunks per queue for
	// IO whose buffers lie outside the shared region (default 256).
	BounceChunks int
	// MaxTransferBytes caps one request's data (default 1 MiB); the
	// device's seg_max and size_max may lower it. Larger reads and writes
	// are split by the generic layer.
	MaxTransferBytes int
	// NoEventIdx turns VIRTIO_F_EVENT_IDX off even when offered.
	NoEventIdx bool
	// ConnectTimeout bounds the connection and the handshake (default 5 s).
	ConnectTimeout time.Duration
	// CtrlrLossTimeout is how long the device tries to reconnect after it
	// lost its back end (SPDK's ctrlr_loss_timeout_sec). Meanwhile IO is
	// held, not failed: the IO that was in the rings and the IO submitted
	// during the outage go out again once the queues are back. Forever
	// (any negative value) retries without end. Zero, the default, does
	// not reconnect: the IO in flight and every later IO fail, and the
	// bdev stays failed until it is detached. When a positive timeout
	// passes the device gives up: held and new IO fail and, for a device
	// registered by Attach (the RPC), the bdev is unregistered, as SPDK
	// deletes a lost NVMe controller.
	CtrlrLossTimeout time.Duration
	// ReconnectDelay is the interval between reconnect attempts (SPDK's
	// reconnect_delay_sec); the first is made at once. It must be positive
	// when CtrlrLossTimeout is not zero, zero when it is, and at most a
	// positive CtrlrLossTimeout.
	ReconnectDelay time.Duration
	// FastIOFailTimeout, when positive, fails the held IO and every IO
	// submitted later once the device has been reconnecting that long
	// (SPDK's fast_io_fail_timeout_sec); reconnect attempts go on, and IO
	// is served again after a reconnect. Zero: IO is held until the
	// device reconnects or gives up. If set it lies between ReconnectDelay
	// and a positive CtrlrLossTimeout.
	FastIOFailTimeout time.Duration
	// Memory selects the backing of the shared region (default: hugepages
	// when the kernel has them, else 4 KiB pages).
	Memory hugemem.Policy
	// Logger receives control-plane notes (nil: slog.Default()).
	Logger *slog.Logger
}

// Forever is the CtrlrLossTimeout that never gives up reconnecting
// (ctrlr_loss_timeout_sec -1).
const Forever time.Duration = -1

// State is the connection state of a Disk. The data path reads it once per
// IO and once per poll.
type State int32

const (
	// StateConnected: the back end serves the queues; IO goes to the
	// rings.
	StateConnected State = iota
	// StateReconnecting: the connection was lost (or the back end broke
	// a ring) and the device is reconnecting; every channel takes its
	// requests back from its ring and holds them, with IO submitted
	// meanwhile, for resubmission after the reconnect.
	StateReconnecting
	// StateFailingIO: still reconnecting, but FastIOFailTimeout has
	// passed: held and new IO fail. A reconnect returns to
	// StateConnected.
	StateFailingIO
	// StateFailed: the device does not reconnect (CtrlrLossTimeout 0,
	// the timeout passed, or the bdev is being removed): IO fails until
	// the bdev is detached.
	StateFailed
	// StateClosed: the device was destroyed.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateFailingIO:
		return "reconnecting_failing_io"
	case StateFailed:
		return "failed"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// removalPoll is how often a reconnecting device checks whether its bdev
// is being unregistered, so that held IO fails and the descriptors can
// close.
const removalPoll = 20 * time.Millisecond

// Disk is a virtio-blk device behind a vhost-user back end, exposed as a
// bdev. See the package doc for who owns what.
type Disk struct {
	info bdev.Info
	opts Options
	log  *slog.Logger

	// Immutable after New.
	region      *hugemem.Region
	mem         *virtq.GuestMemory
	lay         regionLayout
	base        uint64 // host address of the region (guest address 0)
	bufLo       uint64 // host address range of the buffer area
	bufHi       uint64
	cfg         BlkConfig
	acked       uint64 // negotiated virtio features
	eventIdx    bool
	segMax      int    // data descriptors per request
	unit        uint64 // bytes per bounce descriptor
	maxChunks   int    // bounce chunks one IO may take
	maxXfer     uint64 // bytes of the largest read or write
	sectorShift uint   // log2(blk_size / 512)
	queues      []*queue
	arena       *arena
	huge        bool   // the region is backed by hugepages
	shared      uint64 // bytes of the region

	// state (a State) is read per IO and per poll; every change happens
	// under mu. failGen counts the losses of a connection, and a
	// reconnect sets resetReq to the generation the queues must reset
	// for.
	state    atomic.Int32
	failGen  atomic.Uint64
	resetReq atomic.Uint64 // failure generation the queues must reset for (reconnect)
	// bdev is the registry's handle, set by Attach: a reconnecting device
	// polls its Removing, and gives itself up through reg.
	bdev atomic.Pointer[bdev.Bdev]
	reg  *bdev.Registry

	mu          sync.Mutex // control plane: sess, closing, queue owners, lastErr
	sess        *session
	dialing     *session // a reconnect's handshake in progress
	closing     bool
	lastErr     string
	lostAt      time.Time // when the last connection was lost
	reconnects  uint64
	stop        chan struct{} // closed by Destroy
	monitorDone chan struct{}
}

var (
	_ bdev.Device         = (*Disk)(nil)
	_ bdev.ConfigWriter   = (*Disk)(nil)
	_ bdev.DriverSpecific = (*Disk)(nil)
	_ BufferAllocator     = (*Disk)(nil)
)

func (o *Options) setDefaults() error {
	if o.Name == "" {
		return errors.New("virtio bdev: name is required")
	}
	if o.SocketPath == "" {
		return fmt.Errorf("virtio bdev %q: socket path (traddr) is required", o.Name)
	}
	if o.QueueCount == 0 {
		o.QueueCount = DefaultQueueCount
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = DefaultBufferBytes
	} else if o.BufferBytes < 0 {
		o.BufferBytes = 0
	}
	if o.BounceChunks == 0 {
		o.BounceChunks = DefaultBounceChunks
	}
	if o.MaxTransferBytes == 0 {
		o.MaxTransferBytes = DefaultMaxTransferBytes
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.CtrlrLossTimeout < 0 {
		o.CtrlrLossTimeout = Forever
	}
	if err := checkReconnect(o.CtrlrLossTimeout, o.ReconnectDelay, o.FastIOFailTimeout); err != nil {
		return fmt.Errorf("virtio bdev %q: %w", o.Name, err)
	}
	switch {
	case o.QueueCount < 1 || o.QueueCount > MaxQueueCount:
		return fmt.Errorf("virtio bdev %q: vq_count %d must be 1..%d", o.Name, o.QueueCount, MaxQueueCount)
	case o.QueueSize < 4 || !virtq.ValidSize(uint32(o.QueueSize)):
		return fmt.Errorf("virtio bdev %q: vq_size %d must be a power of two from 4 to %d", o.Name, o.QueueSize, virtq.MaxQueueSize)
	case o.BounceChunks < 1 || o.BounceChunks > 1<<16:
		return fmt.Errorf("virtio bdev %q: bounce chunks %d must be 1..65536", o.Name, o.BounceChunks)
	case o.MaxTransferBytes < SectorSize:
		return fmt.Errorf("virtio bdev %q: max transfer %d bytes is less than a sector", o.Name, o.MaxTransferBytes)
	}
	return nil
}

// New connects to the vhost-user back end at o.SocketPath, negotiates,
// sets up the shared region and the queues, and returns the device (not
// yet registered).
func New(o Options) (*Disk, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	d := &Disk{opts: o, log: o.Logger, stop: make(chan struct{}), monitorDone: make(chan struct{})}
	if d.log == nil {
		d.log = slog.Default()
	}
	s, err := dial(o.SocketPath, o.ConnectTimeout)
	if err != nil {
		return nil, fmt.Errorf("virtio bdev %q: %w", o.Name, err)
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
			d.release()
		}
	}()
	if err := s.negotiate(!o.NoEventIdx, time.Now().Add(o.ConnectTimeout)); err != nil {
		return nil, fmt.Errorf("virtio bdev %q: %w", o.Name, err)
	}
	if err := d.plan(s); err != nil {
		return nil, err
	}
	if err := d.allocate(); err != nil {
		return nil, err
	}
	if err := d.startSession(s); err != nil {
		return nil, fmt.Errorf("virtio bdev %q: %w", o.Name, err)
	}
	if o.UUID.IsZero() {
		o.UUID = bdev.NewUUID()
		d.opts.UUID = o.UUID
	}
	d.info = bdev.Info{
		Name:              o.Name,
		ProductName:       ProductName,
		UUID:              o.UUID,
		BlockSize:         d.cfg.BlkSize,
		NumBlocks:         d.cfg.CapacitySectors >> d.sectorShift,
		MaxTransferBlocks: d.maxXfer / uint64(d.cfg.BlkSize),
		WriteCache:        d.cfg.Writeback,
		Module:            ModuleName,
	}
	if d.info.NumBlocks == 0 {
		return nil, fmt.Errorf("virtio bdev %q: capacity of %d sectors is less than one %d-byte block", o.Name, d.cfg.CapacitySectors, d.cfg.BlkSize)
	}
	d.sess = s
	ok = true
	go d.monitor(s)
	return d, nil
}

// plan derives the data-path limits from the negotiated configuration.
func (d *Disk) plan(s *session) error {
	o := &d.opts
	d.cfg = s.config
	d.acked = s.acked
	d.eventIdx = s.acked&virtq.FeatureEventIdx != 0
	if lim := s.queueLimit(); o.QueueCount > lim {
		return fmt.Errorf("virtio bdev %q: vq_count %d exceeds the %d queue(s) the back end at %s serves", o.Name, o.QueueCount, lim, o.SocketPath)
	}
	d.sectorShift = uint(bits.TrailingZeros32(d.cfg.BlkSize / SectorSize))
	// A request is a header, the data descriptors and a status byte, and
	// must fit the ring.
	d.segMax = o.QueueSize - 2
	if d.cfg.SegMax != 0 && int(d.cfg.SegMax) < d.segMax {
		d.segMax = int(d.cfg.SegMax)
	}
	if d.segMax < 1 {
		return fmt.Errorf("virtio bdev %q: vq_size %d leaves no room for data descriptors", o.Name, o.QueueSize)
	}
	d.unit = BounceChunkSize
	if sm := uint64(d.cfg.SizeMax); sm != 0 && sm < d.unit {
		d.unit = 1 << (63 - bits.LeadingZeros64(sm)) // largest power of two <= size_max
	}
	if d.maxTransfer() < int(d.cfg.BlkSize) {
		return fmt.Errorf("virtio bdev %q: seg_max %d and size_max %d allow less than one %d-byte block per request",
			o.Name, d.cfg.SegMax, d.cfg.SizeMax, d.cfg.BlkSize)
	}
	d.maxXfer = uint64(d.maxTransfer())
	d.maxChunks = (d.maxTransfer() + BounceChunkSize - 1) / BounceChunkSize
	if d.maxChunks > o.BounceChunks {
		return fmt.Errorf("virtio bdev %q: %d bounce chunks per queue cannot hold one %d-byte request", o.Name, o.BounceChunks, d.maxTransfer())
	}
	return nil
}

// maxTransfer is the largest read or write in bytes: the option, the
// bounce pool, and what seg_max descriptors of the bounce unit carry,
// rounded down to a block.
func (d *Disk) maxTransfer() int {
	n := min(d.opts.MaxTransferBytes, d.opts.BounceChunks*BounceChunkSize, d.segMax*int(d.unit))
	return n / int(d.cfg.BlkSize) * int(d.cfg.BlkSize)
}

// allocate maps the shared region and builds the queues in it.
func (d *Disk) allocate() error {
	o := &d.opts
	lay, err := planRegion(o.QueueCount, uint16(o.QueueSize), o.BounceChunks, BounceChunkSize, uint64(o.BufferBytes))
	if err != nil {
		return err
	}
	d.lay = lay
	if d.region, err = hugemem.Alloc("virtio-"+o.Name, int(lay.size), o.Memory); err != nil {
		return fmt.Errorf("virtio bdev %q: shared region: %w", o.Name, err)
	}
	d.base = virtq.HostAddr(d.region.Mem)
	d.huge, d.shared = d.region.Huge, uint64(len(d.region.Mem))
	d.bufLo = d.base + lay.bufOff
	d.bufHi = d.bufLo + lay.bufLen
	d.arena = newArena(lay.bufLen)
	if d.mem, err = virtq.NewGuestMemory(virtq.NewRegion(0, d.base, d.region.Mem)); err != nil {
		return err
	}
	for i := range lay.queues {
		q, err := newQueue(d, i)
		if err != nil {
			return fmt.Errorf("virtio bdev %q: queue %d: %w", o.Name, i, err)
		}
		d.queues = append(d.queues, q)
	}
	return nil
}

// startSession sends the features, memory table and rings to s.
func (d *Disk) startSession(s *session) error {
	setups := make([]queueSetup, len(d.queues))
	for i, q := range d.queues {
		setups[i] = queueSetup{size: q.cfg.Size, desc: d.base + q.cfg.Desc, avail: d.base + q.cfg.Avail,
			used: d.base + q.cfg.Used, kickFd: q.kickFd, callFd: q.callFd}
	}
	mem := proto.MemRegion{GuestPhysAddr: 0, MemorySize: uint64(len(d.region.Mem)), UserspaceAddr: d.base}
	return s.start(d.region.Fd, mem, setups)
}

// release frees what New allocated; used on New's failure path and by
// Destroy. The queues stay in d.queues (Stats may still read their
// counters); only their eventfds are closed.
func (d *Disk) release() {
	for _, q := range d.queues {
		q.close()
	}
	d.mu.Lock()
	r := d.region
	d.region = nil // AllocBuffer and FreeBuffer check it under d.mu
	d.mu.Unlock()
	if r != nil {
		if err := r.Free(); err != nil {
			d.log.Warn("virtio: freeing shared region", "bdev", d.opts.Name, "err", err)
		}
	}
}

// Info implements bdev.Device.
func (d *Disk) Info() *bdev.Info { return &d.info }

// Supports implements bdev.Device.
func (d *Disk) Supports(t bdev.IOType) bool {
	ro := d.acked&FeatureRO != 0
	switch t {
	case bdev.IORead, bdev.IOFlush:
		return true
	case bdev.IOWrite:
		return !ro
	case bdev.IOUnmap:
		return !ro && d.acked&FeatureDiscard != 0
	case bdev.IOWriteZeroes:
		return !ro && d.acked&FeatureWriteZeroes != 0
	}
	return false
}

// NewChannel implements bdev.Device: the channel takes a queue that no
// other reactor's channel holds, preferring queue (reactor ID mod
// vq_count).
func (d *Disk) NewChannel(r *reactor.Reactor) (bdev.Channel, error) {
	r.AssertCurrent()
	c := &channel{d: d, r: r}
	d.mu.Lock()
	n := len(d.queues)
	for k := range n {
		q := d.queues[(r.ID()+k)%n]
		if q.owner == nil {
			q.owner = c
			c.q = q
			break
		}
	}
	d.mu.Unlock()
	if c.q == nil {
		return nil, fmt.Errorf("virtio bdev %q: all %d virtqueue(s) are held by channels on other reactors; attach with vq_count >= the number of reactors doing IO", d.opts.Name, n)
	}
	if err := r.WatchFd(c.q.callFd); err != nil {
		d.mu.Lock()
		c.q.owner = nil
		d.mu.Unlock()
		return nil, fmt.Errorf("virtio bdev %q: watch call eventfd: %w", d.opts.Name, err)
	}
	c.q.drv.DisableInterrupts()
	c.poller = r.RegisterPollerOpts(fmt.Sprintf("virtio_%s_q%d", d.opts.Name, c.q.idx), c.poll, reactor.PollerOptions{Arm: c.arm})
	return c, nil
}

// releaseQueue is called by a channel's Close on its reactor.
func (d *Disk) releaseQueue(c *channel) {
	d.mu.Lock()
	if c.q.owner == c {
		c.q.owner = nil
	}
	d.mu.Unlock()
}

// Destroy implements bdev.Device: it closes the connection, stops the
// monitor and frees the shared region. Every channel is closed by then.
func (d *Disk) Destroy() error {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return nil
	}
	d.closing = true
	s, p := d.sess, d.dialing
	d.sess = nil
	close(d.stop)
	d.mu.Unlock()
	if s != nil {
		s.close()
	}
	if p != nil {
		p.close() // cuts a reconnect's handshake short
	}
	<-d.monitorDone
	d.mu.Lock()
	d.state.Store(int32(StateClosed))
	d.mu.Unlock()
	d.release()
	return nil
}

func (d *Disk) hugepages() bool     { return d.huge }
func (d *Disk) sharedBytes() uint64 { return d.shared }

// State returns the connection state.
func (d *Disk) State() State { return State(d.state.Load()) }

// SocketPath returns the back end's socket.
func (d *Disk) SocketPath() string { return d.opts.SocketPath }

// Config returns the virtio-blk configuration read at attach.
func (d *Disk) Config() BlkConfig { return d.cfg }

// Features returns the negotiated virtio feature bits.
func (d *Disk) Features() uint64 { return d.acked }

// AllocBuffer implements BufferAllocator.
func (d *Disk) AllocBuffer(size int) []byte {
	if size <= 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing || d.region == nil {
		return nil
	}
	off, ok := d.arena.alloc(uint64(size))
	if !ok {
		return nil
	}
	start := d.lay.bufOff + off
	b := d.region.Mem[start : start+uint64(size) : start+uint64(size)]
	clear(b)
	return b
}

// FreeBuffer implements BufferAllocator.
func (d *Disk) FreeBuffer(b []byte) {
	if len(b) == 0 {
		return
	}
	a := virtq.HostAddr(b)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.region == nil || a < d.bufLo || a >= d.bufHi {
		return
	}
	d.arena.release(a - d.bufLo)
}

// Stats are a Disk's data-path counters, summed over its queues.
type Stats struct {
	// ZeroCopyIOs are reads and writes whose buffers were in the shared
	// region: their descriptors point at the submitter's memory.
	ZeroCopyIOs uint64
	// BouncedIOs are reads and writes copied through the bounce pool
	// (buffers outside the shared region, or more segments than seg_max),
	// BouncedBytes their payload. Both count requests put in a ring: an
	// IO resubmitted after a reconnect counts again.
	BouncedIOs   uint64
	BouncedBytes uint64
	// Kicks are the writes to kick eventfds.
	Kicks uint64
	// Requests are the virtio requests completed by the back end.
	Requests uint64
	// HeldIOs are the IOs held while the device was reconnecting: taken
	// back from a ring at the loss, or submitted during the outage.
	HeldIOs uint64
}

// counters are one queue's data-path counters. They are plain fields,
// written only on the reactor of the channel that holds the queue; Stats
// reads them there (by a message) or under Disk.mu while no channel holds
// the queue.
type counters struct {
	zeroCopy, bounced, bouncedBytes, kicks, requests, held uint64
}

func (s *Stats) add(c *counters) {
	s.ZeroCopyIOs += c.zeroCopy
	s.BouncedIOs += c.bounced
	s.BouncedBytes += c.bouncedBytes
	s.Kicks += c.kicks
	s.Requests += c.requests
	s.HeldIOs += c.held
}

// Stats returns the data-path counters. Safe from any goroutine; control
// plane (it may wait for a message to each reactor that holds a queue).
// A reactor driven with Poll instead of Run must be driven by the
// goroutine that calls Stats.
func (d *Disk) Stats() Stats {
	var s Stats
	for _, q := range d.queues {
		c := d.queueCounters(q)
		s.add(&c)
	}
	return s
}

// queueCounters reads q's counters without racing with their writer: on
// the owning channel's reactor through a message when that reactor runs
// on another thread, else directly under d.mu (nobody holds the queue, or
// the caller is, or drives, the owner's reactor). A queue that changes
// hands meanwhile is read again; a reactor that does not answer (being
// stopped) yields the last value read.
func (d *Disk) queueCounters(q *queue) counters {
	for range 10 {
		d.mu.Lock()
		c := q.owner
		if c == nil || !runningElsewhere(c.r) {
			v := q.ctr
			q.lastRead = v
			d.mu.Unlock()
			return v
		}
		d.mu.Unlock()
		if v, ok := c.readCounters(time.Second); ok {
			d.mu.Lock()
			q.lastRead = v
			d.mu.Unlock()
			return v
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return q.lastRead
}

// LastError returns why the device last failed, or "".
func (d *Disk) LastError() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// Reconnects returns how many times the device reconnected.
func (d *Disk) Reconnects() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reconnects
}

// ConfigEntry implements bdev.ConfigWriter (SPDK's virtio-user
// write_config_json key order).
func (d *Disk) ConfigEntry() (string, any) {
	return "bdev_virtio_attach_controller", attachEntry(&d.opts)
}

// DriverSpecific implements bdev.DriverSpecific (SPDK's
// virtio_dev_dump_json_info for the user transport).
func (d *Disk) DriverSpecific() any {
	return bdev.Obj("virtio", bdev.Obj(
		"vq_count", d.opts.QueueCount, "vq_size", d.opts.QueueSize,
		"type", "user", "socket", d.opts.SocketPath))
}

// monitor owns the connection after the handshake. A back end sends
// nothing on it unasked, so any read that returns means the connection is
// over: by Destroy (closing), or lost.
func (d *Disk) monitor(s *session) {
	defer close(d.monitorDone)
	for {
		reason := watch(s)
		d.mu.Lock()
		closing := d.closing
		d.mu.Unlock()
		if closing {
			return
		}
		d.lose(reason)
		s.close()
		if State(d.state.Load()) != StateReconnecting {
			return // no reconnect (CtrlrLossTimeout 0)
		}
		if s = d.reconnect(); s == nil {
			return // Destroy, removal or CtrlrLossTimeout ended the retries
		}
	}
}

// watch blocks until s's connection ends and says why.
func watch(s *session) string {
	var buf [64]byte
	n, err := s.conn.Read(buf[:])
	if err != nil {
		return fmt.Sprintf("connection to %s lost: %v", s.path, err)
	}
	return fmt.Sprintf("back end at %s sent %d unsolicited bytes; closing the connection", s.path, n)
}

// failLocked moves a connected device to StateReconnecting, or to
// StateFailed when it does not reconnect, and records why. It reports
// whether the device was connected. Precondition: d.mu held.
func (d *Disk) failLocked(reason string) bool {
	if State(d.state.Load()) != StateConnected {
		return false // keep the first cause (a broken ring)
	}
	d.lastErr = reason
	d.lostAt = time.Now()
	d.failGen.Add(1)
	next := StateReconnecting
	if d.opts.CtrlrLossTimeout == 0 {
		next = StateFailed
	}
	d.state.Store(int32(next))
	return true
}

// lose is the monitor's reaction to the end of the connection: the device
// leaves StateConnected (unless a broken ring made it leave already) and
// every channel is woken to take its requests back from its ring (or fail
// them, without reconnect). Control plane.
func (d *Disk) lose(reason string) {
	d.mu.Lock()
	first := d.failLocked(reason)
	st := State(d.state.Load())
	d.mu.Unlock()
	if first {
		if st == StateReconnecting {
			d.log.Warn("virtio: bdev lost its back end, holding IO while reconnecting", "bdev", d.opts.Name, "reason", reason,
				"ctrlr_loss_timeout", lossText(d.opts.CtrlrLossTimeout), "fast_io_fail_timeout", d.opts.FastIOFailTimeout)
		} else {
			d.log.Warn("virtio: bdev failed, outstanding IO fails", "bdev", d.opts.Name, "reason", reason)
		}
	}
	d.wakeChannels(true)
}

// lossText is CtrlrLossTimeout for the log.
func lossText(t time.Duration) string {
	if t < 0 {
		return "forever"
	}
	return t.String()
}

// setState moves the device from one of the states in from to to, under
// d.mu, and wakes every channel; it reports whether it did.
func (d *Disk) setState(to State, reason string, from ...State) bool {
	d.mu.Lock()
	cur := State(d.state.Load())
	ok := false
	for _, f := range from {
		ok = ok || cur == f
	}
	if ok {
		d.state.Store(int32(to))
		if reason != "" {
			d.lastErr = reason
		}
	}
	d.mu.Unlock()
	if ok {
		d.wakeChannels(true)
	}
	return ok
}

// wakeChannels sends every channel a message that polls it: a channel's
// poller does the work of a state change, the message only wakes a
// sleeping reactor. With retry it waits out a full message ring.
func (d *Disk) wakeChannels(retry bool) {
	d.mu.Lock()
	var wake []*channel
	for _, q := range d.queues {
		if q.owner != nil {
			wake = append(wake, q.owner)
		}
	}
	d.mu.Unlock()
	for _, c := range wake {
		for reactor.Send(c.r, wakeChannel, c) == reactor.ErrRingFull && retry {
			time.Sleep(time.Millisecond)
		}
	}
}

// wakeChannel runs on a channel's reactor after a state change.
func wakeChannel(arg any) {
	if c := arg.(*channel); !c.closed {
		c.poll(0)
	}
}

// ringBroken is called on a channel's reactor when its back end corrupted
// its ring (a used entry naming a request that is not outstanding). The
// device leaves StateConnected at once, so that no channel puts more
// requests in the rings, and the connection is closed so that the back end
// stops touching the region; the monitor then reconnects, if asked to.
func (d *Disk) ringBroken(q *queue, err error) {
	reason := fmt.Sprintf("back end broke queue %d: %v", q.idx, err)
	d.mu.Lock()
	first := d.failLocked(reason)
	s := d.sess
	d.mu.Unlock()
	if first {
		d.log.Warn("virtio: back end broke a ring", "bdev", d.opts.Name, "reason", reason)
	}
	if s != nil {
		s.conn.CloseRead() // wakes the monitor; Close happens there
	}
}

// reconnect runs while the device is in StateReconnecting or
// StateFailingIO: it tries to reconnect at once and then every
// ReconnectDelay until a handshake succeeds with a back end of the same
// geometry, moves to StateFailingIO at FastIOFailTimeout, and gives up at
// CtrlrLossTimeout (both counted from the loss) or when the bdev is being
// unregistered. It returns the new session, or nil when it gave up or
// Destroy stopped it.
func (d *Disk) reconnect() *session {
	d.mu.Lock()
	lost := d.lostAt
	d.mu.Unlock()
	var fastFail, giveUp <-chan time.Time
	if t := d.opts.FastIOFailTimeout; t > 0 {
		tm := time.NewTimer(time.Until(lost.Add(t)))
		defer tm.Stop()
		fastFail = tm.C
	}
	if t := d.opts.CtrlrLossTimeout; t > 0 {
		tm := time.NewTimer(time.Until(lost.Add(t)))
		defer tm.Stop()
		giveUp = tm.C
	}
	removal := time.NewTicker(removalPoll)
	defer removal.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	gen := d.failGen.Load()
	for {
		select {
		case <-d.stop:
			return nil
		case <-fastFail:
			fastFail = nil
			if d.setState(StateFailingIO, "", StateReconnecting) {
				d.log.Warn("virtio: bdev still reconnecting after fast_io_fail_timeout, IO fails", "bdev", d.opts.Name,
					"fast_io_fail_timeout", d.opts.FastIOFailTimeout)
			}
			continue
		case <-giveUp:
			d.giveUp(fmt.Sprintf("no back end at %s within ctrlr_loss_timeout %v (last error: %s)",
				d.opts.SocketPath, d.opts.CtrlrLossTimeout, d.LastError()), true)
			return nil
		case <-removal.C:
			if b := d.bdev.Load(); b != nil && b.Removing() {
				d.giveUp("bdev removed while reconnecting", false)
				return nil
			}
			continue
		case <-retry.C:
		}
		if !d.waitQueuesReset(gen) {
			return nil
		}
		s, err := d.redial()
		if err != nil {
			d.mu.Lock()
			d.lastErr = err.Error()
			d.mu.Unlock()
			d.log.Debug("virtio: reconnect failed", "bdev", d.opts.Name, "err", err)
			retry.Reset(d.opts.ReconnectDelay)
			continue
		}
		d.mu.Lock()
		if d.closing {
			d.mu.Unlock()
			s.close()
			return nil
		}
		if b := d.bdev.Load(); b != nil && b.Removing() {
			d.mu.Unlock()
			s.close()
			d.giveUp("bdev removed while reconnecting", false)
			return nil
		}
		d.sess = s
		d.reconnects++
		d.lastErr = ""
		d.state.Store(int32(StateConnected))
		d.mu.Unlock()
		d.log.Info("virtio: bdev reconnected, resubmitting held IO", "bdev", d.opts.Name, "socket", d.opts.SocketPath,
			"outage", time.Since(lost).Round(time.Millisecond))
		d.wakeChannels(true) // held IO goes out again on each channel's reactor
		return s
	}
}

// giveUp ends the reconnect attempts: the device moves to StateFailed, so
// every channel fails its held IO and later IO. With unregister (the
// CtrlrLossTimeout case) a device registered by Attach is unregistered,
// as SPDK deletes a lost controller; Unregister runs on a goroutine of its
// own because the device's Destroy waits for the monitor, which calls
// giveUp.
func (d *Disk) giveUp(reason string, unregister bool) {
	if !d.setState(StateFailed, reason, StateReconnecting, StateFailingIO) {
		return
	}
	d.log.Warn("virtio: bdev gave up reconnecting, IO fails", "bdev", d.opts.Name, "reason", reason)
	if !unregister {
		return
	}
	b := d.bdev.Load()
	if b == nil {
		return // not registered by Attach: stays failed until detached
	}
	reg, name := d.reg, d.opts.Name
	go func() {
		if err := reg.Unregister(name, nil); err != nil && !errors.Is(err, bdev.ErrRemoving) && !errors.Is(err, bdev.ErrNotFound) {
			d.log.Warn("virtio: lost bdev stays registered (failed)", "bdev", name, "err", err)
		}
	}()
}

// waitQueuesReset asks every queue to reset its ring for failure gen
// and waits until all have: queues held by a channel take their requests
// back and reset on their reactor (the next poll); free ones are reset
// here. The old back end's connection is closed by then, so it no longer
// serves the rings. It returns false when Destroy stopped it.
func (d *Disk) waitQueuesReset(gen uint64) bool {
	d.resetReq.Store(gen)
	d.wakeChannels(false) // best effort: a running reactor polls anyway
	for {
		done := true
		d.mu.Lock()
		for _, q := range d.queues {
			if q.resetGen.Load() == gen {
				continue
			}
			if q.owner == nil {
				q.reset(gen)
				continue
			}
			done = false
		}
		d.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-d.stop:
			return false
		case <-time.After(time.Millisecond):
		}
	}
}

// redial connects and handshakes again. The back end must offer what the
// first one negotiated and have the same geometry: channels keep their
// queues and the generic layer its limits.
func (d *Disk) redial() (*session, error) {
	s, err := dial(d.opts.SocketPath, d.opts.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		s.close()
		return nil, errors.New("device destroyed")
	}
	d.dialing = s
	d.mu.Unlock()
	fail := func(err error) (*session, error) {
		d.mu.Lock()
		d.dialing = nil
		d.mu.Unlock()
		s.close()
		return nil, err
	}
	if err := s.negotiate(d.eventIdx, time.Now().Add(d.opts.ConnectTimeout)); err != nil {
		return fail(err)
	}
	if s.acked != d.acked {
		return fail(fmt.Errorf("reconnect to %s: back end negotiates features %#x, the device was attached with %#x", d.opts.SocketPath, s.acked, d.acked))
	}
	if c := s.config; c.CapacitySectors != d.cfg.CapacitySectors || c.BlkSize != d.cfg.BlkSize {
		return fail(fmt.Errorf("reconnect to %s: back end has %d sectors of %d bytes, the device had %d of %d",
			d.opts.SocketPath, c.CapacitySectors, c.BlkSize, d.cfg.CapacitySectors, d.cfg.BlkSize))
	}
	if lim := s.queueLimit(); lim < len(d.queues) {
		return fail(fmt.Errorf("reconnect to %s: back end serves %d queue(s), the device uses %d", d.opts.SocketPath, lim, len(d.queues)))
	}
	if err := d.startSession(s); err != nil {
		return fail(err)
	}
	d.mu.Lock()
	d.dialing = nil
	d.mu.Unlock()
	return s, nil
}

// eventfd creates a non-blocking eventfd.
func eventfd() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	return fd, nil
}
