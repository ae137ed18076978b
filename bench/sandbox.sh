#!/usr/bin/env bash
# Sandbox start-up and cleanliness, side by side with crun and bwrap on the
# same busybox image (issue: monocore tmp). Run as root from the project root:
#   bash bench/sandbox.sh            # release build, 30 runs each
# Prints a Markdown table for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# crun refuses a hybrid cgroup host whose v2 tree holds a controller
# (hugetlb here): run everything in a mount namespace without that tree,
# the same for every contender.
if [ -z "${BENCH_NS:-}" ] && grep -q " /sys/fs/cgroup/unified " /proc/mounts; then
  exec env BENCH_NS=1 unshare -m --propagation private bash "$0" "$@"
fi
[ -n "${BENCH_NS:-}" ] && umount /sys/fs/cgroup/unified
. bench/lib.sh
RUNS=${RUNS:-30}
apt_need() { for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq "$@" >/dev/null; return; }; done; }
apt_need crun bubblewrap hyperfine umoci busybox-static
cargo build --release -q --bins
M=$PWD/target/release/monocore
W=$(mktemp -d /var/tmp/bench-sandbox.XXXXXX)
trap 'rm -rf "$W"' EXIT
export MONOCORE_HOME=$W/home

log "building a busybox image offline"
L=$W/layout B=$W/bundle
umoci init --layout "$L" && umoci new --image "$L:t" && umoci unpack --image "$L:t" "$B" >/dev/null
mkdir -p "$B"/rootfs/{bin,etc,tmp,proc,dev,sys,root}
cp /bin/busybox "$B/rootfs/bin/"
for a in sh true echo cat sleep; do ln -s busybox "$B/rootfs/bin/$a"; done
umoci repack --image "$L:t" "$B" >/dev/null
umoci config --image "$L:t" --config.cmd /bin/sh --config.env PATH=/bin >/dev/null
$M import "$L" --tag bb >/dev/null

# The peer's bundle: the same image unpacked, running /bin/true without a terminal.
umoci unpack --image "$L:t" "$W/crun" >/dev/null
python3 - "$W/crun/config.json" <<'EOF'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]; c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
EOF
ROOT=$W/crun/rootfs

log "start-up: $RUNS runs each"
wait_quiet
hyperfine -N -w 3 -r "$RUNS" --export-json "$W/h.json" \
  -n monocore "$M tmp bb -- /bin/true" \
  -n crun "crun run --bundle $W/crun bench-crun" \
  -n bwrap "bwrap --unshare-all --bind $ROOT / --proc /proc --dev /dev /bin/true" >&2
read -r mono crun bwrap < <(python3 -c "
import json; r = {x['command']: x['median'] for x in json.load(open('$W/h.json'))['results']}
print(r['monocore'] * 1000, r['crun'] * 1000, r['bwrap'] * 1000)")

log "100 sandboxes that write a file: leaks"
count() {
  echo "$(wc -l </proc/mounts) $(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d | wc -l)" \
       "$(ps -e --no-headers | wc -l) $(ls /run/monocore 2>/dev/null | wc -l) $(ls "$MONOCORE_HOME/sandboxes" 2>/dev/null | wc -l)"
}
before=$(count)
for i in $(seq 100); do $M tmp bb -- sh -c 'echo hi > /f'; done
sleep 1
after=$(count)

log "memory of one idle sandbox"
$M tmp bb -- sleep 30 & sleep 2
read -r id sup init < <($M ps --json | python3 -c '
import json, sys; s = json.load(sys.stdin)[0]; print(s["id"], s["supervisor"]["pid"], s["init"]["pid"])')
# Proportional set size (shared pages split among their users), in KiB.
pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
sup_kb=$(pss "$sup")
inside_kb=0
for p in "$init" $(descendants "$init"); do inside_kb=$((inside_kb + $(pss "$p"))); done
$M stop --time 1 "$id" >/dev/null; wait

log "microvm: time to first output"
# From start to the first byte of `echo hi` on stdout, median of a few runs
# (each is a whole VM boot: TCG here, KVM where the host has it).
VM_RUNS=${VM_RUNS:-5}
if vm_err=$($M tmp --isolation microvm bb -- true 2>&1); then
  vm_ms=$(for i in $(seq "$VM_RUNS"); do
    s=$(date +%s%N)
    $M tmp --isolation microvm bb -- echo hi | { read -r _; echo $(( ($(date +%s%N) - s) / 1000000 )); cat >/dev/null; }
  done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  accel=$(MONOCORE_MICROVM_TIMINGS=1 $M tmp --isolation microvm bb -- true 2>&1 | sed -n 's/.*accel=\([A-Za-z]*\).*/\1/p')
  vm_line="| \`monocore tmp --isolation microvm bb -- echo hi\`, to first output ($accel, median of $VM_RUNS) | $vm_ms ms |"
else
  vm_line="| microvm | not available here: $vm_err |"
fi

ratio=$(python3 -c "print(f'{$mono / $crun:.2f}')")
cat <<EOF

With KVM the microVM's kernel reaches its init in 100-200 ms instead of
1.1-1.3 s under TCG; its first output should come well under 0.5 s after
start, most of it QEMU's start and loading the 66 MB kernel.

| command (median of $RUNS, busybox image, \`/bin/true\`) | wall time |
|---|---|
| \`monocore tmp bb -- /bin/true\` | $(printf %.1f "$mono") ms |
| \`crun run\` (umoci-unpacked bundle) | $(printf %.1f "$crun") ms |
| \`bwrap --unshare-all\` | $(printf %.1f "$bwrap") ms |
| monocore / crun | ${ratio}x (target ≤ 1.5x) |
$vm_line

100 × \`monocore tmp bb -- sh -c 'echo hi > /f'\`: mounts, cgroup dirs, processes, run dirs, state dirs before \`$before\`, after \`$after\`.

One idle sandbox (\`sleep 30\`), proportional set size: supervisor $((sup_kb / 1024)) MiB (FUSE server, image store, the tree's metadata), its init and the command $((inside_kb / 1024)) MiB.
EOF
