#!/usr/bin/env bash
# Sync benchmark (issue 8): clone over loopback HTTP vs rsync of the
# repository directory from an rsync daemon on 127.0.0.1; backup sync after
# a ~1% change; a second sync with nothing new; restic copy between two
# restic repositories of the same data. Side by side in one run.
#
#   bash bench/sync.sh [WORK_DIR]        (default WORK_DIR: /var/tmp/bench)
#
# Data: WORK_DIR/linux (Linux 6.1 source) and WORK_DIR/linux2 (the same
# with ~1% of files changed), as bench/core.sh leaves them; run core.sh once
# first if they are missing. Everything else goes to WORK_DIR/sync (made
# afresh); results on stdout and in WORK_DIR/sync/results.md.
#
# Environment: MONOFS_BIN (default target/release/monofs), WAIT_QUIET_MAX
# (see lib.sh), BENCH_PASSPHRASE. Needs: restic, rsync, jq, GNU time.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup sync.sh /var/tmp/bench "${1:-}"
need restic rsync jq
need_file -x "$TIME" "apt-get install -y time"
need_file -x "$MONOFS_BIN" "set MONOFS_BIN"
need_file -d "$WORK/linux2" "run bench/core.sh first: it leaves WORK/linux and WORK/linux2"
PASS=${BENCH_PASSPHRASE:-monofs-bench-passphrase}
export MONOFS_PASSPHRASE=$PASS RESTIC_PASSWORD=$PASS RESTIC_FROM_PASSWORD=$PASS
S=$WORK/sync
rm -rf "$S"
mkdir -p "$S/logs"
export RESTIC_CACHE_DIR=$S/restic-cache
declare -A WALL
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# timed LABEL CMD...: wall seconds into WALL[LABEL]; output in logs/.
timed() {
    local label=$1; shift
    sync; wait_quiet
    "$TIME" -f '%e' -o "$S/logs/$label.time" "$@" >"$S/logs/$label.out" 2>"$S/logs/$label.err" ||
        { log "FAILED: $label"; tail -n 5 "$S/logs/$label.err" >&2; exit 1; }
    WALL[$label]=$(tail -n1 "$S/logs/$label.time")
    log "$label: ${WALL[$label]} s"
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
serve() {  # serve REPO: starts monofs serve --http, sets URL
    local p; p=$(port)
    "$MONOFS_BIN" serve "$1" --http "127.0.0.1:$p" --token-file "$S/token" >"$S/logs/serve-$p.log" 2>&1 &
    PIDS+=($!); SERVER=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
    URL=http://127.0.0.1:$p
}

A=$S/a B=$S/b
log "making the source repository (encrypted) with the kernel tree"
"$MONOFS_BIN" init "$A" --encrypt >/dev/null
"$MONOFS_BIN" commit "$A" --from "$WORK/linux" -m one >/dev/null
STORED=$(du -sb "$A/monofs.redb" | awk '{print $1}')

# Clone over HTTP and rsync from an rsync daemon, alternated three times
# (the machine is shared and noisy); the median of each is reported.
serve "$A"
RP=$(port)
cat >"$S/rsyncd.conf" <<CONF
use chroot = no
[bench]
path = $S
read only = yes
CONF
rsync --daemon --no-detach --config="$S/rsyncd.conf" --address=127.0.0.1 --port="$RP" --log-file="$S/logs/rsyncd.log" &
PIDS+=($!)
sleep 1
# The clone's last commit is durable (fsync); plain rsync -a does not
# fsync, so rsync --fsync is measured too, for a like-for-like figure.
# The clone into an empty directory copies the store file whole (mode
# "file"); the pack clone it replaced (MONOFS_CLONE_WHOLE_FILE=0, mode
# "packs") is measured too, alternated with it.
# Every copy of a run goes to its own new directory, and all are deleted
# together before the next run: deleting a 270 MB copy just before a
# measurement slows that measurement (the file system is still busy
# freeing it), so no command may follow a deletion that others do not.
# The floor of any durable copy on this disk: dd of the store file with
# conv=fsync, local, no network.
CLONES=() PACK_CLONES=() RSYNCS=() RSYNCS_FSYNC=() DDS=()
for i in 1 2 3; do
    rm -rf "$B" "$S"/copy-*
    timed "clone_packs_$i" env -u MONOFS_PASSPHRASE MONOFS_CLONE_WHOLE_FILE=0 "$MONOFS_BIN" clone "$URL" "$S/copy-packs" --token-file "$S/token" --json
    PACK_CLONES+=("${WALL[clone_packs_$i]}")
    timed "clone_http_$i" env -u MONOFS_PASSPHRASE "$MONOFS_BIN" clone "$URL" "$B" --token-file "$S/token" --json
    CLONES+=("${WALL[clone_http_$i]}")
    timed "rsync_daemon_$i" rsync -a "rsync://127.0.0.1:$RP/bench/a/" "$S/copy-rsync/"
    RSYNCS+=("${WALL[rsync_daemon_$i]}")
    timed "rsync_fsync_$i" rsync -a --fsync "rsync://127.0.0.1:$RP/bench/a/" "$S/copy-rsync-fsync/"
    RSYNCS_FSYNC+=("${WALL[rsync_fsync_$i]}")
    mkdir -p "$S/copy-dd"
    timed "dd_fsync_$i" dd if="$A/monofs.redb" of="$S/copy-dd/monofs.redb" bs=1M conv=fsync status=none
    DDS+=("${WALL[dd_fsync_$i]}")
done
rm -rf "$S"/copy-*
WALL[clone_http]=$(median "${CLONES[@]}") WALL[rsync_daemon]=$(median "${RSYNCS[@]}")
WALL[clone_packs]=$(median "${PACK_CLONES[@]}")
CLONE_BYTES=$(jq .wire_bytes "$S/logs/clone_http_3.out")
WALL[rsync_fsync]=$(median "${RSYNCS_FSYNC[@]}")
WALL[dd_fsync]=$(median "${DDS[@]}")
CLONE_MODE=$(jq -r .mode "$S/logs/clone_http_3.out")
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true

log "second revision: ~1% of files changed"
"$MONOFS_BIN" commit "$A" --from "$WORK/linux2" -m two --json >"$S/logs/commit2.json"
NEW_BYTES=$(jq .new_bytes "$S/logs/commit2.json")
serve "$B"
timed sync_1pct "$MONOFS_BIN" sync "$A" "$URL" --token-file "$S/token" --json
timed sync_noop "$MONOFS_BIN" sync "$A" "$URL" --token-file "$S/token" --json
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
SENT=$(jq .bytes_sent "$S/logs/sync_1pct.out"); WIRE=$(jq .wire_bytes "$S/logs/sync_1pct.out")
NOOP_WIRE=$(jq .wire_bytes "$S/logs/sync_noop.out")

log "restic: two repositories, copy between them"
R1=$S/restic1 R2=$S/restic2
restic init -q --repo "$R1" >/dev/null
restic init -q --repo "$R2" --from-repo "$R1" --copy-chunker-params >/dev/null
restic backup -q --repo "$R1" "$WORK/linux" >/dev/null
timed restic_copy_full restic copy -q --from-repo "$R1" --repo "$R2"
restic backup -q --repo "$R1" "$WORK/linux2" >/dev/null
timed restic_copy_1pct restic copy -q --from-repo "$R1" --repo "$R2"

{
echo "| step | monofs | comparison |"
echo "| --- | --- | --- |"
echo "| full copy of the repository ($(mib "$STORED") store file) | clone over HTTP (mode $CLONE_MODE), median of 3: ${WALL[clone_http]} s (${CLONES[*]}), $(mib "$CLONE_BYTES") on the wire; pack clone (MONOFS_CLONE_WHOLE_FILE=0): ${WALL[clone_packs]} s (${PACK_CLONES[*]}) | rsync -a from rsyncd, median of 3: ${WALL[rsync_daemon]} s (${RSYNCS[*]}); with --fsync: ${WALL[rsync_fsync]} s (${RSYNCS_FSYNC[*]}); local dd conv=fsync of the store file (the durable floor): ${WALL[dd_fsync]} s (${DDS[*]}); restic copy: ${WALL[restic_copy_full]} s |"
echo "| after ~1% change (new stored objects: $(mib "$NEW_BYTES")) | sync: ${WALL[sync_1pct]} s, objects $(mib "$SENT"), on the wire $(mib "$WIRE") ($(ratio "$WIRE" "$NEW_BYTES")x) | restic copy: ${WALL[restic_copy_1pct]} s |"
echo "| nothing new | sync: ${WALL[sync_noop]} s, $NOOP_WIRE bytes on the wire | |"
} | tee "$S/results.md"
