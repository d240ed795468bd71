// Package vm runs Linux guests under QEMU as real peers for end-to-end
// tests: the guest kernel's virtio-blk driver against a vhost-user-blk
// target, the kernel's NVMe/TCP and NVMe/RDMA initiators and targets,
// Soft-RoCE (rdma_rxe), fio and nvme-cli.
//
// # Image
//
// Build (and Require, which tests call) installs the Debian packages in
// Packages when they are missing, downloads the kernel package that
// linux-image-amd64 currently depends on, unpacks its modules, extracts the
// uncompressed vmlinux from the bzImage (QEMU boots it through its PVH
// entry, skipping decompression), and writes a newc initramfs (static
// busybox, /init, BootModules and ScriptModules with their dependencies,
// nvme, mkfs.ext4, blkdiscard, rdma, ibv_rc_pingpong and rping with their
// shared libraries) and a read-only ext2 tools disk holding fio and its
// libraries, which the guest mounts at ToolsMount on first use. Everything
// is cached under build/vm and rebuilt only when the kernel package
// version or an input file changes.
//
// # Guests
//
// Each boot appends a small second archive with the script, its environment
// and per-boot files (Config.Files: for example static Go binaries from
// BuildGo) to a copy of the base image. /init mounts the usual file
// systems, loads BootModules, sets up lo and eth0 (user-mode network: guest
// 10.0.2.15, host 10.0.2.2), mounts the 9p share at /host, runs the script,
// prints "@@hpvm exit=N@@" on the serial console and powers off; QEMU runs
// with -no-reboot, so that ends it. KVM is not usable here, so guests run
// under TCG (-accel tcg,thread=multi -cpu max) and reach a script in about
// 3 s; guest IO rates are bound by emulation, so measure Hyperpath's speed
// from host-side clients, not inside guests.
//
// # Ownership and lifecycle
//
// A Guest owns its QEMU process (killed by PID), its temporary directory,
// and, for Hugetlbfs memory, a private hugetlbfs mount and the huge pages it
// added to the pool. Start → (WaitFor, host-side actions) → Wait → Kill;
// Kill releases everything and is idempotent. Boot registers Kill with
// t.Cleanup, so a failing test still cleans up. A StorageDaemon owns its
// qemu-storage-daemon process and socket the same way. Guests are
// independent: tests may run several at once, but the host has few cores
// and TCG is CPU-bound, so keep them few.
//
// # Reusable checks
//
// CheckVhostBlk boots a guest on a vhost-user-blk socket and runs the
// standard disk check (queues, fio randwrite+verify at several block sizes
// and queue depths, blkdiscard, mkfs.ext4, file checksums across
// drop_caches and a remount). CheckNVMeTCP runs the same check on a
// namespace that the guest's kernel initiator connects to over NVMe/TCP.
// StartKernelTarget runs the kernel's nvmet target in a guest behind a
// host port, and StartQSD runs qemu-storage-daemon's vhost-user-blk export.
package vm
