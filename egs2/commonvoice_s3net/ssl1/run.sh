#!/usr/bin/env bash
# S3Net on Common Voice (XLSR-10 languages). With COMMONVOICE unset (db.sh) the recipe
# synthesises a small corpus in the Common Voice layout and runs on CPU.
# Any s3net.sh option can be added: ./run.sh --stage 3 --nj 8 --ngpu 1 ...
set -euo pipefail

langs="es fr it ky nl ru sv-SE tr tt zh-CN"
pretrain_config=conf/pretrain_xlsr_small.yaml

./s3net.sh \
    --langs "${langs}" \
    --pretrain_config "${pretrain_config}" \
    "$@"
