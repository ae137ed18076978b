#!/usr/bin/env bash
# How long other requests wait while the mount stores what is written: a
# 1 GiB dd (conv=fsync) into a fresh mount, while another reader cats a
# small file of the same mount every 20 ms; prints the dd figure, the worst
# cat latency and the mount's peak RSS. Run as root:
#   MONOFS_BIN=target/release/monofs bash bench/flush-latency.sh [WORK]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup flush-latency.sh /var/tmp/mb "${1:-}"
need_file -x "$MONOFS_BIN" "set MONOFS_BIN"
((EUID == 0)) || { echo "$BENCH: run as root (FUSE)" >&2; exit 2; }
SRC=$WORK/src.bin
[[ -f $SRC ]] || head -c 1G /dev/urandom >"$SRC"
R=$WORK/latency-repo M=$WORK/latency-mnt STOP=$WORK/latency.stop
rm -rf "$R" "$STOP"; mkdir -p "$M"
"$MONOFS_BIN" init "$R" >/dev/null
"$MONOFS_BIN" mount "$R" "$M" >/dev/null 2>&1 &
PID=$!
trap '"$MONOFS_BIN" detach "$M" >/dev/null 2>&1 || true; rm -rf "$R" "$STOP"' EXIT
for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
echo hi >"$M/small"
wait_quiet
(
    worst=0
    while [[ ! -e $STOP ]]; do
        s=$(date +%s%N); cat "$M/small" >/dev/null; e=$((($(date +%s%N) - s) / 1000000))
        ((e > worst)) && worst=$e
        sleep 0.02
    done
    echo "worst cat latency during the write: $worst ms"
) &
READER=$!
dd if="$SRC" of="$M/big" bs=1M conv=fsync 2>&1 | tail -n1
touch "$STOP"; wait "$READER"
grep VmHWM "/proc/$PID/status"
