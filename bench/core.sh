#!/usr/bin/env bash
# Core benchmark: monofs vs restic, side by side in one run, on the Linux 6.1
# source tree (Debian's linux-source-6.1). Both tools encrypt.
#
#   bash bench/core.sh [WORK_DIR]        (default WORK_DIR: /var/tmp/bench)
#
# Environment:
#   MONOFS_BIN      monofs binary (default: target/release/monofs of this repo)
#   KERNEL_TARBALL  source tarball (default: /usr/src/linux-source-6.1.tar.xz)
#   DIFF_RUNS       hyperfine runs for the diff measurement (default: 30)
#   WAIT_QUIET_MAX  before each timed command, wait up to this many seconds
#                   for the machine to be idle (default: 300; 0 = don't wait)
#   BENCH_PASSPHRASE  passphrase for both tools (default: a fixed string)
#
# Needs: restic, hyperfine, GNU time (/usr/bin/time), rsync, jq, GNU diff.
# Everything is written under WORK_DIR; WORK_DIR/linux (the extracted tree)
# and WORK_DIR/linux2 (the 1%-changed copy) are kept between runs, all
# repositories and restores are made afresh. Results: a Markdown table on
# stdout at the end, plus WORK_DIR/results.md and WORK_DIR/logs/.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup core.sh /var/tmp/bench "${1:-}"
KERNEL_TARBALL=${KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
DIFF_RUNS=${DIFF_RUNS:-30}

need restic hyperfine rsync jq diff
need_file -x "$TIME" "apt-get install -y time"
need_file -x "$MONOFS_BIN" "set MONOFS_BIN"
need_file -f "$KERNEL_TARBALL" "apt-get install -y linux-source-6.1"

# Same secret for both tools; restic always encrypts, so monofs does too.
PASS=${BENCH_PASSPHRASE:-monofs-bench-passphrase}
export MONOFS_PASSPHRASE=$PASS RESTIC_PASSWORD=$PASS
export RESTIC_CACHE_DIR=$WORK/restic-cache

SRC=$WORK/src
MREPO=$WORK/repo-monofs
RREPO=$WORK/repo-restic
MOUT=$WORK/restore-monofs
ROUT=$WORK/restore-restic
LOGS=$WORK/logs

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A WALL RSS USR SYS RC OTHER STEAL
FAILURES=()

# timed LABEL CMD...: run CMD under GNU time; stdout/stderr/time go to
# $LOGS/LABEL.{out,err,time}. Never aborts the script: a failing command is
# recorded (RC[LABEL], FAILURES) and reported at the end.
timed() {
    local label=$1; shift
    local rc=0 before after
    sync
    wait_quiet
    before=$(cpu_jiffies)
    "$TIME" -f '%e s %M KB %U user %S sys' -o "$LOGS/$label.time" "$@" \
        >"$LOGS/$label.out" 2>"$LOGS/$label.err" || rc=$?
    after=$(cpu_jiffies)
    RC[$label]=$rc
    local line
    line=$(grep -E '^[0-9.]+ s [0-9]+ KB' "$LOGS/$label.time" | tail -n1 || true)
    WALL[$label]=$(awk '{print $1}' <<<"$line")
    RSS[$label]=$(awk '{print $3}' <<<"$line")
    USR[$label]=$(awk '{print $5}' <<<"$line")
    SYS[$label]=$(awk '{print $7}' <<<"$line")
    # CPU seconds the rest of the machine used meanwhile (kernel writeback,
    # other users' jobs): a noise indicator, ~0 on a quiet machine.
    OTHER[$label]=$(awk -v b="$before" -v a="$after" -v hz="$HZ" -v u="${USR[$label]:-0}" -v s="${SYS[$label]:-0}" \
        'BEGIN { split(b, x, " "); split(a, y, " "); printf "%.2f", (y[1] - x[1]) / hz - u - s }')
    STEAL[$label]=$(awk -v b="$before" -v a="$after" -v hz="$HZ" \
        'BEGIN { split(b, x, " "); split(a, y, " "); printf "%.2f", (y[2] - x[2]) / hz }')
    if ((rc != 0)); then
        failed "$label" "$rc" "$@"
    else
        log "$label: ${WALL[$label]} s wall, ${RSS[$label]} KB peak RSS (user ${USR[$label]} s, sys ${SYS[$label]} s; other CPU ${OTHER[$label]} s, steal ${STEAL[$label]} s)"
    fi
    return 0
}

# Untimed read of every file of a tree, so both tools start from a warm page
# cache. (Not `tar cf /dev/null`: GNU tar skips reading contents then.)
warm() { tar -C "$1" -cf - . | wc -c >/dev/null; }

size_of() { du -sb "$1" | awk '{print $1}'; }                 # apparent bytes
alloc_of() { du -s --block-size=1 "$1" | awk '{print $1}'; }   # allocated on disk
# monofs stats' "stored:" line (compressed, sealed object bytes) in bytes.
stored_of() {
    "$MONOFS_BIN" stats "$1" 2>/dev/null | awk '/^stored:/ {
        v = $2; u = $3; m = 1
        if (u == "KiB") m = 1024; else if (u == "MiB") m = 1048576; else if (u == "GiB") m = 1073741824
        printf "%.0f", v * m }'
}

# ratio A B -> A/B with 2 decimals, or "n/a"
# ge A B -> "yes" if A >= B
secs() { if [[ -n ${WALL[$1]:-} && ${RC[$1]:-1} == 0 ]]; then echo "${WALL[$1]} s"; else echo "FAILED"; fi; }
rss() { if [[ -n ${RSS[$1]:-} ]]; then awk -v k="${RSS[$1]}" 'BEGIN { printf "%.0f MiB", k / 1024 }'; else echo "n/a"; fi; }
ok_rc() { [[ ${RC[$1]:-1} == 0 ]]; }

listing() { (cd "$1" && find . -printf '%p %m %l\n' | sort); }
mtimes() { (cd "$1" && find . ! -type l -printf '%p %T@\n' | sort); }

# verify NAME DIR: is DIR identical to $SRC? Sets VERIFY_<NAME>.
verify() {
    local name=$1 dir=$2 content=pass list=pass mt=pass
    if [[ ! -d $dir ]]; then
        content=fail list=fail mt=fail
        echo "no restored tree at $dir" >"$LOGS/verify-$name.diff"
    else
        diff -r --no-dereference "$SRC" "$dir" >"$LOGS/verify-$name.diff" 2>&1 || content=fail
        diff <(listing "$SRC") <(listing "$dir") >"$LOGS/verify-$name.listing.diff" 2>&1 || list=fail
        diff <(mtimes "$SRC") <(mtimes "$dir") >"$LOGS/verify-$name.mtime.diff" 2>&1 || mt=fail
    fi
    printf -v "VERIFY_$name" '%s' "content $content, mode/symlink listing $list, mtimes $mt"
    log "verify $name: content $content, listing $list, mtimes $mt"
}

# ---------------------------------------------------------------- data

mkdir -p "$LOGS"
rm -f "$LOGS"/*

if [[ ! -d $WORK/linux ]]; then
    log "extracting $KERNEL_TARBALL into $WORK/linux"
    rm -rf "$WORK/linux.tmp"
    mkdir "$WORK/linux.tmp"
    tar -xJf "$KERNEL_TARBALL" -C "$WORK/linux.tmp" --strip-components=1
    mv "$WORK/linux.tmp" "$WORK/linux"
fi

if [[ ! -d $WORK/linux2 ]]; then
    log "making $WORK/linux2: every 100th regular file (sorted) gets a line appended"
    rm -rf "$WORK/linux2.tmp"
    cp -a "$WORK/linux" "$WORK/linux2.tmp"
    (cd "$WORK/linux2.tmp" && find . -type f | sort | awk 'NR % 100 == 0' >"$WORK/changed-files.txt")
    while IFS= read -r f; do
        printf '\n/* monofs bench: changed line */\n' >>"$WORK/linux2.tmp/$f"
    done <"$WORK/changed-files.txt"
    mv "$WORK/linux2.tmp" "$WORK/linux2"
fi

[[ -f $WORK/changed-files.txt ]] ||
    (cd "$WORK/linux" && find . -type f | sort | awk 'NR % 100 == 0' >"$WORK/changed-files.txt")
FILES=$(find "$WORK/linux" -type f | wc -l)
CHANGED=$(wc -l <"$WORK/changed-files.txt")
TREE_BYTES=$(size_of "$WORK/linux")

log "fresh source copy $SRC and fresh repositories"
rm -rf "$SRC" "$MREPO" "$RREPO" "$MOUT" "$ROUT" "$RESTIC_CACHE_DIR"
cp -a "$WORK/linux" "$SRC"
"$MONOFS_BIN" init "$MREPO" --encrypt >"$LOGS/init-monofs.out" 2>&1
restic -r "$RREPO" init >"$LOGS/init-restic.out" 2>&1
RESTIC_REPO_VERSION=$(restic -r "$RREPO" cat config 2>/dev/null | jq -r .version)
# monofs' stat cache ignores files whose ctime is within a second of the
# commit start; let the copy settle so every file is cacheable.
sleep 2

# ---------------------------------------------------------------- (a) initial backup
log "(a) initial backup of $SRC ($FILES files, $TREE_BYTES bytes)"
warm "$SRC"; timed a-monofs "$MONOFS_BIN" commit "$MREPO" --from "$SRC" -m "initial"
warm "$SRC"; timed a-restic restic -r "$RREPO" backup "$SRC"
SIZE_A_M=$(size_of "$MREPO"); SIZE_A_R=$(size_of "$RREPO")
ALLOC_A_M=$(alloc_of "$MREPO"); ALLOC_A_R=$(alloc_of "$RREPO"); STORED_A_M=$(stored_of "$MREPO")
"$MONOFS_BIN" stats "$MREPO" >"$LOGS/stats-after-a.txt" 2>&1 || true

# ---------------------------------------------------------------- (b) incremental
log "(b) apply the 1% change ($CHANGED files) to $SRC and back up again"
rsync -a --delete "$WORK/linux2/" "$SRC/"
sleep 2
warm "$SRC"; timed b-restic restic -r "$RREPO" backup "$SRC"
warm "$SRC"; timed b-monofs "$MONOFS_BIN" commit "$MREPO" --from "$SRC" -m "1% changed"
SIZE_B_M=$(size_of "$MREPO"); SIZE_B_R=$(size_of "$RREPO")
ALLOC_B_M=$(alloc_of "$MREPO"); ALLOC_B_R=$(alloc_of "$RREPO"); STORED_B_M=$(stored_of "$MREPO")
GROW_M=$((SIZE_B_M - SIZE_A_M)); GROW_R=$((SIZE_B_R - SIZE_A_R))
GROW_STORED_M=$((STORED_B_M - STORED_A_M))
"$MONOFS_BIN" stats "$MREPO" >"$LOGS/stats-after-b.txt" 2>&1 || true

# ---------------------------------------------------------------- (c) unchanged
log "(c) back up the unchanged tree again"
warm "$SRC"; timed c-monofs "$MONOFS_BIN" commit "$MREPO" --from "$SRC" -m "unchanged"
warm "$SRC"; timed c-restic restic -r "$RREPO" backup "$SRC"

# ---------------------------------------------------------------- (d) restore
log "(d) restore the latest revision / snapshot and compare with $SRC"
timed d-restic restic -r "$RREPO" restore latest --target "$ROUT"
timed d-monofs "$MONOFS_BIN" checkout "$MREPO" HEAD --to "$MOUT"
verify monofs "$MOUT"
verify restic "$ROUT$SRC"

# ---------------------------------------------------------------- (e) diff
DIFF_FILE=README
log "(e) one-file change ($DIFF_FILE), commit, then time diff of HEAD~1..HEAD"
printf '\nmonofs bench: one-file change\n' >>"$SRC/$DIFF_FILE"
sleep 2
warm "$SRC"; timed e-commit-monofs "$MONOFS_BIN" commit "$MREPO" --from "$SRC" -m "one file"
warm "$SRC"; timed e-backup-restic restic -r "$RREPO" backup "$SRC"
"$MONOFS_BIN" diff "$MREPO" HEAD~1 HEAD >"$LOGS/e-diff-monofs.txt" 2>&1 || true
DIFF_LINES=$(grep -c . "$LOGS/e-diff-monofs.txt" || true)
DIFF_NAMES_FILE=no
grep -q "$DIFF_FILE" "$LOGS/e-diff-monofs.txt" && DIFF_NAMES_FILE=yes
restic -r "$RREPO" snapshots --json >"$LOGS/restic-snapshots.json"
SNAP_PREV=$(jq -r '.[-2].short_id' "$LOGS/restic-snapshots.json")
SNAP_LAST=$(jq -r '.[-1].short_id' "$LOGS/restic-snapshots.json")
restic -r "$RREPO" diff "$SNAP_PREV" "$SNAP_LAST" >"$LOGS/e-diff-restic.txt" 2>&1 || true
# Baseline: opening the encrypted repository (key derivation) and listing
# five revisions, to separate fixed start-up cost from the diff itself.
wait_quiet
hyperfine -N --warmup 3 --runs "$DIFF_RUNS" --export-json "$LOGS/e-hyperfine-monofs.json" \
    -n "monofs diff HEAD~1 HEAD" "$MONOFS_BIN diff $MREPO HEAD~1 HEAD" \
    -n "monofs log (open baseline)" "$MONOFS_BIN log $MREPO" \
    >"$LOGS/e-hyperfine-monofs.txt" 2>&1 || FAILURES+=("e: hyperfine monofs diff failed, see $LOGS/e-hyperfine-monofs.txt")
wait_quiet
hyperfine -N --warmup 1 --runs 5 --export-json "$LOGS/e-hyperfine-restic.json" \
    -n "restic diff" "restic -r $RREPO diff $SNAP_PREV $SNAP_LAST" \
    >"$LOGS/e-hyperfine-restic.txt" 2>&1 || FAILURES+=("e: hyperfine restic diff failed, see $LOGS/e-hyperfine-restic.txt")
hf() { jq -r --argjson i "$2" '.results[$i] | "\(.mean * 1000) \(.stddev * 1000)"' "$1" 2>/dev/null || echo " "; }
read -r DIFF_M_MS DIFF_M_SD <<<"$(hf "$LOGS/e-hyperfine-monofs.json" 0)"
read -r LOG_M_MS LOG_M_SD <<<"$(hf "$LOGS/e-hyperfine-monofs.json" 1)"
read -r DIFF_R_MS DIFF_R_SD <<<"$(hf "$LOGS/e-hyperfine-restic.json" 0)"
ms() { awk -v m="$1" -v s="$2" 'BEGIN { if (m == "") print "FAILED"; else printf "%.1f ± %.1f ms", m, s }'; }

# Supplementary: the same diff in an unencrypted monofs repository, to show
# how much of (e) is key derivation rather than the diff itself.
log "(e') same one-file diff in an unencrypted monofs repository"
PREPO=$WORK/repo-monofs-plain
rm -rf "$PREPO"
env -u MONOFS_PASSPHRASE "$MONOFS_BIN" init "$PREPO" >"$LOGS/init-monofs-plain.out" 2>&1
sleep 1
env -u MONOFS_PASSPHRASE "$MONOFS_BIN" commit "$PREPO" --from "$SRC" -m base >"$LOGS/plain-commit-1.out" 2>&1 \
    || FAILURES+=("e': unencrypted commit failed: $(tail -n 3 "$LOGS/plain-commit-1.out" | tr '\n' ' ')")
printf 'monofs bench: second one-file change\n' >>"$SRC/$DIFF_FILE"
sleep 2
env -u MONOFS_PASSPHRASE "$MONOFS_BIN" commit "$PREPO" --from "$SRC" -m "one file" >"$LOGS/plain-commit-2.out" 2>&1 \
    || FAILURES+=("e': unencrypted commit failed: $(tail -n 3 "$LOGS/plain-commit-2.out" | tr '\n' ' ')")
wait_quiet
env -u MONOFS_PASSPHRASE hyperfine -N --warmup 3 --runs "$DIFF_RUNS" --export-json "$LOGS/e-hyperfine-monofs-plain.json" \
    -n "monofs diff HEAD~1 HEAD (unencrypted)" "$MONOFS_BIN diff $PREPO HEAD~1 HEAD" \
    -n "monofs log (unencrypted)" "$MONOFS_BIN log $PREPO" \
    >"$LOGS/e-hyperfine-monofs-plain.txt" 2>&1 || FAILURES+=("e': hyperfine unencrypted diff failed, see $LOGS/e-hyperfine-monofs-plain.txt")
read -r DIFFP_M_MS DIFFP_M_SD <<<"$(hf "$LOGS/e-hyperfine-monofs-plain.json" 0)"
read -r LOGP_M_MS LOGP_M_SD <<<"$(hf "$LOGS/e-hyperfine-monofs-plain.json" 1)"
rm -rf "$PREPO"

# ---------------------------------------------------------------- integrity (informational)
log "fsck / check (informational)"
timed f-fsck-monofs "$MONOFS_BIN" fsck "$MREPO"
timed f-check-restic restic -r "$RREPO" check
"$MONOFS_BIN" log "$MREPO" >"$LOGS/log-monofs.txt" 2>&1 || true
SIZE_END_M=$(size_of "$MREPO"); SIZE_END_R=$(size_of "$RREPO")
STORED_END_M=$(stored_of "$MREPO")
log "gc / prune (informational: monofs gc compacts the store file)"
timed g-gc-monofs "$MONOFS_BIN" gc "$MREPO"
timed g-prune-restic restic -r "$RREPO" prune
SIZE_GC_M=$(size_of "$MREPO"); SIZE_GC_R=$(size_of "$RREPO")

# ---------------------------------------------------------------- report
R_A=$(ratio "${WALL[a-restic]}" "${WALL[a-monofs]}")
R_B=$(ratio "${WALL[b-restic]}" "${WALL[b-monofs]}")
R_C=$(ratio "${WALL[c-restic]}" "${WALL[c-monofs]}")
R_D=$(ratio "${WALL[d-restic]}" "${WALL[d-monofs]}")
R_E=$(ratio "$DIFF_R_MS" "$DIFF_M_MS")
S_A=$(ratio "$SIZE_A_R" "$SIZE_A_M")
S_G=$(ratio "$GROW_R" "$GROW_M")

met_a=no; ok_rc a-monofs && [[ $(ge "$R_A" 1.5) == yes && $SIZE_A_M -lt $SIZE_A_R ]] && met_a=yes
met_b=no; ok_rc b-monofs && [[ $(ge "$R_B" 1.5) == yes && $GROW_M -le $GROW_R ]] && met_b=yes
met_c=no; ok_rc c-monofs && [[ $(awk -v w="${WALL[c-monofs]}" 'BEGIN { print (w + 0 < 2) ? "yes" : "no" }') == yes ]] && met_c=yes
met_d=no; ok_rc d-monofs && [[ $(ge "$R_D" 1.0) == yes && $VERIFY_monofs == "content pass, mode/symlink listing pass"* ]] && met_d=yes
met_e=no; [[ -n $DIFF_M_MS && $(ge 50 "$DIFF_M_MS") == yes && $DIFF_NAMES_FILE == yes ]] && met_e=yes

cpu() { awk -v u="${USR[$1]}" -v s="${SYS[$1]}" -v w="${WALL[$1]}" 'BEGIN { if (w + 0 == 0) print "n/a"; else printf "%.0f%%", 100 * (u + s) / w }'; }

{
    echo "## monofs vs restic — Linux 6.1 source tree ($FILES files, $(mib "$TREE_BYTES")), both encrypted"
    echo
    echo "Run: $(date -u +%FT%TZ); $(nproc) cores; $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; kernel $(uname -r);"
    echo "$("$MONOFS_BIN" --version 2>/dev/null || echo monofs) ($MONOFS_BIN); $(restic version | head -n1) (repository format v$RESTIC_REPO_VERSION)."
    echo
    echo "| Measurement | monofs | restic | restic/monofs | Target | Met |"
    echo "|---|---|---|---|---|---|"
    echo "| (a) initial backup, wall | $(secs a-monofs) | $(secs a-restic) | ${R_A}x | >= 1.5x | $met_a |"
    echo "| (a) peak RSS | $(rss a-monofs) | $(rss a-restic) | | | |"
    echo "| (a) CPU use (user+sys / wall) | $(cpu a-monofs) | $(cpu a-restic) | | | |"
    echo "| (a) repository size (du -sb) | $(mib "$SIZE_A_M") | $(mib "$SIZE_A_R") | ${S_A}x | smaller than restic | (with a) |"
    echo "| (a) repository size, allocated blocks (du -s) | $(mib "$ALLOC_A_M") | $(mib "$ALLOC_A_R") | $(ratio "$ALLOC_A_R" "$ALLOC_A_M")x | | |"
    echo "| (a) monofs stats \"stored\" (sealed objects, no store overhead) | $(mib "$STORED_A_M") | | | | |"
    echo "| (b) incremental backup (1% = $CHANGED files changed), wall | $(secs b-monofs) | $(secs b-restic) | ${R_B}x | >= 1.5x | $met_b |"
    echo "| (b) peak RSS | $(rss b-monofs) | $(rss b-restic) | | | |"
    echo "| (b) repository growth (du -sb) | $(mib "$GROW_M") | $(mib "$GROW_R") | ${S_G}x | <= restic | (with b) |"
    echo "| (b) growth, allocated blocks (du -s) | $(mib $((ALLOC_B_M - ALLOC_A_M))) | $(mib $((ALLOC_B_R - ALLOC_A_R))) | | | |"
    echo "| (b) growth of monofs stats \"stored\" | $(mib "$GROW_STORED_M") | | | | |"
    echo "| (c) unchanged tree again, wall | $(secs c-monofs) | $(secs c-restic) | ${R_C}x | monofs < 2 s | $met_c |"
    echo "| (c) peak RSS | $(rss c-monofs) | $(rss c-restic) | | | |"
    echo "| (d) restore (checkout --to / restore latest), wall | $(secs d-monofs) | $(secs d-restic) | ${R_D}x | >= 1.0x | $met_d |"
    echo "| (d) peak RSS | $(rss d-monofs) | $(rss d-restic) | | | |"
    echo "| (d) restore identical to source | $VERIFY_monofs | $VERIFY_restic | | content + listing pass | |"
    echo "| (e) diff of a one-file change (hyperfine mean) | $(ms "$DIFF_M_MS" "$DIFF_M_SD") | $(ms "$DIFF_R_MS" "$DIFF_R_SD") | ${R_E}x | monofs < 50 ms | $met_e |"
    echo "| (e) monofs log (open + key derivation baseline) | $(ms "$LOG_M_MS" "$LOG_M_SD") | | | | |"
    echo "| (e') diff of a one-file change, unencrypted monofs repo | $(ms "$DIFFP_M_MS" "$DIFFP_M_SD") | | | (supplementary) | $(awk -v m="$DIFFP_M_MS" 'BEGIN { print (m != "" && m + 0 < 50) ? "yes" : "no" }') |"
    echo "| (e') monofs log, unencrypted repo | $(ms "$LOGP_M_MS" "$LOGP_M_SD") | | | | |"
    echo "| (e) one-file commit / backup, wall | $(secs e-commit-monofs) | $(secs e-backup-restic) | $(ratio "${WALL[e-backup-restic]}" "${WALL[e-commit-monofs]}")x | | |"
    echo "| fsck / check, wall (informational) | $(secs f-fsck-monofs) | $(secs f-check-restic) | $(ratio "${WALL[f-check-restic]}" "${WALL[f-fsck-monofs]}")x | | |"
    echo "| repository size at the end (4 revisions / snapshots) | $(mib "$SIZE_END_M") | $(mib "$SIZE_END_R") | $(ratio "$SIZE_END_R" "$SIZE_END_M")x | | |"
    echo "| gc / prune, wall (informational) | $(secs g-gc-monofs) | $(secs g-prune-restic) | | | |"
    echo "| repository size after gc / prune | $(mib "$SIZE_GC_M") | $(mib "$SIZE_GC_R") | $(ratio "$SIZE_GC_R" "$SIZE_GC_M")x | | |"
    echo
    echo "monofs diff HEAD~1 HEAD printed $DIFF_LINES line(s); names $DIFF_FILE: $DIFF_NAMES_FILE."
    echo
    echo "Raw (wall s / peak KB / user s / sys s / exit / CPU s used by everything else on the machine meanwhile / steal s):"
    echo
    echo '```'
    for l in a-monofs a-restic b-restic b-monofs c-monofs c-restic d-restic d-monofs e-commit-monofs e-backup-restic f-fsck-monofs f-check-restic g-gc-monofs g-prune-restic; do
        printf '%-16s %8s s %9s KB %8s u %8s s  rc=%s  other=%s s  steal=%s s\n' "$l" "${WALL[$l]:-}" "${RSS[$l]:-}" "${USR[$l]:-}" "${SYS[$l]:-}" "${RC[$l]:-}" "${OTHER[$l]:-}" "${STEAL[$l]:-}"
    done
    echo "sizes (du -sb) bytes: monofs a=$SIZE_A_M b=$SIZE_B_M end=$SIZE_END_M gc=$SIZE_GC_M; restic a=$SIZE_A_R b=$SIZE_B_R end=$SIZE_END_R prune=$SIZE_GC_R"
    echo "allocated (du -s) bytes: monofs a=$ALLOC_A_M b=$ALLOC_B_M; restic a=$ALLOC_A_R b=$ALLOC_B_R"
    echo "monofs stored bytes: a=$STORED_A_M b=$STORED_B_M end=$STORED_END_M"
    echo "diff ms: monofs $DIFF_M_MS ± $DIFF_M_SD; monofs log $LOG_M_MS ± $LOG_M_SD; restic diff $DIFF_R_MS ± $DIFF_R_SD"
    echo "unencrypted diff ms: monofs $DIFFP_M_MS ± $DIFFP_M_SD; monofs log $LOGP_M_MS ± $LOGP_M_SD"
    report_end
} | tee "$WORK/results.md"
