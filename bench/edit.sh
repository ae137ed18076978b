#!/usr/bin/env bash
# Small edits of a large file, made durable: a 4 KiB write in the middle
# of a 1 GiB file then fsync, and a line appended then fsync, each 5 times
# (median), on a fresh monofs mount and on bindfs over a plain directory;
# then a 100 GiB sparse file (truncate + fsync) and 1 MiB written into its
# middle + fsync. A flush used to cut the whole file again for any change,
# holes included. Run as root:
#   MONOFS_BIN=target/release/monofs bash bench/edit.sh [WORK]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup edit.sh /var/tmp/mb "${1:-}"
need_file -x "$MONOFS_BIN" "set MONOFS_BIN"
need bindfs
((EUID == 0)) || { echo "$BENCH: run as root (FUSE)" >&2; exit 2; }
SRC=$WORK/src.bin
[[ -f $SRC ]] || head -c 1G /dev/urandom >"$SRC"
R=$WORK/edit-repo M=$WORK/edit-mnt P=$WORK/edit-plain B=$WORK/edit-bindfs
rm -rf "$R" "$P"; mkdir -p "$M" "$P" "$B"
"$MONOFS_BIN" init "$R" >/dev/null
"$MONOFS_BIN" mount "$R" "$M" >/dev/null 2>&1 &
bindfs "$P" "$B"
trap '"$MONOFS_BIN" detach "$M" >/dev/null 2>&1 || true; fusermount -u "$B" || true; rm -rf "$R" "$P"' EXIT
for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
for dir in "$M" "$B"; do dd if="$SRC" of="$dir/big" bs=1M conv=fsync status=none; done

# seconds for one edit + fsync: KIND is "write" (4 KiB at block N) or "append"
edit() {
    local file=$1 kind=$2 n=$3 s e
    s=$(date +%s%N)
    if [[ $kind == write ]]; then
        dd if=/dev/urandom of="$file" bs=4k count=1 seek="$n" conv=notrunc,fsync status=none
    else
        echo "one more line" | dd of="$file" oflag=append conv=notrunc,fsync status=none
    fi
    e=$(date +%s%N)
    awk -v ns=$((e - s)) 'BEGIN { printf "%.3f", ns / 1e9 }'
}

echo "| edit + fsync, 1 GiB file, median of 5 | monofs | bindfs | monofs/bindfs |"
echo "|---|---|---|---|"
for kind in write append; do
    declare -a mono=() peer=()
    for i in 1 2 3 4 5; do
        wait_quiet
        mono+=("$(edit "$M/big" "$kind" $((i * 37000)))")
        peer+=("$(edit "$B/big" "$kind" $((i * 37000)))")
    done
    m=$(median "${mono[@]}") p=$(median "${peer[@]}")
    echo "| $kind | $m s | $p s | $(ratio "$m" "$p") |"
    log "$kind: monofs ${mono[*]}; bindfs ${peer[*]}"
done

sparse_create() { truncate -s 100G "$1" && dd if=/dev/null of="$1" conv=notrunc,fsync status=none; }
sparse_write() { dd if=/dev/urandom of="$1" bs=1M count=1 seek=51200 conv=notrunc,fsync status=none; }
# seconds a command takes
secs() {
    local s e
    s=$(date +%s%N)
    "$@"
    e=$(date +%s%N)
    awk -v ns=$((e - s)) 'BEGIN { printf "%.3f", ns / 1e9 }'
}
echo
echo "| 100 GiB sparse file | monofs | bindfs | monofs/bindfs |"
echo "|---|---|---|---|"
for step in "sparse_create:truncate -s 100G + fsync" "sparse_write:1 MiB at 50 GiB + fsync"; do
    wait_quiet
    m=$(secs "${step%%:*}" "$M/disk.img") p=$(secs "${step%%:*}" "$B/disk.img")
    echo "| ${step#*:} | $m s | $p s | $(ratio "$m" "$p") |"
done
