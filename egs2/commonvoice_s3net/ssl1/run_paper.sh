#!/usr/bin/env bash
# The paper's method comparison as one command: every arm from the same pre-trained model,
# with the same continued-training budget and fine-tuning, for each seed; RESULTS.md with
# means ± sd over seeds, bootstrap intervals and paired tests against xlsr_cont.
# Finished arms are skipped (each stage checks its experiment record). Any s3net.sh option
# can be added, e.g. a real release with the base configs:
#   COMMONVOICE=/data/cv ./run_paper.sh --pretrain_config conf/pretrain_xlsr_base.yaml \
#       --s3net_train_config conf/s3net_train_base.yaml --asr_config conf/asr_ctc_base.yaml --ngpu 1
set -euo pipefail

langs="es fr it ky nl ru sv-SE tr tt zh-CN"
seeds="1 2 3"
# layerwise LTH and TE (the paper's rows), the paper's ablations (global LTH, global random)
# and LTH with 2:4 structured masks at the same 50% sparsity (the ablation table's last row;
# global TE, conf/extract_te_global.yaml, is one more arm: add te_global / s3net_te_global)
subnet_methods="lth te lth_global random_global lth_2of4"
finetune_models="xlsr xlsr_cont s3net_lth s3net_te s3net_lth_global s3net_random_global s3net_lth_2of4 adapter gating"
prev=
for arg in "$@"; do
    if [ "${prev}" = --seeds ] && [ -z "${arg//[[:space:]]/}" ]; then
        echo "run_paper.sh: Error: --seeds is empty; the comparison needs seeds (e.g. --seeds \"1 2 3\")" >&2
        exit 1
    fi
    prev=${arg}
done

./s3net.sh \
    --langs "${langs}" \
    --pretrain_config conf/pretrain_xlsr_small.yaml \
    --subnet_methods "${subnet_methods}" \
    --finetune_models "${finetune_models}" \
    --seeds "${seeds}" \
    "$@"
