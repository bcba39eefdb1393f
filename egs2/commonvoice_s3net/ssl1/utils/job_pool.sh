# Independent experiments of one stage (arms x seeds) as parallel jobs. Sourced by s3net.sh.
#   pool_init N NGPU BACKEND   at most N jobs at a time; BACKEND local: with NGPU > 0, the job
#                              in slot k (0..N-1) sees GPUs k*NGPU .. (k+1)*NGPU-1 of
#                              CUDA_VISIBLE_DEVICES (default 0,1,...); any other backend (slurm)
#                              leaves the GPUs to the cluster
#   pool_run NAME cmd [args]   runs cmd (a command or a shell function, in a subshell with
#                              set -e as the caller's) once a slot is free
#   pool_wait                  waits for every job; returns 1 naming each failed one
# A stage that is interrupted stops its running jobs; a rerun resumes them (--resume).

pool_init() {
    _pool_size=$1 _pool_ngpu=$2
    _pool_pids=() _pool_names=() _pool_failed=() _pool_gpus=()
    if ! [[ "${_pool_size}" =~ ^[1-9][0-9]*$ ]]; then
        echo "job_pool: the number of parallel jobs must be a positive integer, got '${_pool_size}'" >&2
        return 1
    fi
    if [ "$3" = local ] && [ "${_pool_ngpu}" -gt 0 ] && [ "${_pool_size}" -gt 1 ]; then
        local devices=${CUDA_VISIBLE_DEVICES:-$(seq -s, 0 $((_pool_size * _pool_ngpu - 1)))}
        IFS=, read -r -a _pool_gpus <<< "${devices}"
        if [ "${#_pool_gpus[@]}" -lt $((_pool_size * _pool_ngpu)) ]; then
            echo "job_pool: ${_pool_size} parallel jobs of ${_pool_ngpu} GPU(s) need $((_pool_size * _pool_ngpu))" \
                 "GPUs; CUDA_VISIBLE_DEVICES has ${#_pool_gpus[@]} (${devices})" >&2
            return 1
        fi
    fi
    trap '_pool_stop' INT TERM
}

# the finished job of slot $1: record a failure, free the slot
_pool_reap() {
    if ! wait "${_pool_pids[$1]}"; then
        _pool_failed+=("${_pool_names[$1]}")
    fi
    _pool_pids[$1]=
}

# wait for a free slot and set _pool_slot to it (not printed: a subshell could not reap the job)
_pool_free_slot() {
    local k
    while :; do
        for ((k = 0; k < _pool_size; k++)); do
            if [ -z "${_pool_pids[$k]:-}" ]; then
                _pool_slot=${k}
                return
            fi
            if ! kill -0 "${_pool_pids[$k]}" 2>/dev/null; then
                _pool_reap "${k}"
                _pool_slot=${k}
                return
            fi
        done
        sleep 1
    done
}

pool_run() {
    local name=$1
    shift
    _pool_free_slot
    local slot=${_pool_slot}
    if [ "${#_pool_gpus[@]}" -gt 0 ]; then
        local gpus
        gpus=$(IFS=,; echo "${_pool_gpus[*]:$((slot * _pool_ngpu)):${_pool_ngpu}}")
        ( export CUDA_VISIBLE_DEVICES=${gpus}; "$@" ) &
    else
        ( "$@" ) &
    fi
    _pool_pids[slot]=$!
    _pool_names[slot]=${name}
}

pool_wait() {
    local k
    for ((k = 0; k < _pool_size; k++)); do
        if [ -n "${_pool_pids[$k]:-}" ]; then
            _pool_reap "${k}"
        fi
    done
    if [ "${#_pool_failed[@]}" -gt 0 ]; then
        local failed=("${_pool_failed[@]}")
        _pool_failed=()
        echo "job_pool: ${#failed[@]} job(s) failed: ${failed[*]}" >&2
        return 1
    fi
}

# pid $1 and all its descendants, children first (from /proc: no procps needed)
_pool_tree() {
    local stat line fields
    for stat in /proc/[0-9]*/stat; do
        line=$(cat "${stat}" 2>/dev/null) || continue
        read -r -a fields <<< "${line##*) }"  # after the command name: state ppid ...
        [ "${fields[1]:-}" = "$1" ] && _pool_tree "$(basename "$(dirname "${stat}")")"
    done
    echo "$1"
}

_pool_stop() {
    local k pids=()
    trap - INT TERM
    echo "job_pool: interrupted; stopping the running jobs" >&2
    for ((k = 0; k < _pool_size; k++)); do
        # the job, its job runner and the training processes it started
        [ -n "${_pool_pids[$k]:-}" ] && pids+=($(_pool_tree "${_pool_pids[$k]}"))
    done
    [ "${#pids[@]}" -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
    exit 130
}
