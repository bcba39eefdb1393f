#!/usr/bin/env bash
# S3Net on Common Voice (XLSR-10 languages). With COMMONVOICE unset (db.sh) the recipe
# synthesises a small corpus in the Common Voice layout and runs on CPU.
# The quick demo: S3Net with lottery-ticket sub-networks (the paper's main row) against its
# control, the same continued training without masks (xlsr_cont). run_paper.sh runs every arm
# of the paper's comparison with three seeds.
# Any s3net.sh option can be added: ./run.sh --stage 3 --nj 8 --ngpu 1 \
#     --subnet_methods "te lth" --finetune_models "xlsr xlsr_cont s3net_te s3net_lth" ...
set -euo pipefail

langs="es fr it ky nl ru sv-SE tr tt zh-CN"
pretrain_config=conf/pretrain_xlsr_small.yaml
subnet_methods="lth"
finetune_models="xlsr_cont s3net_lth"
# on CPU the two arms run side by side (path.sh gives each job one thread: two cores); with
# --ngpu N one at a time unless --arm_nj says otherwise (each job takes N GPUs)
arm_nj=2
prev=
for arg in "$@"; do
    [ "${prev}" = --ngpu ] && [ "${arg}" != 0 ] && arm_nj=1
    prev=${arg}
done

./s3net.sh \
    --langs "${langs}" \
    --pretrain_config "${pretrain_config}" \
    --subnet_methods "${subnet_methods}" \
    --finetune_models "${finetune_models}" \
    --arm_nj "${arm_nj}" \
    "$@"
