#!/usr/bin/env bash
# A tour of what works today, on the embedded default store: init, commit a
# directory, change it, commit again, log, tag, diff, restore, stats, fsck,
# clone and sync, the same with encryption, a FUSE mount, the NFS server,
# images and sandboxes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p monofs-cli --bins
monofs() { "$PWD/target/release/monofs" "$@"; }
W=$(mktemp -d /tmp/monofs-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

mkdir -p "$W/project/src" "$W/project/docs"
for i in $(seq 1 200); do printf 'fn f%d() -> u32 { %d }\n' "$i" "$i" > "$W/project/src/f$i.rs"; done
head -c 20000000 /dev/urandom > "$W/project/data.bin"
cp "$W/project/data.bin" "$W/project/data-copy.bin"   # deduplicated
echo "# Notes" > "$W/project/docs/README.md"
ln -s docs/README.md "$W/project/README"

step monofs init repo;                 monofs init "$W/repo"
step monofs commit repo --from project -m "first snapshot"
monofs commit "$W/repo" --from "$W/project" -m "first snapshot"
echo "fn extra() {}" >> "$W/project/src/f7.rs"
rm "$W/project/src/f8.rs"
echo "new" > "$W/project/docs/CHANGES.md"
step monofs commit repo --from project -m "second snapshot"
monofs commit "$W/repo" --from "$W/project" -m "second snapshot"
step monofs log repo;                  monofs log "$W/repo"
step monofs tag repo v1 HEAD~1;        monofs tag "$W/repo" v1 HEAD~1
step monofs diff repo v1 HEAD;         monofs diff "$W/repo" v1 HEAD
step monofs diff repo v1 HEAD --stat;  monofs diff "$W/repo" v1 HEAD --stat
step monofs checkout repo v1 --to restored
monofs checkout "$W/repo" v1 --to "$W/restored"
step diff -r restored project;         diff -r "$W/restored" "$W/project" || true
step monofs checkout repo v1;          monofs checkout "$W/repo" v1
step monofs stats repo;                monofs stats "$W/repo"
step monofs fsck repo;                 monofs fsck "$W/repo"
step monofs clone repo backup;         monofs clone "$W/repo" "$W/backup"
step "monofs commit repo -m more; monofs sync repo backup   # sends only what changed"
echo "more" > "$W/project/more.txt"
monofs commit "$W/repo" --from "$W/project" -m more >/dev/null
monofs sync "$W/repo" "$W/backup"
step monofs log backup;                monofs log "$W/backup"

export MONOFS_PASSPHRASE=demo-passphrase
step monofs init secret --encrypt;     monofs init "$W/secret" --encrypt
step monofs commit secret --from project -m encrypted
monofs commit "$W/secret" --from "$W/project" -m encrypted
step "grep -r 'fn extra' secret  # finds nothing: names and content are sealed"
grep -r -q 'fn extra' "$W/secret" && echo "plaintext found!" || echo "no plaintext in the encrypted repository"
step MONOFS_PASSPHRASE=wrong monofs log secret
MONOFS_PASSPHRASE=wrong monofs log "$W/secret" || true
unset MONOFS_PASSPHRASE

if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ]; then
  mkdir -p "$W/drive"
  step "monofs mount repo drive --daemon   # the working tree as a drive"
  monofs mount "$W/repo" "$W/drive" --daemon
  trap 'monofs detach "$W/drive" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
  step "echo 'written through FUSE' > drive/notes.txt; rm drive/src/f1.rs"
  echo 'written through FUSE' > "$W/drive/notes.txt"; rm "$W/drive/src/f1.rs"
  step "monofs commit repo -m 'edited in the drive'   # while mounted"
  monofs commit "$W/repo" -m "edited in the drive"
  step monofs diff repo HEAD~1 HEAD;     monofs diff "$W/repo" HEAD~1 HEAD
  step "monofs checkout repo HEAD~1; ls drive   # the mount switches at once"
  monofs checkout "$W/repo" HEAD~1; ls "$W/drive"
  step monofs detach drive;              monofs detach "$W/drive"
fi

if command -v nfs-ls >/dev/null; then
  P=$((20000 + RANDOM % 20000))
  U="nfs://127.0.0.1/?nfsport=$P&mountport=$P&version=3"
  step "monofs serve repo --nfs 127.0.0.1:$P &   # the working tree over NFSv3 (libnfs client)"
  # The binary itself in the background, not the shell function, so that
  # $! is the server and the kill below reaches it.
  "$PWD/target/release/monofs" serve "$W/repo" --nfs "127.0.0.1:$P" >/dev/null &
  NFS_PID=$!
  for _ in $(seq 100); do nfs-ls "$U" >/dev/null 2>&1 && break; sleep 0.1; done
  step "nfs-ls '$U'";                    nfs-ls "$U" | head -n 5
  step "nfs-cat .../docs/README.md";     nfs-cat "nfs://127.0.0.1/docs/README.md?nfsport=$P&mountport=$P&version=3"
  kill "$NFS_PID"; wait "$NFS_PID" || true
fi

if command -v umoci >/dev/null && [ -x /bin/busybox ]; then
  export MONOCORE_HOME="$W/monocore"
  monocore() { "$PWD/target/release/monocore" "$@"; }
  L="$W/layout"; B="$W/bundle"
  umoci init --layout "$L" && umoci new --image "$L:bb" && umoci unpack --image "$L:bb" "$B" >/dev/null
  mkdir -p "$B/rootfs/bin" && cp /bin/busybox "$B/rootfs/bin/" && ln -s busybox "$B/rootfs/bin/sh"
  umoci repack --image "$L:bb" "$B" >/dev/null
  step "monocore import layout --tag bb   # an OCI image becomes a monofs tree"
  monocore import "$L" --tag bb
  step monocore images;                  monocore images
  step "monocore unpack bb rootfs; ls rootfs/bin"
  monocore unpack bb "$W/rootfs"; ls "$W/rootfs/bin"
  if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ]; then
    step "monocore tmp bb -- /bin/sh -c 'id; echo hi > /f; ls /'   # a throwaway sandbox"
    monocore tmp bb -- /bin/sh -c 'id; echo hi > /f; ls /'
    step "monocore tmp --keep bb -- /bin/sh -c 'echo kept > /f'; monocore diff ID"
    id=$(monocore tmp --keep bb -- /bin/sh -c 'echo kept > /f' 2>&1 | sed -n 's/.*kept sandbox \([0-9a-f]*\) .*/\1/p')
    monocore diff "$id"
    step "monocore tmp --memory 16m bb -- /bin/sh -c 'x=\$(head -c 100000000 /dev/zero | tr \"\\0\" a)'"
    monocore tmp --memory 16m bb -- /bin/sh -c 'x=$(head -c 100000000 /dev/zero | tr "\0" a)' || echo "exit status $?"
  fi
fi
echo
echo "demo finished"
