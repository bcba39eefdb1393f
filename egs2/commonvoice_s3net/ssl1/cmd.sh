# Where the recipe's jobs run: "local" (this machine, parallel jobs with a log each) or
# "slurm" (each job through sbatch; set the resources below).
cmd_backend=${cmd_backend:-local}

if [ "${cmd_backend}" = local ]; then
    export train_cmd="utils/run_local.sh"
    export cuda_cmd="utils/run_local.sh"
    export decode_cmd="utils/run_local.sh"
elif [ "${cmd_backend}" = slurm ]; then
    export SLURM_PARTITION=${SLURM_PARTITION:-}
    export train_cmd="utils/run_slurm.sh"
    export decode_cmd="utils/run_slurm.sh"
    export cuda_cmd="env SLURM_GPUS=${SLURM_GPUS:-1} utils/run_slurm.sh"
else
    echo "cmd.sh: unknown cmd_backend=${cmd_backend} (local or slurm)" >&2
    return 1
fi
