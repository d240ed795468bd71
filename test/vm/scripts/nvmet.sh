# Kernel NVMe-oF target (nvmet) of hyperpath/test/vm (KernelTarget): one
# subsystem, namespace 1 on null_blk or on a file in tmpfs, one TCP or RDMA
# port on 0.0.0.0:4420 (RDMA: Soft-RoCE on eth0, 10.0.2.15). With SELFTEST
# set, the guest's own initiator connects once, moves data and
# disconnects. Prints NVMET-READY, then serves until the guest is killed.
# Env: NQN, BACKING (null_blk|file), SIZE_MIB, TRANSPORT (tcp|rdma), SELFTEST.
step() { echo "STEP $1 ok $2"; }
fail() { echo "STEP $1 FAIL $2"; exit 1; }
TRANSPORT=${TRANSPORT:-tcp}
ADDR=0.0.0.0
modprobe nvmet || fail modules "modprobe nvmet"
if [ "$TRANSPORT" = rdma ]; then
	modprobe crc32_generic; modprobe rdma_rxe && modprobe rdma_ucm && modprobe nvmet-rdma || fail modules "rdma modules"
	rdma link add rxe0 type rxe netdev eth0 || fail modules "rdma link add"
	ADDR=10.0.2.15
else
	modprobe nvmet-tcp || fail modules "modprobe nvmet-tcp"
fi
case $BACKING in
null_blk)
	modprobe null_blk nr_devices=1 gb=$(((SIZE_MIB + 1023) / 1024)) || fail backing "modprobe null_blk"
	NS=/dev/nullb0 ;;
file)
	NS=/tmp/ns.img
	dd if=/dev/zero of=$NS bs=1048576 count=0 seek=$SIZE_MIB 2>/dev/null || fail backing "cannot create $NS" ;;
*) fail backing "unknown BACKING=$BACKING" ;;
esac
N=/sys/kernel/config/nvmet
S=$N/subsystems/$NQN
mkdir $S && echo 1 >$S/attr_allow_any_host && mkdir $S/namespaces/1 || fail target "subsystem $NQN"
echo $NS >$S/namespaces/1/device_path
[ "$BACKING" = file ] && echo 1 >$S/namespaces/1/buffered_io
echo 1 >$S/namespaces/1/enable || fail target "namespace enable"
P=$N/ports/1
mkdir $P && echo $TRANSPORT >$P/addr_trtype && echo ipv4 >$P/addr_adrfam &&
	echo $ADDR >$P/addr_traddr && echo 4420 >$P/addr_trsvcid && ln -s $S $P/subsystems/$NQN || fail target "port"
step target "nqn=$NQN transport=$TRANSPORT addr=$ADDR:4420 namespace=$NS"

if [ -n "$SELFTEST" ]; then
	A=127.0.0.1
	[ "$TRANSPORT" = rdma ] && { A=10.0.2.15; modprobe nvme-rdma || fail selftest "modprobe nvme-rdma"; }
	modprobe nvme-$TRANSPORT || fail selftest "modprobe nvme-$TRANSPORT"
	nvme connect -t $TRANSPORT -a $A -s 4420 -n $NQN || fail selftest "nvme connect rc=$?"
	D=
	i=0
	while [ -z "$D" ] && [ $i -lt 100 ]; do
		# The namespace head (nvme0n1), not a hidden multipath path
		# (nvme0c0n1, no device node), which can show up first.
		for n in /sys/block/nvme*n1; do
			case ${n##*/} in nvme*c*) continue ;; esac
			[ -b /dev/${n##*/} ] || continue
			[ "$(cat $n/device/subsysnqn 2>/dev/null)" = "$NQN" ] && D=/dev/${n##*/}
		done
		[ -n "$D" ] || { sleep 0.1; i=$((i + 1)); }
	done
	[ -n "$D" ] || fail selftest "no namespace block device"
	head -c 4194304 /dev/urandom >/tmp/pat
	dd if=/tmp/pat of=$D bs=65536 oflag=direct 2>/dev/null || fail selftest "write to $D"
	r=$(dd if=$D bs=65536 count=64 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
	w=$(sha256sum </tmp/pat | cut -d' ' -f1)
	if [ "$BACKING" = file ] && [ "$r" != "$w" ]; then fail selftest "read back differs from what was written"; fi
	model=$(cat /sys/block/${D#/dev/}/device/model 2>/dev/null | tr -d ' ')
	nvme disconnect -n $NQN >/dev/null || fail selftest "nvme disconnect"
	step selftest "dev=$D transport=$TRANSPORT model=$model 4MiB written and read back"
fi
echo NVMET-READY
while :; do sleep 3600; done
