// Package local is the bdev module for files and block devices on this
// node, driven through io_uring (internal/uring). It serves SPDK's
// bdev_uring_create and bdev_aio_create: both build the same Disk and
// differ only in product name, driver_specific and save_config shape
// (Options.Flavor).
//
// # Opening
//
// New opens the file with O_DIRECT, so that reads and writes move data
// between the device and the IO's own buffers (guest memory) with no copy
// and no page cache. Where the file system refuses O_DIRECT (EINVAL) it
// opens the file buffered and logs a note; DriverSpecific reports which
// ("o_direct"). With O_DIRECT a second, buffered descriptor of the same file
// is kept for IOs whose buffers are not aligned the way the kernel wants
// (statx STATX_DIOALIGN): such IOs go through the page cache instead of
// failing, still without a copy in this process. The kernel keeps the two
// views coherent (a direct read first writes back dirty cached pages of its
// range; a direct write invalidates them).
//
// Block size: zero means autodetect: the logical block size of a block
// device (BLKSSZGET), the O_DIRECT offset alignment of a file
// (STATX_DIOALIGN), or 512 for a buffered file. SPDK's aio and uring
// modules refuse a regular file without an explicit block size; we detect
// one instead. A given size must be a power of two, at least 512 and at
// least the detected size, and the file size must be a non-zero multiple of
// it.
//
// # Threading
//
// A Disk is shared by every reactor and holds no per-IO state. Each
// reactor's channel owns an io_uring created in NewChannel. On a running
// reactor NewChannel runs on the reactor's locked OS thread, so the ring is
// SINGLE_ISSUER and DEFER_TASKRUN: every later use of the ring (Submit, the
// poller, Close) happens on that same thread, and the kernel posts
// completions only when the poller asks, without interrupting the core. A
// channel created elsewhere (a reactor not started yet, a test stepping
// Poll from an ordinary goroutine, which Go may move between threads) gets
// a plain ring that any thread may drive. The file descriptors are
// registered with the ring (fixed files).
//
// Per channel, a fixed array of tasks carries each IO's state between
// Submit and its completion: the iovec array handed to the kernel (built
// straight from io.Iovs, no copy), the file used and the progress of
// multi-step operations. A task's index is both io.DriverCtx and the SQE's
// UserData. Submit only prepares SQEs; the channel's poller submits them all
// with one io_uring_enter per iteration, then reaps the CQ ring in user space
// and completes IOs. Nothing on that path allocates (checked by
// testing.AllocsPerRun), locks, or logs.
//
// The ring's eventfd is registered with the reactor (WatchFd) so an
// adaptive reactor that sleeps is woken by completions. The poller keeps the
// eventfd disabled (IORING_CQ_EVENTFD_DISABLED) while it polls; its Arm hook
// enables it before the reactor sleeps and vetoes the sleep if completions
// or unsubmitted SQEs are already there.
//
// # Operations
//
//   - read, write: readv/writev on the fixed file; short transfers continue
//     where they stopped; -EINVAL from O_DIRECT retries once buffered.
//   - flush: fdatasync.
//   - unmap (Options.Fallocate): fallocate PUNCH_HOLE|KEEP_SIZE.
//   - write_zeroes (Options.Fallocate): fallocate ZERO_RANGE; if the file
//     system does not support it, PUNCH_HOLE|KEEP_SIZE; if that fails too,
//     writes from a shared read-only page of zeroes. The fallback is
//     remembered per Disk.
//   - reset: completes once every IO that was outstanding on any channel of
//     the Disk when it arrived has completed.
//
// Out of tasks or SQ slots an IO completes with bdev.StatusNoMem and the
// generic layer retries it.
//
// # Lifecycle
//
// New (opens, probes) -> Registry.Register -> Desc.GetChannel on each
// reactor (NewChannel) -> IO -> PutChannel (channel Close, on its reactor,
// after its IO completed) -> Unregister -> Destroy (closes the files).
package local
