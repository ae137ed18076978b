#!/usr/bin/env bash
# Whole-file clone over loopback HTTP, two builds side by side, against
# rsync -a from an rsync daemon; then a clone killed half way and resumed
# after the server closed and reopened its repository (2 s idle).
#
#   NEW=target/release/monofs OLD=/path/to/older/monofs bash bench/sync-quick.sh SRC_DIR [WORK_DIR]
#
# SRC_DIR: the tree to commit (e.g. the Linux source: tar xJf
# /usr/src/linux-source-6.1.tar.xz). WORK_DIR (default /var/tmp/sync-quick)
# is made afresh. Needs rsync, jq, bc. Loopback only (ports 7400-7402).
set -euo pipefail
SRC=${1:?usage: NEW=... OLD=... bash bench/sync-quick.sh SRC_DIR [WORK_DIR]}
W=${2:-/var/tmp/sync-quick}
NEW=${NEW:-target/release/monofs} OLD=${OLD:-$NEW}
ROUNDS=${ROUNDS:-6}
rm -rf "$W"
mkdir -p "$W/logs"
export MONOFS_PASSPHRASE=bench-pass
"$NEW" init "$W/a" --encrypt >/dev/null
"$NEW" commit "$W/a" --from "$SRC" -m one >/dev/null
cp -a "$W/a" "$W/b"
rm -f "$W/b/lock"
echo t >"$W/token"
unset MONOFS_PASSPHRASE
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
serve() { # BIN REPO PORT [ARGS...]
    "$1" serve "$2" --http "127.0.0.1:$3" --token-file "$W/token" "${@:4}" >"$W/logs/serve-$3.log" 2>&1 &
    PIDS+=($!)
}
serve "$NEW" "$W/a" 7400
serve "$OLD" "$W/b" 7402
printf 'use chroot = no\n[bench]\npath = %s\nread only = yes\n' "$W" >"$W/rsyncd.conf"
rsync --daemon --no-detach --config="$W/rsyncd.conf" --address=127.0.0.1 --port=7401 &
PIDS+=($!)
sleep 1
timed() { local s e; sync; sleep 1; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "store file: $(stat -c %s "$W/a/monofs.redb") bytes"
for i in $(seq "$ROUNDS"); do
    rm -rf "$W"/copy-*
    sync
    sleep 2
    n=$(timed "$NEW" clone http://127.0.0.1:7400 "$W/copy-new" --token-file "$W/token")
    o=$(timed "$OLD" clone http://127.0.0.1:7402 "$W/copy-old" --token-file "$W/token")
    r=$(timed rsync -a rsync://127.0.0.1:7401/bench/a/ "$W/copy-rsync/")
    echo "round $i: clone new $n s, clone old $o s, rsync -a $r s"
done
rm -rf "$W"/copy-*
kill "${PIDS[@]}"
wait "${PIDS[@]}" 2>/dev/null || true
PIDS=()
# Kill a clone from a throttled server after 1.5 s, wait until the server
# has closed the repository (2 s idle), run the clone again.
for build in NEW OLD; do
    bin=${!build}
    port=7403
    serve "$bin" "$W/a" $port --bwlimit 100M
    sleep 1
    timeout 1.5 "$bin" clone http://127.0.0.1:$port "$W/copy-r" --token-file "$W/token" >/dev/null 2>&1 || true
    sleep 4
    had=$(stat -c %s "$W/copy-r/monofs.redb.partial")
    out=$("$bin" clone http://127.0.0.1:$port "$W/copy-r" --token-file "$W/token" --json)
    kill "${PIDS[-1]}"
    wait "${PIDS[-1]}" 2>/dev/null || true
    echo "resume, $build: partial copy $had bytes; $(echo "$out" | jq -c '{bytes_sent, resumed_at, wire_bytes, duration_ms}')"
    rm -rf "$W/copy-r"
done
