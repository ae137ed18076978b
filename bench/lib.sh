# Helpers shared by the benchmark scripts (sourced, not run).

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

HZ=$(getconf CLK_TCK)
# busy and steal jiffies of the whole machine (all CPUs) from /proc/stat
cpu_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# This is a shared 2-core class of machine: before each timed command wait
# (up to WAIT_QUIET_MAX s, default 300; 0 disables) until the machine has
# been nearly idle (< 15% of one core busy) for 3 s running.
WAIT_QUIET_MAX=${WAIT_QUIET_MAX:-300}
wait_quiet() {
    ((WAIT_QUIET_MAX > 0)) || return 0
    local start=$SECONDS calm=0 a b busy
    while ((calm < 3)); do
        a=$(cpu_jiffies); sleep 1; b=$(cpu_jiffies)
        busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); print y[1] - x[1] }')
        if ((busy * 100 < 15 * HZ)); then calm=$((calm + 1)); else calm=0; fi
        if ((SECONDS - start > WAIT_QUIET_MAX)); then
            log "machine still busy after ${WAIT_QUIET_MAX}s; measuring anyway"
            return 0
        fi
    done
    ((SECONDS - start <= 4)) || log "waited $((SECONDS - start)) s for the machine to become quiet"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# bench_setup NAME DEFAULT_WORK [WORK]: sets ROOT (this repository), WORK
# (made, absolute), MONOFS_BIN (absolute; default the release build), TIME
# (GNU time) and BENCH (the script's name, for messages).
bench_setup() {
    BENCH=$1
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    WORK=${3:-$2}
    mkdir -p "$WORK"
    WORK=$(cd "$WORK" && pwd -P)
    MONOFS_BIN=${MONOFS_BIN:-$ROOT/target/release/monofs}
    MONOFS_BIN=$(readlink -f "$MONOFS_BIN" || echo "$MONOFS_BIN")
    TIME=/usr/bin/time
    export LC_ALL=C
}

# need TOOL...: exits 2 naming the first tool that is not installed.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$BENCH: $tool is not installed" >&2; exit 2; }
    done
}

# need_file TEST PATH HINT: exits 2 unless `[[ TEST PATH ]]` holds.
need_file() {
    [[ $1 == -x && -x $2 ]] || [[ $1 == -f && -f $2 ]] || [[ $1 == -d && -d $2 ]] ||
        { echo "$BENCH: no $2 ($3)" >&2; exit 2; }
}

# Table helpers: ratio A B = A/B to 2 places ("n/a" without both); ge/le
# A B = yes/no; median/maxof of numbers (others ignored); mib BYTES.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || a == "" || b == "") print "no"; else print (a + 0 >= b + 0) ? "yes" : "no" }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || a == "" || b == "") print "no"; else print (a + 0 <= b + 0) ? "yes" : "no" }'; }
maxof() { { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | tail -n1; } || true; }
median() { { printf '%s\n' "$@" | grep -E '^[0-9.]+$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mib() { awk -v b="$1" 'BEGIN { if (b == "") print "n/a"; else printf "%.1f MiB", b / 1048576 }'; }

# start_run LOGDIR: as root (drop_caches), with LOGDIR emptied as LOGS, the
# load average at the start in LOAD_START, and the arrays `timed` fills.
start_run() {
    ((EUID == 0)) || { echo "$BENCH: run as root (drop_caches)" >&2; exit 2; }
    LOGS=$1
    mkdir -p "$LOGS"
    rm -f "$LOGS"/*
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    declare -gA WALL=() OTHER=() RC=()
    FAILURES=()
}

# failed LABEL RC CMD...: records that CMD (labelled LABEL) exited RC, with
# the end of its stderr ($LOGS/LABEL.err), in FAILURES and on stderr.
failed() {
    local label=$1 rc=$2
    shift 2
    FAILURES+=("$label: exit $rc: $* -- $(tail -n 5 "$LOGS/$label.err" | tr '\n' ' ')")
    log "FAILED ($rc): $label: $*"
    sed 's/^/    /' "$LOGS/$label.err" | tail -n 20 >&2
}

# timed LABEL CMD...: runs CMD under GNU time after wait_quiet, its output in
# $LOGS/LABEL.{out,err,time}; wall seconds in WALL[LABEL], exit code in
# RC[LABEL], and CPU seconds the whole machine used meanwhile in
# OTHER[LABEL] (a noise gauge; it includes a server's own work). A failure
# is recorded in FAILURES and never aborts the script. See start_run.
timed() {
    local label=$1; shift
    local rc=0 before after
    wait_quiet
    before=$(cpu_jiffies)
    "$TIME" -f '%e s %U user %S sys' -o "$LOGS/$label.time" "$@" >"$LOGS/$label.out" 2>"$LOGS/$label.err" || rc=$?
    after=$(cpu_jiffies)
    RC[$label]=$rc
    WALL[$label]=$(grep -E '^[0-9.]+ s ' "$LOGS/$label.time" | tail -n1 | awk '{print $1}')
    OTHER[$label]=$(awk -v b="$before" -v a="$after" -v hz="$HZ" 'BEGIN { split(b, x, " "); split(a, y, " "); printf "%.2f", (y[1] - x[1]) / hz }')
    if ((rc != 0)); then
        failed "$label" "$rc" "$@"
    else
        log "$label: ${WALL[$label]} s (machine busy CPU meanwhile ${OTHER[$label]} s)"
    fi
    return 0
}

# report_end: the closing lines of a results report: the load average at
# the start and now, the end of the raw block, and the failures if any.
report_end() {
    echo "load average: start $LOAD_START; end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo '```'
    if ((${#FAILURES[@]})); then
        echo
        echo "Failures:"
        for f in "${FAILURES[@]}"; do echo "- $f"; done
    fi
}
