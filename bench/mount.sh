#!/usr/bin/env bash
# FUSE mount benchmark: `monofs mount` vs bindfs over a plain directory on
# the same disk, side by side in one run (issue #4 targets).
#
#   bash bench/mount.sh [WORK_DIR]        (default WORK_DIR: /var/tmp/mb)
#
# Environment:
#   MONOFS_BIN      monofs binary (default: target/release/monofs of this repo)
#   KERNEL_TARBALL  source tarball (default: /usr/src/linux-source-6.1.tar.xz)
#   RUNS            repetitions of the read / write / find steps (default: 2)
#   WAIT_QUIET_MAX  before each timed step wait up to this many seconds for
#                   the machine to be idle (default: 300; 0 = don't wait)
#   ENCRYPTED_READ  1 = also time the cold/warm read from an encrypted
#                   repository (MONOFS_PASSPHRASE), default 1
#   SKIP_TREE       1 = skip steps 3 and 4 (kernel tree extract / find)
#   ONLY_TREE       1 = run only steps 3 and 4
#
# Needs root (drop_caches, FUSE), bindfs, fusermount3, GNU time, xz.
# Steps (monofs and bindfs alternate which goes first):
#   1. dd read of a 1 GiB random file, cold (remount + drop_caches) and warm
#   2. dd write of a 1 GiB file with conv=fsync (source in page cache)
#   3. tar xf of the Linux 6.1 tarball into the mount (+ monofs commit;
#      bindfs: + sync, reported separately)
#   4. find MNT -type f | xargs stat >/dev/null, warm
# Peak RSS of the mount processes comes from /proc/PID/status (VmHWM).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup mount.sh /var/tmp/mb "${1:-}"
KERNEL_TARBALL=${KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
RUNS=${RUNS:-2}
ENCRYPTED_READ=${ENCRYPTED_READ:-1}
SKIP_TREE=${SKIP_TREE:-0}
ONLY_TREE=${ONLY_TREE:-0}
unset MONOFS_PASSPHRASE

need bindfs fusermount3 mountpoint xz
need_file -x "$TIME" "apt-get install -y time"
need_file -x "$MONOFS_BIN" "set MONOFS_BIN"
start_run "$WORK/logs-mount"

# ---------------------------------------------------------------- mounts
MREPO=$WORK/repo-mount
EREPO=$WORK/repo-mount-enc
MMNT=$WORK/mnt-monofs
PLAIN=$WORK/plain
BMNT=$WORK/mnt-bindfs
MPID=
PEAK_M=0

cleanup() {
    mountpoint -q "$MMNT" && { "$MONOFS_BIN" detach "$MMNT" >/dev/null 2>&1 || umount -l "$MMNT" || true; }
    mountpoint -q "$BMNT" && { fusermount3 -u "$BMNT" || umount -l "$BMNT" || true; }
    return 0
}
trap cleanup EXIT
cleanup

# mount_monofs REPO: mounts REPO on $MMNT in the background, sets MPID.
mount_monofs() {
    "$MONOFS_BIN" mount "$1" "$MMNT" >>"$LOGS/monofs-mount.log" 2>&1 &
    MPID=$!
    local i
    for i in $(seq 1 300); do
        mountpoint -q "$MMNT" && return 0
        kill -0 "$MPID" 2>/dev/null || { log "monofs mount exited early"; tail -n 20 "$LOGS/monofs-mount.log" >&2; return 1; }
        sleep 0.1
    done
    log "monofs mount did not appear in 30 s"; return 1
}
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# detach_monofs LABEL: records VmHWM of the mount process, detaches, waits.
declare -A HWM
detach_monofs() {
    local h
    h=$(hwm "$MPID")
    HWM[$1]=$h
    if ((h > PEAK_M)); then PEAK_M=$h; fi
    local rc=0
    "$MONOFS_BIN" detach "$MMNT" >>"$LOGS/monofs-detach.log" 2>&1 || rc=$?
    ((rc == 0)) || FAILURES+=("monofs detach $MMNT (after $1): exit $rc: $(tail -n 3 "$LOGS/monofs-detach.log" | tr '\n' ' ')")
    wait "$MPID" || FAILURES+=("monofs mount process (after $1) exited with $?: $(tail -n 3 "$LOGS/monofs-mount.log" | tr '\n' ' ')")
    MPID=
}
mount_bindfs() { bindfs "$PLAIN" "$BMNT"; }
umount_bindfs() { fusermount3 -u "$BMNT"; }

# dd helpers; the throughput is computed from bytes / dd's own seconds.
ddsecs() { { grep -E 'copied' "$LOGS/$1.err" 2>/dev/null | sed -E 's/.*copied, ([0-9.e+-]+) s.*/\1/'; } || true; }
mibs() { awk -v s="$1" 'BEGIN { if (s == "" || s + 0 == 0) print ""; else printf "%.0f", 1024 / s }'; }   # 1 GiB file
# best of a list of numbers (max for throughput), median

# ---------------------------------------------------------------- data
SRC=$WORK/src.bin
[[ -f $SRC && $(stat -c %s "$SRC") == 1073741824 ]] || { log "making $SRC (1 GiB random)"; head -c 1G /dev/urandom >"$SRC"; }
TAR=$WORK/linux.tar
[[ -f $TAR ]] || { log "decompressing $KERNEL_TARBALL to $TAR"; xz -dc "$KERNEL_TARBALL" >"$TAR.tmp"; mv "$TAR.tmp" "$TAR"; }

log "fresh repository $MREPO and plain directory $PLAIN"
rm -rf "$MREPO" "$EREPO" "$PLAIN" "$MMNT" "$BMNT"
mkdir -p "$MMNT" "$BMNT" "$PLAIN"
"$MONOFS_BIN" init "$MREPO" >"$LOGS/init.out" 2>&1

if [[ $ONLY_TREE != 1 ]]; then
# ---------------------------------------------------------------- 1. read
log "1. put the 1 GiB random file in both (untimed)"
mount_monofs "$MREPO"
cp "$SRC" "$MMNT/big"
"$MONOFS_BIN" commit "$MREPO" -m big >"$LOGS/commit-big.out" 2>&1 || FAILURES+=("commit big: $(tail -n 3 "$LOGS/commit-big.out" | tr '\n' ' ')")
detach_monofs put-big
cp "$SRC" "$PLAIN/big"
sync

READ_OK_M=pass
read_monofs() { # $1 = run number
    mount_monofs "$MREPO"; drop_caches
    timed "1r-cold-monofs-$1" dd if="$MMNT/big" of=/dev/null bs=1M
    timed "1r-warm-monofs-$1" dd if="$MMNT/big" of=/dev/null bs=1M
    if [[ $1 == 1 ]]; then cmp "$SRC" "$MMNT/big" >"$LOGS/cmp-big.out" 2>&1 || { READ_OK_M=FAIL; FAILURES+=("cmp src.bin monofs big: $(cat "$LOGS/cmp-big.out")"); }; fi
    detach_monofs "read-$1"
}
read_bindfs() {
    mount_bindfs; drop_caches
    timed "1r-cold-bindfs-$1" dd if="$BMNT/big" of=/dev/null bs=1M
    timed "1r-warm-bindfs-$1" dd if="$BMNT/big" of=/dev/null bs=1M
    umount_bindfs
}
for r in $(seq 1 "$RUNS"); do
    log "1. sequential read, run $r"
    if ((r % 2)); then read_monofs "$r"; read_bindfs "$r"; else read_bindfs "$r"; read_monofs "$r"; fi
done

if [[ $ENCRYPTED_READ == 1 ]]; then
    log "1e. encrypted repository: same read (monofs only)"
    export MONOFS_PASSPHRASE=monofs-bench-passphrase
    "$MONOFS_BIN" init "$EREPO" --encrypt >"$LOGS/init-enc.out" 2>&1
    mount_monofs "$EREPO"
    cp "$SRC" "$MMNT/big"
    "$MONOFS_BIN" commit "$EREPO" -m big >"$LOGS/commit-big-enc.out" 2>&1 || FAILURES+=("commit big (encrypted): $(tail -n 3 "$LOGS/commit-big-enc.out" | tr '\n' ' ')")
    detach_monofs put-big-enc
    mount_monofs "$EREPO"; drop_caches
    timed 1r-cold-monofs-enc dd if="$MMNT/big" of=/dev/null bs=1M
    timed 1r-warm-monofs-enc dd if="$MMNT/big" of=/dev/null bs=1M
    detach_monofs read-enc
    unset MONOFS_PASSPHRASE
    rm -rf "$EREPO"
fi

# ---------------------------------------------------------------- 2. write
write_monofs() {
    mount_monofs "$MREPO"
    cat "$SRC" >/dev/null
    timed "2w-monofs-$1" dd if="$SRC" of="$MMNT/w" bs=1M conv=fsync
    rm -f "$MMNT/w"
    "$MONOFS_BIN" commit "$MREPO" -m "rm w" >>"$LOGS/commit-w.out" 2>&1 || true
    detach_monofs "write-$1"
}
write_bindfs() {
    mount_bindfs
    cat "$SRC" >/dev/null
    timed "2w-bindfs-$1" dd if="$SRC" of="$BMNT/w" bs=1M conv=fsync
    rm -f "$BMNT/w"; sync
    umount_bindfs
}
for r in $(seq 1 "$RUNS"); do
    log "2. sequential write + fsync, run $r"
    if ((r % 2)); then write_bindfs "$r"; write_monofs "$r"; else write_monofs "$r"; write_bindfs "$r"; fi
done

fi

# ---------------------------------------------------------------- 3, 4. tree
if [[ $SKIP_TREE != 1 ]]; then
    log "3. tar xf of $TAR into both (bindfs first, then monofs)"
    cat "$TAR" >/dev/null
    mount_bindfs
    mkdir "$BMNT/linux"
    # tar and the step that makes the data durable (sync / commit) are timed
    # as ONE command: no quiet-wait in between, because monofs' flusher
    # thread keeps persisting the tree in the background after tar returns.
    timed 3-tar-bindfs bash -c "tar xf '$TAR' -C '$BMNT/linux' && date +%s.%N >'$LOGS/3-bindfs.mid' && sync"
    cat "$TAR" >/dev/null
    mount_monofs "$MREPO"
    mkdir "$MMNT/linux"
    timed 3-tar-monofs bash -c "tar xf '$TAR' -C '$MMNT/linux' && date +%s.%N >'$LOGS/3-monofs.mid' && '$MONOFS_BIN' commit '$MREPO' -m 'linux tree'"
    FILES_M=$(find "$MMNT/linux" -type f | wc -l)
    FILES_B=$(find "$BMNT/linux" -type f | wc -l)
    BYTES_M=$(du -sb --apparent-size "$MMNT/linux" | awk '{print $1}')
    BYTES_B=$(du -sb --apparent-size "$BMNT/linux" | awk '{print $1}')
    SAMPLE_OK=pass
    (cd "$BMNT/linux" && find . -type f | awk 'NR % 97 == 0') >"$LOGS/sample.txt"
    while IFS= read -r f; do cmp -s "$BMNT/linux/$f" "$MMNT/linux/$f" || { SAMPLE_OK=FAIL; echo "$f" >>"$LOGS/sample-mismatch.txt"; }; done <"$LOGS/sample.txt"
    [[ $SAMPLE_OK == pass ]] || FAILURES+=("tree content sample mismatch: $(head -n 3 "$LOGS/sample-mismatch.txt" | tr '\n' ' ')")

    log "4. find | xargs stat, warm (one untimed pass each first)"
    statwalk() { find "$1" -type f -print0 | xargs -0 stat >/dev/null; }
    export -f statwalk
    bash -c "statwalk $MMNT/linux"; bash -c "statwalk $BMNT/linux"
    for r in $(seq 1 "$((RUNS + 1))"); do
        if ((r % 2)); then
            timed "4-find-monofs-$r" bash -c "statwalk $MMNT/linux"
            timed "4-find-bindfs-$r" bash -c "statwalk $BMNT/linux"
        else
            timed "4-find-bindfs-$r" bash -c "statwalk $BMNT/linux"
            timed "4-find-monofs-$r" bash -c "statwalk $MMNT/linux"
        fi
    done
    detach_monofs tree
    umount_bindfs
    # Cold walk after remount (informational).
    mount_monofs "$MREPO"; mount_bindfs; drop_caches
    timed 4-find-cold-monofs bash -c "statwalk $MMNT/linux"
    drop_caches
    timed 4-find-cold-bindfs bash -c "statwalk $BMNT/linux"
    detach_monofs tree-cold
    umount_bindfs
fi

# ---------------------------------------------------------------- report
collect() { # prefix tool -> list of values
    local p=$1 t=$2 r out=()
    for r in $(seq 1 "$RUNS"); do out+=("${WALL[$p-$t-$r]:-}"); done
    echo "${out[@]}"
}
thr_list() { # dd label prefix tool -> MiB/s values
    local p=$1 t=$2 r out=()
    for r in $(seq 1 "$RUNS"); do out+=("$(mibs "$(ddsecs "$p-$t-$r")")"); done
    echo "${out[@]}"
}
# shellcheck disable=SC2046
{
    RC_M=$(maxof $(thr_list 1r-cold monofs)); RC_B=$(maxof $(thr_list 1r-cold bindfs))
    RW_M=$(maxof $(thr_list 1r-warm monofs)); RW_B=$(maxof $(thr_list 1r-warm bindfs))
    W_M=$(maxof $(thr_list 2w monofs)); W_B=$(maxof $(thr_list 2w bindfs))
    F_M=$(median $(for r in $(seq 1 $((RUNS + 1))); do echo "${WALL[4-find-monofs-$r]:-}"; done))
    F_B=$(median $(for r in $(seq 1 $((RUNS + 1))); do echo "${WALL[4-find-bindfs-$r]:-}"; done))
}
# split of the one timed command at the tar/commit boundary: the .mid
# timestamp against the command's end (mtime of its .time file)
split3() { # tool -> "tar_s rest_s"
    local mid end total=${WALL[3-tar-$1]:-}
    [[ -f $LOGS/3-$1.mid && -n $total ]] || { echo " "; return 0; }
    mid=$(cat "$LOGS/3-$1.mid"); end=$(stat -c %.9Y "$LOGS/3-tar-$1.time")
    awk -v m="$mid" -v e="$end" -v t="$total" 'BEGIN { r = e - m; if (r < 0) r = 0; printf "%.2f %.2f", t - r, r }'
}
TC_M=${WALL[3-tar-monofs]:-}; read -r T_M C_M <<<"$(split3 monofs)"
TS_B=${WALL[3-tar-bindfs]:-}; read -r T_B S_B <<<"$(split3 bindfs)"
R1C=$(ratio "$RC_M" "$RC_B"); R1W=$(ratio "$RW_M" "$RW_B"); R2=$(ratio "$W_M" "$W_B")
R3=$(ratio "$TC_M" "$T_B"); R3S=$(ratio "$TC_M" "$TS_B"); R4=$(ratio "$F_M" "$F_B")
ENC_C=$(mibs "$(ddsecs 1r-cold-monofs-enc 2>/dev/null || true)"); ENC_W=$(mibs "$(ddsecs 1r-warm-monofs-enc 2>/dev/null || true)")
mb() { [[ -n $1 ]] && echo "$1 MiB/s" || echo "FAILED/n/a"; }
sx() { [[ -n $1 ]] && echo "$1 s" || echo "n/a"; }

{
    echo "## monofs mount (FUSE) vs bindfs"
    echo
    echo "Run: $(date -u +%FT%TZ); $(nproc) cores; $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; kernel $(uname -r);"
    echo "$("$MONOFS_BIN" --version) ($MONOFS_BIN, sha256 $(sha256sum "$MONOFS_BIN" | cut -c1-12)); $(bindfs --version | head -n1). Runs per step: $RUNS (best throughput / median time reported)."
    echo
    echo "| Measurement | monofs | bindfs | monofs/bindfs | Target | Met |"
    echo "|---|---|---|---|---|---|"
    if [[ $ONLY_TREE != 1 ]]; then
    echo "| 1. dd read 1 GiB, cold (remount + drop_caches), best | $(mb "$RC_M") | $(mb "$RC_B") | ${R1C}x | >= 0.8x | $(ge "$R1C" 0.8) |"
    echo "| 1. dd read 1 GiB, warm (second read), best | $(mb "$RW_M") | $(mb "$RW_B") | ${R1W}x | >= 1x | $(ge "$R1W" 1.0) |"
    echo "| 1. bytes read back identical (cmp) | $READ_OK_M | | | | |"
    if [[ $ENCRYPTED_READ == 1 ]]; then
        echo "| 1e. dd read 1 GiB, encrypted repo, cold / warm | $(mb "$ENC_C") / $(mb "$ENC_W") | (as above) | $(ratio "$ENC_C" "$RC_B")x / $(ratio "$ENC_W" "$RW_B")x | (info) | |"
    fi
    echo "| 2. dd write 1 GiB + fsync, best | $(mb "$W_M") | $(mb "$W_B") | ${R2}x | >= 0.5x | $(ge "$R2" 0.5) |"
    fi
    if [[ $SKIP_TREE != 1 ]]; then
        echo "| 3. tar xf linux-6.1 (monofs: tar && commit; bindfs: tar only) | $(sx "$TC_M") (tar ~$T_M + commit ~$C_M) | $(sx "$T_B") | ${R3}x | <= 2x | $(le "$R3" 2.0) |"
        echo "| 3. same, bindfs: tar && sync | | $(sx "$TS_B") (tar ~$T_B + sync ~$S_B) | ${R3S}x | (info) | |"
        echo "| 3. files / bytes in tree | $FILES_M / $BYTES_M | $FILES_B / $BYTES_B | | | |"
        echo "| 3. content sample (every 97th file) identical | $SAMPLE_OK | | | | |"
        echo "| 4. find -type f \| xargs stat, warm, median | $(sx "$F_M") | $(sx "$F_B") | ${R4}x | <= 1x | $(le "$R4" 1.0) |"
        echo "| 4. same, cold (remount + drop_caches) | $(sx "${WALL[4-find-cold-monofs]:-}") | $(sx "${WALL[4-find-cold-bindfs]:-}") | $(ratio "${WALL[4-find-cold-monofs]:-}" "${WALL[4-find-cold-bindfs]:-}")x | (info) | |"
    fi
    echo "| peak RSS of the monofs mount process (max VmHWM) | $(awk -v k="$PEAK_M" 'BEGIN { printf "%.0f MiB", k / 1024 }') | | | | |"
    echo
    echo "Raw (label: wall s / machine-wide busy CPU s meanwhile / exit):"
    echo
    echo '```'
    for l in $(printf '%s\n' "${!WALL[@]}" | sort); do
        extra=
        [[ $l == 1r-* || $l == 2w-* ]] && extra=" dd: $(ddsecs "$l") s = $(mibs "$(ddsecs "$l")") MiB/s"
        printf '%-22s %8s s  busy=%6s s  rc=%s%s\n' "$l" "${WALL[$l]}" "${OTHER[$l]}" "${RC[$l]}" "$extra"
    done
    echo "VmHWM KB per mount session: $(for k in "${!HWM[@]}"; do printf '%s=%s ' "$k" "${HWM[$k]}"; done)"
    report_end
} | tee "$WORK/results-mount.md"
