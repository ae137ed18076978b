#!/usr/bin/env bash
# OCI import benchmark, side by side in one run: `monocore import` of a
# ~200 MB image (Debian's python3.11, gcc and perl files from /usr) against
# `skopeo copy` + `umoci unpack` of the same image; the same through a local
# registry (`monocore pull` against `skopeo copy docker://` + `umoci unpack`);
# and the stored growth of a second version of the image against its changed
# bytes.
#
#   bash bench/oci.sh [WORK_DIR]          (default WORK_DIR: /var/tmp/bench-oci)
#
# Needs: umoci, skopeo, jq, GNU time, curl; a registry on 127.0.0.1:5000 for
# the pull rows (.ci/run starts one; skipped when absent).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:-/var/tmp/bench-oci}
MONOCORE=${MONOCORE_BIN:-$ROOT/target/release/monocore}
REG=127.0.0.1:5000
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
for t in umoci skopeo jq curl; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 2; }; done
[ -x "$MONOCORE" ] || (cd "$ROOT" && cargo build --release -q -p monofs-cli --bin monocore)
secs() { /usr/bin/time -f %e -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }; cat "$WORK/t"; }

# v1: one layer with real Debian files; v2: v1 + a layer changing 20 .py
# files and adding 5 MB of new data.
umoci init --layout L >/dev/null; umoci new --image L:v1 >/dev/null; umoci unpack --image L:v1 B >/dev/null
mkdir -p B/rootfs/usr/lib B/rootfs/usr/share
cp -a /usr/lib/python3.11 /usr/lib/gcc B/rootfs/usr/lib/; cp -a /usr/share/perl B/rootfs/usr/share/ 2>/dev/null || true
SIZE=$(du -sb B/rootfs | cut -f1); FILES=$(find B/rootfs -type f | wc -l)
umoci repack --image L:v1 B >/dev/null; rm -rf B
umoci unpack --image L:v1 B >/dev/null
CHANGED=0
for f in $(find B/rootfs/usr/lib/python3.11 -maxdepth 1 -name '*.py' | sort | head -20); do
  echo "# v2 $f" >> "$f"; CHANGED=$((CHANGED + $(stat -c %s "$f")))
done
head -c 5000000 /dev/urandom > B/rootfs/usr/share/new-data.bin; CHANGED=$((CHANGED + 5000000))
umoci repack --image L:v2 B >/dev/null; rm -rf B

echo "image: $((SIZE / 1000000)) MB, $FILES files, one gzip layer (v2 adds one)"
T_MONO=$(secs env MONOCORE_HOME="$WORK/h1" "$MONOCORE" import L --tag big --ref v1)
T_SK=$(secs skopeo copy --quiet oci:L:v1 oci:L2:v1)
T_UM=$(secs umoci unpack --image L2:v1 U1)
echo "| import from layout | monocore import: ${T_MONO}s | skopeo copy ${T_SK}s + umoci unpack ${T_UM}s = $(echo "$T_SK + $T_UM" | bc)s |"

GROWTH=$(MONOCORE_HOME="$WORK/h1" "$MONOCORE" import L --tag big:2 --ref v2 --json | jq .new_bytes)
echo "| second version | changed files: $CHANGED bytes | stored growth: $GROWTH bytes = $(echo "scale=3; $GROWTH / $CHANGED" | bc)x |"

if curl -fsS -o /dev/null http://$REG/v2/; then
  N=bench/oci-$$-$(date +%s)
  skopeo copy --quiet --dest-tls-verify=false oci:L:v1 docker://$REG/$N:1
  T_PULL=$(secs env MONOCORE_HOME="$WORK/h2" "$MONOCORE" pull $REG/$N:1)
  T_SKP=$(secs skopeo copy --quiet --src-tls-verify=false docker://$REG/$N:1 oci:L3:v1)
  T_UMP=$(secs umoci unpack --image L3:v1 U2)
  echo "| pull from local registry | monocore pull: ${T_PULL}s | skopeo copy ${T_SKP}s + umoci unpack ${T_UMP}s = $(echo "$T_SKP + $T_UMP" | bc)s |"
  T_AGAIN=$(secs env MONOCORE_HOME="$WORK/h2" "$MONOCORE" pull $REG/$N:1)
  echo "| second pull, unchanged | monocore pull: ${T_AGAIN}s (manifest only) | |"
fi
du -sb "$WORK/h1/store" | awk '{print "store after v1+v2: " $1 " bytes"}'
