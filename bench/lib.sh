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
