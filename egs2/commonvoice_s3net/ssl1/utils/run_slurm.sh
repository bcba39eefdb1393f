#!/usr/bin/env bash
# Same interface as utils/run_local.sh, each job submitted to Slurm with `sbatch --wait`.
#   utils/run_slurm.sh [JOB=1:N] LOG command [args...]
# Resources come from the environment (set them in cmd.sh):
#   SLURM_PARTITION, SLURM_GPUS (per job, default 0), SLURM_CPUS (default 1),
#   SLURM_MEM (default 4G), SLURM_TIME (default 24:00:00), SLURM_EXTRA (raw sbatch options).
set -u
if [ $# -lt 2 ]; then
    echo "Usage: $0 [JOB=1:N] LOG command [args...]" >&2
    exit 2
fi
range=""
if [[ "$1" =~ ^[A-Za-z_]+=[0-9]+:[0-9]+$ ]]; then range=$1; shift; fi
log=$1; shift
if ! command -v sbatch >/dev/null 2>&1; then
    echo "$0: sbatch not found: this machine is not a Slurm submit host (set cmd_backend=local in cmd.sh)" >&2
    exit 1
fi
submit() {
    local job_log=$1; shift
    local opts=(--wait --job-name "$(basename "${job_log}" .log)" --output "${job_log}"
                --cpus-per-task "${SLURM_CPUS:-1}" --mem "${SLURM_MEM:-4G}" --time "${SLURM_TIME:-24:00:00}")
    [ -n "${SLURM_PARTITION:-}" ] && opts+=(--partition "${SLURM_PARTITION}")
    [ "${SLURM_GPUS:-0}" -gt 0 ] && opts+=(--gres "gpu:${SLURM_GPUS}")
    # shellcheck disable=SC2206
    [ -n "${SLURM_EXTRA:-}" ] && opts+=(${SLURM_EXTRA})
    mkdir -p "$(dirname "${job_log}")"
    sbatch "${opts[@]}" --wrap "$(printf '%q ' "$@")"
}
# run_local.sh provides the job array, the log naming and the failure report; each of
# its jobs submits one Slurm job and waits for it
here=$(cd "$(dirname "$0")" && pwd)
export -f submit
if [ -n "${range}" ]; then
    exec "${here}/run_local.sh" "${range}" "${log}.submit" bash -c 'submit "$@"' submit "${log}" "$@"
else
    exec "${here}/run_local.sh" "${log}.submit" bash -c 'submit "$@"' submit "${log}" "$@"
fi
