# Standard disk check of hyperpath/test/vm (DiskCheck). Prints one line
# "STEP <name> ok|FAIL <detail>" per step and stops at the first failure.
# Env: DEV (/dev/vda), QUEUES (expected hardware queues, empty: any),
# FIO_JOBS ("bs:qd ..."), FIO_MIB (region per job), NODATA (set: the device
# keeps no data, so no verify, zero-out or file system), DISCARD (set: run
# blkdiscard), FS_MIB (random data written through ext4).
D=${DEV:-/dev/vda}
B=${D#/dev/}
FIO_MIB=${FIO_MIB:-8}
# busybox sh runs its own applets before PATH: name util-linux's by path.
BLKDISCARD=/usr/sbin/blkdiscard
FS_MIB=${FS_MIB:-8}
step() { echo "STEP $1 ok $2"; }
fail() { echo "STEP $1 FAIL $2"; exit 1; }
now() { cut -d' ' -f1 /proc/uptime; }

i=0
while [ ! -b "$D" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -b "$D" ] || fail device "no block device $D"
sz=$(($(cat /sys/block/$B/size) * 512))
q=$(ls /sys/block/$B/mq | wc -l)
step device "size=$sz queues=$q lbs=$(cat /sys/block/$B/queue/logical_block_size)"
if [ -n "$QUEUES" ] && [ "$q" != "$QUEUES" ]; then
	fail queues "have $q hardware queues, want $QUEUES"
fi

off=0
for j in $FIO_JOBS; do
	bs=${j%%:*}
	qd=${j#*:}
	name=fio-$bs-qd$qd
	[ $(((off + FIO_MIB) * 1048576)) -le $sz ] || fail $name "region ${off}M+${FIO_MIB}M beyond the ${sz}-byte device"
	if [ -n "$NODATA" ]; then
		mode="--rw=randrw --rwmixread=50"
	else
		mode="--rw=randwrite --verify=crc32c --do_verify=1 --verify_fatal=1"
	fi
	t0=$(now)
	fio --name=$name --filename=$D --direct=1 --ioengine=libaio --bs=$bs --iodepth=$qd \
		--offset=${off}M --size=${FIO_MIB}M $mode --output=/tmp/$name.log >/tmp/$name.err 2>&1
	rc=$?
	if [ $rc != 0 ]; then
		cat /tmp/$name.log /tmp/$name.err
		fail $name "fio rc=$rc"
	fi
	w=$(sed -n 's/.*write: IOPS=\([^,]*\),.*/\1/p' /tmp/$name.log | head -1)
	r=$(sed -n 's/.*read: IOPS=\([^,]*\),.*/\1/p' /tmp/$name.log | head -1)
	step $name "write_iops=$w read_iops=$r secs=$(echo "$(now) $t0" | awk '{printf "%.1f", $1 - $2}')"
	off=$((off + FIO_MIB))
done

if [ -n "$DISCARD" ]; then
	dmax=$(cat /sys/block/$B/queue/discard_max_bytes)
	[ "$dmax" -gt 0 ] || fail discard "the device offers no discard (discard_max_bytes=0)"
	$BLKDISCARD -o 0 -l $((FIO_MIB * 1048576)) $D || fail discard "blkdiscard rc=$?"
	step discard "discard_max_bytes=$dmax"
fi

[ -n "$NODATA" ] && exit 0

# Write zeroes (BLKZEROOUT) over a region fio filled, then read it back.
$BLKDISCARD -z -o 0 -l 1048576 $D || fail zeroout "blkdiscard -z rc=$?"
z=$(dd if=$D bs=65536 count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$z" = "$(head -c 1048576 /dev/zero | sha256sum | cut -d' ' -f1)" ] || fail zeroout "region reads back non-zero"
step zeroout "1 MiB"

modprobe ext4
mkfs.ext4 -F -q -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 $D >/tmp/mkfs.log 2>&1 || { cat /tmp/mkfs.log; fail mkfs "mkfs.ext4 failed"; }
mkdir -p /mnt/check /tmp/src
mount -t ext4 $D /mnt/check || fail mkfs "mount failed"
head -c $((FS_MIB * 1048576)) /dev/urandom >/tmp/src/big
for i in 1 2 3 4 5 6 7 8; do # few: every fork costs under TCG
	head -c $((i * 7919)) /dev/urandom >/tmp/src/small$i
done
(cd /tmp/src && sha256sum * >/tmp/sums)
cp /tmp/src/* /mnt/check/ || fail fs "copy failed"
sync
echo 3 >/proc/sys/vm/drop_caches
(cd /mnt/check && sha256sum -c -s /tmp/sums) || fail checksum "mismatch after sync and drop_caches"
umount /mnt/check || fail fs "umount failed"
echo 3 >/proc/sys/vm/drop_caches
mount -t ext4 -o ro $D /mnt/check || fail fs "remount failed"
(cd /mnt/check && sha256sum -c -s /tmp/sums) || fail checksum "mismatch after remount"
umount /mnt/check
step checksum "9 files, $((FS_MIB * 1048576 + 7919 * 36)) bytes through ext4, re-read after drop_caches and remount"
