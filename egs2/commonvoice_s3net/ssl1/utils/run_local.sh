#!/usr/bin/env bash
# Run a command as one job or an array of jobs on this machine, a log per job.
#   utils/run_local.sh LOG command args...                      (one job)
#   utils/run_local.sh JOB=1:N exp/log/x.JOB.log command args   (N parallel jobs; JOB in the
#                                                                log name and args is replaced)
# Each log holds the command, start and end time and the exit code. When a job fails,
# the script names the job and its log and exits 1 (after all jobs ended).
set -u
if [ $# -lt 2 ]; then
    echo "Usage: $0 [JOB=1:N] LOG command [args...]" >&2
    exit 2
fi
first=1; last=1; var=""
if [[ "$1" =~ ^([A-Za-z_]+)=([0-9]+):([0-9]+)$ ]]; then
    var=${BASH_REMATCH[1]}; first=${BASH_REMATCH[2]}; last=${BASH_REMATCH[3]}
    shift
fi
log=$1; shift

run_job() {
    local n=$1; shift
    local job_log=${log} args=() a
    if [ -n "${var}" ]; then job_log=${log//${var}/${n}}; fi
    for a in "$@"; do
        if [ -n "${var}" ]; then args+=("${a//${var}/${n}}"); else args+=("$a"); fi
    done
    mkdir -p "$(dirname "${job_log}")"
    {
        echo "# ${args[*]}"
        echo "# Started at $(date)"
    } > "${job_log}"
    "${args[@]}" >> "${job_log}" 2>&1
    local rc=$?
    {
        echo "# Accounting: exit code ${rc}"
        echo "# Ended at $(date) (exit code ${rc})"
    } >> "${job_log}"
    return ${rc}
}

pids=()
for n in $(seq "${first}" "${last}"); do
    run_job "${n}" "$@" &
    pids+=($!)
done
failed=0
n=${first}
for pid in "${pids[@]}"; do
    if ! wait "${pid}"; then
        job_log=${log}; [ -n "${var}" ] && job_log=${log//${var}/${n}}
        echo "$0: job ${n} failed, see ${job_log}" >&2
        failed=$((failed + 1))
    fi
    n=$((n + 1))
done
if [ ${failed} -gt 0 ]; then
    echo "$0: ${failed} of $((last - first + 1)) jobs failed" >&2
    exit 1
fi
exit 0
