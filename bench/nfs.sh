#!/usr/bin/env bash
# NFS server benchmark: `monofs serve --nfs` vs the nfsserve crate's
# mirrorfs example (a passthrough NFSv3 server over a plain directory on
# the same disk), side by side in one run (issue #5 targets). The client is
# libnfs-utils' nfs-cp (user space, no kernel NFS mount).
#
#   bash bench/nfs.sh [WORK_DIR]        (default WORK_DIR: /var/tmp/mb)
#
# Environment:
#   MONOFS_BIN      monofs binary (default: target/release/monofs of this repo)
#   MIRROR_BIN      the mirrorfs example built as a binary taking DIR [PORT]
#                   (default: WORK_DIR/nfsmirror/target/release/nfsmirror;
#                   see docs/BENCHMARKS-mount.md for how it is built)
#   RUNS            repetitions of the read / write steps (default: 2)
#   WAIT_QUIET_MAX  wait up to this many seconds for an idle machine before
#                   each timed step (default: 300; 0 = don't wait)
#
# Needs root (drop_caches), libnfs-utils (nfs-cp), GNU time, ss.
# Steps (monofs and the mirror alternate which goes first):
#   1. write: nfs-cp a 512 MiB random file (in page cache) to the server
#   2. read:  restart the server (cold chunk cache), drop_caches, nfs-cp
#             the file to /dev/shm, cmp with the source
#   3. 8 concurrent clients, each copies a distinct 32 MiB file in and back
#      out and cmp's it; total wall time and pass/fail
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup nfs.sh /var/tmp/mb "${1:-}"
MIRROR_BIN=${MIRROR_BIN:-$WORK/nfsmirror/target/release/nfsmirror}
RUNS=${RUNS:-2}
PORT_M=${PORT_M:-12049}
PORT_P=${PORT_P:-12050}
SHM=/dev/shm/monofs-nfs-bench
unset MONOFS_PASSPHRASE

need nfs-cp ss cmp
need_file -x "$MONOFS_BIN" "set MONOFS_BIN"
need_file -x "$MIRROR_BIN" "build the mirror peer: docs/BENCHMARKS.md, NFS peer"
start_run "$WORK/logs-nfs"

MREPO=$WORK/repo-nfs
PDIR=$WORK/plain-nfs
SPID=
PEAK_M=0
declare -A HWM
url() { echo "nfs://127.0.0.1//$2?nfsport=$1&mountport=$1&version=3"; }
port_of() { [[ $1 == monofs ]] && echo "$PORT_M" || echo "$PORT_P"; }

wait_port() {
    local i
    for i in $(seq 1 300); do
        ss -ltn "sport = :$1" | grep -q LISTEN && return 0
        kill -0 "$SPID" 2>/dev/null || { log "server exited early"; return 1; }
        sleep 0.1
    done
    return 1
}
start_server() { # monofs|mirror
    if [[ $1 == monofs ]]; then
        "$MONOFS_BIN" serve "$MREPO" --nfs "127.0.0.1:$PORT_M" >>"$LOGS/serve-monofs.log" 2>&1 &
    else
        "$MIRROR_BIN" "$PDIR" "$PORT_P" >>"$LOGS/serve-mirror.log" 2>&1 &
    fi
    SPID=$!
    wait_port "$(port_of "$1")" || { FAILURES+=("$1 server did not start: $(tail -n 3 "$LOGS/serve-$1.log" | tr '\n' ' ')"); return 1; }
}
stop_server() { # name label
    local h rc=0
    h=$(awk '/^VmHWM/ { print $2 }' "/proc/$SPID/status" 2>/dev/null || echo 0)
    HWM[$1-$2]=$h
    if [[ $1 == monofs ]] && ((h > PEAK_M)); then PEAK_M=$h; fi
    kill -TERM "$SPID"
    wait "$SPID" || rc=$?
    # the mirror example has no signal handling: 143 (killed by SIGTERM) is its normal end
    if [[ $1 == monofs ]] && ((rc != 0)); then FAILURES+=("monofs serve exit $rc after $2: $(tail -n 3 "$LOGS/serve-monofs.log" | tr '\n' ' ')"); fi
    SPID=
}
cleanup() { [[ -n $SPID ]] && kill -TERM "$SPID" 2>/dev/null; rm -rf "$SHM"; return 0; }
trap cleanup EXIT

mibs() { awk -v s="$1" -v m="$2" 'BEGIN { if (s == "" || s + 0 == 0) print ""; else printf "%.0f", m / s }'; }
minof() { { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | head -n1; } || true; }

# ---------------------------------------------------------------- data
log "fresh repository $MREPO, directory $PDIR, source files in $SHM"
rm -rf "$MREPO" "$PDIR" "$SHM"
mkdir -p "$PDIR" "$SHM"
"$MONOFS_BIN" init "$MREPO" >"$LOGS/init.out" 2>&1
SRC=$WORK/src512.bin
[[ -f $SRC && $(stat -c %s "$SRC") == 536870912 ]] || head -c 512M /dev/urandom >"$SRC"
for i in $(seq 1 8); do head -c 32M /dev/urandom >"$SHM/in$i"; done

# ---------------------------------------------------------------- 1, 2
READ_OK_monofs=pass READ_OK_mirror=pass
write_one() { # name run
    local p; p=$(port_of "$1")
    start_server "$1"
    cat "$SRC" >/dev/null
    timed "w-$1-$2" nfs-cp "$SRC" "$(url "$p" "f$2")"
    stop_server "$1" "write-$2"
}
read_one() {
    local p; p=$(port_of "$1")
    drop_caches
    start_server "$1"
    rm -f "$SHM/out"
    timed "r-$1-$2" nfs-cp "$(url "$p" "f$2")" "$SHM/out"
    if ! cmp "$SRC" "$SHM/out" >"$LOGS/cmp-$1-$2.out" 2>&1; then
        printf -v "READ_OK_$1" FAIL
        FAILURES+=("$1 read run $2: bytes differ: $(cat "$LOGS/cmp-$1-$2.out")")
    fi
    rm -f "$SHM/out"
    stop_server "$1" "read-$2"
}
for r in $(seq 1 "$RUNS"); do
    log "write + read 512 MiB, run $r"
    if ((r % 2)); then A=monofs B=mirror; else A=mirror B=monofs; fi
    write_one "$A" "$r"; write_one "$B" "$r"
    read_one "$B" "$r"; read_one "$A" "$r"
done

# ---------------------------------------------------------------- 3
CONC_monofs=pass CONC_mirror=pass
concurrent() { # name
    local p i pids=() rc=0; p=$(port_of "$1")
    for i in $(seq 1 8); do
        (
            nfs-cp "$SHM/in$i" "$(url "$p" "c$i")" &&
            nfs-cp "$(url "$p" "c$i")" "$SHM/$1-out$i" &&
            cmp "$SHM/in$i" "$SHM/$1-out$i"
        ) >"$LOGS/conc-$1-$i.log" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || { rc=1; echo "client $((i + 1)) failed" >>"$LOGS/conc-$1.fail"; }; done
    return "$rc"
}
export -f concurrent url port_of
export SHM LOGS PORT_M PORT_P
for name in mirror monofs; do
    start_server "$name"
    timed "c8-$name" bash -c "concurrent $name"
    if [[ ${RC[c8-$name]} != 0 ]]; then
        printf -v "CONC_$name" FAIL
    fi
    stop_server "$name" conc
done
rm -f "$SHM"/*-out*

# ---------------------------------------------------------------- report
W_M=$(minof "${WALL[w-monofs-1]:-}" "${WALL[w-monofs-2]:-}" "${WALL[w-monofs-3]:-}")
W_P=$(minof "${WALL[w-mirror-1]:-}" "${WALL[w-mirror-2]:-}" "${WALL[w-mirror-3]:-}")
R_M=$(minof "${WALL[r-monofs-1]:-}" "${WALL[r-monofs-2]:-}" "${WALL[r-monofs-3]:-}")
R_P=$(minof "${WALL[r-mirror-1]:-}" "${WALL[r-mirror-2]:-}" "${WALL[r-mirror-3]:-}")
WT_M=$(mibs "$W_M" 512); WT_P=$(mibs "$W_P" 512); RT_M=$(mibs "$R_M" 512); RT_P=$(mibs "$R_P" 512)
RR=$(ratio "$RT_M" "$RT_P"); RW=$(ratio "$WT_M" "$WT_P")
mb() { [[ -n $1 ]] && echo "$1 MiB/s ($2 s)" || echo "FAILED"; }
{
    echo "## monofs serve --nfs vs nfsserve mirrorfs (NFSv3, libnfs nfs-cp client)"
    echo
    echo "Run: $(date -u +%FT%TZ); $(nproc) cores; kernel $(uname -r); $("$MONOFS_BIN" --version) (sha256 $(sha256sum "$MONOFS_BIN" | cut -c1-12)); mirror: $MIRROR_BIN. Runs: $RUNS (best reported)."
    echo
    echo "| Measurement | monofs | mirrorfs | monofs/mirror | Target | Met |"
    echo "|---|---|---|---|---|---|"
    echo "| read 512 MiB, server restarted + drop_caches (nfs-cp to /dev/shm), best | $(mb "$RT_M" "$R_M") | $(mb "$RT_P" "$R_P") | ${RR}x | >= 0.8x | $(ge "$RR" 0.8) |"
    echo "| read bytes identical (cmp) | $READ_OK_monofs | $READ_OK_mirror | | | |"
    echo "| write 512 MiB (nfs-cp from page cache), best | $(mb "$WT_M" "$W_M") | $(mb "$WT_P" "$W_P") | ${RW}x | >= 0.5x | $(ge "$RW" 0.5) |"
    echo "| 8 concurrent clients x 32 MiB in + out + cmp, total wall | ${WALL[c8-monofs]:-n/a} s, $CONC_monofs | ${WALL[c8-mirror]:-n/a} s, $CONC_mirror | $(ratio "${WALL[c8-mirror]:-}" "${WALL[c8-monofs]:-}")x (mirror/monofs time) | all pass | $([[ $CONC_monofs == pass ]] && echo yes || echo no) |"
    echo "| peak RSS of monofs serve (max VmHWM) | $(awk -v k="$PEAK_M" 'BEGIN { printf "%.0f MiB", k / 1024 }') | | | | |"
    echo
    echo '```'
    for l in $(printf '%s\n' "${!WALL[@]}" | sort); do printf '%-14s %8s s  rc=%s\n' "$l" "${WALL[$l]}" "${RC[$l]}"; done
    echo "VmHWM KB per server session: $(for k in $(printf '%s\n' "${!HWM[@]}" | sort); do printf '%s=%s ' "$k" "${HWM[$k]}"; done)"
    report_end
} | tee "$WORK/results-nfs.md"
