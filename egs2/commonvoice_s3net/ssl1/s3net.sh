#!/usr/bin/env bash
# S3Net recipe stages. Every option below can be given as --foo_bar value or --foo-bar value.
# Stages (run --stage N --stop_stage M for a range; each can be rerun and redoes or
# resumes its work cleanly):
#   0  synthesise a corpus in the Common Voice layout (only when COMMONVOICE is empty)
#   1  Common Voice tsv -> data/{train,dev,test}_<lang>, data/{train,dev}_multi
#   2  (reserved: unions are built in stages 1, 3 and 4)
#   3  audio formatting: 16 kHz FLAC in dump/raw/<set>, utt2num_samples, duration filter
#   4  transcripts: phones (phonemizer + espeak-ng), char text, token lists
#   5  data report: data/data_report.md
#   6  XLSR (wav2vec 2.0) pre-training on dump/raw/train_multi
#   7  sub-network extraction per language (TE, LTH, random) + mask report
#   8  S3Net language-adaptive training from the pre-trained model with each mask file
#   9  multilingual CTC fine-tuning (s3net frontend) of every model in finetune_models
#  10  decoding of every test language (with its sub-network): CTC greedy, or ESPnet's
#      beam search with inference_args="--beam_size N ..."
#  11  scoring with sclite (phones: score_wer = PER; chars: score_cer)
#  12  RESULTS.md: one row per model, one column per language, High / Low / Avg
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (s3net.sh:${BASH_LINENO[0]}) $*"; }

# general
stage=0                 # first stage to run
stop_stage=100          # last stage to run
nj=4                    # parallel jobs for data preparation
ngpu=0                  # GPUs for training (0: CPU)
python=python3          # the Python interpreter of tools/venv (after path.sh)
langs="es fr it ky nl ru sv-SE tr tt zh-CN"  # language ids (Common Voice locales)
dumpdir=dump            # formatted data
expdir=exp              # experiments
# stage 0: synthetic corpus
synth_dir=synth_cv      # where the synthetic corpus is written
synth_size=small        # tiny (CI) or small (demo)
synth_seed=0            # seed of the synthetic corpus
# stage 1: Common Voice reading
train_from=train        # train (release split) or validated (validated minus dev/test clips and speakers)
max_train_hours=        # cap of train hours per language (XLSR protocol: 1)
split_list_dir=         # fixed split lists <dir>/<locale>/{train,dev,test}.txt: clip [phones...]
# stage 3: audio
fs=16000                # sample rate of the formatted audio
min_duration=0.5        # seconds; shorter clips are skipped (and listed in skipped.tsv)
max_duration=20         # seconds; longer clips are skipped (0: no limit)
# stage 4: tokens
token_type=phn          # phn, char or bpe (lists for phn and char are always made)
bpe_vocab_size=500      # sentencepiece vocabulary (token_type=bpe)
# stage 6: pre-training
pretrain_config=conf/pretrain_xlsr_small.yaml  # ESPnet config of XLSR pre-training
pretrain_args=          # extra options for espnet_s3net.bin.ssl_train, e.g. "--max_epoch 2"
pretrain_init=          # public checkpoint to start from: fairseq .pt or Hugging Face dir
skip_pretrain=false     # true: no pre-training; later stages start from pretrain_init
pretrain_model=valid.loss.ave.pth  # checkpoint of stage 6 that stages 7-8 start from
# stages 7-8: sub-networks and S3Net training
subnet_methods="te lth" # extraction methods (te, lth, random); one S3Net model each
extract_conf_dir=conf   # holds extract_<method>.yaml
s3net_train_config=conf/s3net_train_small.yaml  # ESPnet config of S3Net training
s3net_train_args=       # extra options for espnet_s3net.bin.ssl_train in stage 8
# stages 9-12: fine-tuning, decoding, scoring
finetune_models="xlsr s3net_te s3net_lth"  # xlsr = the dense pre-trained model, s3net_<method>
asr_config=conf/asr_ctc_small.yaml  # ESPnet ASR config with frontend: s3net
asr_args=               # extra options for espnet_s3net.bin.asr_train
missing_lang_mask=error # decoding a language without a mask: error or dense (logged)
inference_args=         # extra options for espnet_s3net.bin.asr_inference, e.g. "--beam_size 10 --ctc_weight 0.3"
high_langs=             # High columns of RESULTS.md (default: top 5 by XLSR-10 hours)

. ./path.sh
. ./cmd.sh
. ./db.sh
. utils/parse_options.sh

if [ $# -gt 0 ]; then
    log "Error: unexpected arguments: $*"
    exit 1
fi

raw=${dumpdir}/raw
per_lang_sets() { local s l; for s in train dev test; do for l in ${langs}; do echo "${s}_${l}"; done; done; }
cv_root=${COMMONVOICE:-${synth_dir}}

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    if [ -n "${COMMONVOICE}" ]; then
        log "Stage 0: COMMONVOICE=${COMMONVOICE}: no synthetic corpus needed"
    else
        log "Stage 0: synthesising the ${synth_size} corpus (${langs}) into ${synth_dir}"
        ${python} -m espnet_s3net.bin.synth_cv --out "${synth_dir}" --size "${synth_size}" \
            --langs ${langs} --seed "${synth_seed}" --nj "${nj}"
    fi
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: reading Common Voice from ${cv_root} into data/"
    _opts=
    [ -n "${max_train_hours}" ] && _opts+="--max_train_hours ${max_train_hours} "
    [ -n "${split_list_dir}" ] && _opts+="--split_list_dir ${split_list_dir} "
    # shellcheck disable=SC2086
    ${python} -m espnet_s3net.bin.prepare_cv --cv_root "${cv_root}" --langs "${langs}" \
        --data_dir data --train_from "${train_from}" ${_opts}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stage 3: formatting audio (${fs} Hz FLAC) into ${raw}/ with ${nj} jobs"
    for dset in $(per_lang_sets); do
        out=${raw}/${dset}
        if [ -f "${out}/.done" ]; then
            log "Stage 3: ${out} already formatted"
            continue
        fi
        rm -rf "${out}"
        mkdir -p "${out}"
        _nj=$(${python} -m espnet_s3net.bin.format_audio split --data_dir "data/${dset}" --out_dir "${out}" --nj "${nj}")
        ${train_cmd} JOB=1:"${_nj}" "${out}/log/format.JOB.log" \
            ${python} -m espnet_s3net.bin.format_audio job --wav_scp "${out}/split${_nj}/wav.JOB.scp" \
                --out_dir "${out}" --fs "${fs}" --min_duration "${min_duration}" --max_duration "${max_duration}"
        ${python} -m espnet_s3net.bin.format_audio merge --data_dir "data/${dset}" --out_dir "${out}" --nj "${_nj}"
        rm -rf "${out}/split${_nj}"
        touch "${out}/.done"
    done
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "Stage 4: phone and char transcripts, token lists"
    for l in ${langs}; do
        # rerunning is cheap: phones come from the cache, outputs are rewritten identically
        ${python} -m espnet_s3net.bin.prepare_text --locale "${l}" --nj "${nj}" \
            --cache_dir "${dumpdir}/phonemize_cache" \
            --data_dir "${raw}/train_${l}" "${raw}/dev_${l}" "${raw}/test_${l}"
    done
    for split in train dev; do
        _srcs=
        for l in ${langs}; do _srcs+="${raw}/${split}_${l} "; done
        # shellcheck disable=SC2086
        ${python} -m espnet_s3net.bin.prepare_cv --combine "${raw}/${split}_multi" ${_srcs}
    done
    for t in phn char $( [ "${token_type}" = bpe ] && echo bpe ); do
        _text=${raw}/train_multi/text_char
        [ "${t}" = phn ] && _text=${raw}/train_multi/text_phn
        ${python} -m espnet_s3net.bin.make_token_list --token_type "${t}" --text "${_text}" \
            --output_dir "data/token_list/${t}" --bpe_vocab_size "${bpe_vocab_size}"
    done
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: data report -> data/data_report.md"
    ${python} -m espnet_s3net.bin.data_report --dump_dir "${raw}" --langs "${langs}" \
        --token_list_dir data/token_list --data_dir data --output data/data_report.md
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    pretrain_dir=${expdir}/xlsr_pretrain
    if "${skip_pretrain}"; then
        log "Stage 6: XLSR pre-training skipped (skip_pretrain=true)"
    elif [ -e "${pretrain_dir}/valid.loss.ave.pth" ]; then
        log "Stage 6: XLSR pre-training already finished: ${pretrain_dir}/valid.loss.ave.pth"
    else
        log "Stage 6: XLSR pre-training with ${pretrain_config} -> ${pretrain_dir}"
        for f in ${raw}/train_multi/wav.scp ${raw}/train_multi/utt2num_samples \
                 ${raw}/train_multi/utt2category ${raw}/dev_multi/wav.scp \
                 ${raw}/dev_multi/utt2num_samples ${raw}/dev_multi/utt2category; do
            if [ ! -f "${f}" ]; then
                log "Error: ${f} is missing; run stages 3-4 first"
                exit 1
            fi
        done
        mkdir -p "${pretrain_dir}"
        _opts=
        if [ -n "${pretrain_init}" ]; then
            log "Stage 6: starting from the public checkpoint ${pretrain_init}"
            _opts+="--init ${pretrain_init} "
        fi
        # --resume true continues a killed run from ${pretrain_dir}/checkpoint.pth
        # shellcheck disable=SC2086
        ${cuda_cmd} "${pretrain_dir}/train.log" \
            ${python} -m espnet_s3net.bin.ssl_train \
                --config "${pretrain_config}" \
                --ngpu "${ngpu}" \
                --multiprocessing_distributed true \
                --resume true \
                --output_dir "${pretrain_dir}" \
                --train_data_path_and_name_and_type ${raw}/train_multi/wav.scp,speech,sound \
                --train_shape_file ${raw}/train_multi/utt2num_samples \
                --valid_data_path_and_name_and_type ${raw}/dev_multi/wav.scp,speech,sound \
                --valid_shape_file ${raw}/dev_multi/utt2num_samples \
                ${_opts} ${pretrain_args}
        log "Stage 6: done: ${pretrain_dir}/valid.loss.ave.pth (log: ${pretrain_dir}/train.log)"
    fi
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    for method in ${subnet_methods}; do
        out=${expdir}/subnets_${method}
        if [ -f "${out}/masks.pt" ]; then
            log "Stage 7: ${out}/masks.pt exists"
            continue
        fi
        log "Stage 7: ${method} sub-networks of ${langs} -> ${out}/masks.pt"
        mkdir -p "${out}"
        ${cuda_cmd} "${out}/extract.log" \
            ${python} -m espnet_s3net.bin.extract_subnets --config "${extract_conf_dir}/extract_${method}.yaml" \
                --model_config "${expdir}/xlsr_pretrain/config.yaml" \
                --model_file "${expdir}/xlsr_pretrain/${pretrain_model}" \
                --data_root "${raw}" --langs "${langs}" --output "${out}/masks.pt" --ngpu "${ngpu}"
        ${python} -m espnet_s3net.bin.mask_report --masks "${out}/masks.pt" > "${out}/report.log"
        log "Stage 7: report: ${out}/masks_report.md"
    done
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    for method in ${subnet_methods}; do
        out=${expdir}/s3net_${method}
        if [ -e "${out}/valid.loss.ave.pth" ]; then
            log "Stage 8: S3Net training (${method}) already finished: ${out}"
            continue
        fi
        log "Stage 8: S3Net training with the ${method} sub-networks -> ${out}"
        mkdir -p "${out}"
        # the experiment carries its masks (the trainer also records their fingerprint)
        cp "${expdir}/subnets_${method}/masks.pt" "${out}/masks.pt"
        # shellcheck disable=SC2086
        ${cuda_cmd} "${out}/train.log" \
            ${python} -m espnet_s3net.bin.ssl_train \
                --config "${s3net_train_config}" \
                --ngpu "${ngpu}" \
                --multiprocessing_distributed true \
                --resume true \
                --init_param "${expdir}/xlsr_pretrain/${pretrain_model}" \
                --model_conf mask_file="${out}/masks.pt" \
                --output_dir "${out}" \
                --train_data_path_and_name_and_type ${raw}/train_multi/wav.scp,speech,sound \
                --train_shape_file ${raw}/train_multi/utt2num_samples \
                --valid_data_path_and_name_and_type ${raw}/dev_multi/wav.scp,speech,sound \
                --valid_shape_file ${raw}/dev_multi/utt2num_samples \
                ${s3net_train_args}
        log "Stage 8: done: ${out}/valid.loss.ave.pth (log: ${out}/train.log)"
    done
fi

case "${token_type}" in
    phn) espnet_token_type=word; text_name=text_phn; score_dir=score_wer; score_unit=word ;;
    char) espnet_token_type=char; text_name=text_char; score_dir=score_cer; score_unit=char ;;
    bpe) espnet_token_type=bpe; text_name=text_char; score_dir=score_cer; score_unit=char ;;
    *) log "Error: token_type must be phn, char or bpe"; exit 1 ;;
esac
# finetune model name -> directory of its self-supervised model
ssl_dir_of() { if [ "$1" = xlsr ]; then echo "${expdir}/xlsr_pretrain"; else echo "${expdir}/$1"; fi; }

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    for model in ${finetune_models}; do
        src=$(ssl_dir_of "${model}")
        out=${expdir}/asr_${model}
        if [ -e "${out}/valid.loss.ave.pth" ]; then
            log "Stage 9: fine-tuning of ${model} already finished: ${out}"
            continue
        fi
        log "Stage 9: CTC fine-tuning (${token_type}) of ${model} (${src}) -> ${out}"
        _opts="--frontend_conf ssl_config=${src}/config.yaml --frontend_conf ssl_model_file=${src}/${pretrain_model} "
        [ -f "${src}/masks.pt" ] && _opts+="--frontend_conf mask_file=${src}/masks.pt "
        [ "${token_type}" = bpe ] && _opts+="--bpemodel data/token_list/bpe/bpe.model "
        mkdir -p "${out}"
        # shellcheck disable=SC2086
        ${cuda_cmd} "${out}/train.log" \
            ${python} -m espnet_s3net.bin.asr_train --config "${asr_config}" --ngpu "${ngpu}" \
                --multiprocessing_distributed true --resume true --output_dir "${out}" \
                --mask_source_check false \
                --token_type "${espnet_token_type}" --token_list "data/token_list/${token_type}/tokens.txt" \
                --train_data_path_and_name_and_type ${raw}/train_multi/wav.scp,speech,sound \
                --train_data_path_and_name_and_type ${raw}/train_multi/${text_name},text,text \
                --train_shape_file ${raw}/train_multi/utt2num_samples \
                --valid_data_path_and_name_and_type ${raw}/dev_multi/wav.scp,speech,sound \
                --valid_data_path_and_name_and_type ${raw}/dev_multi/${text_name},text,text \
                --valid_shape_file ${raw}/dev_multi/utt2num_samples \
                ${_opts} ${asr_args}
    done
fi

if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    for model in ${finetune_models}; do
        out=${expdir}/asr_${model}
        _sets=
        for l in ${langs}; do _sets+="test_${l} "; done
        log "Stage 10: decoding ${_sets}with ${out}"
        # shellcheck disable=SC2086
        ${decode_cmd} "${out}/decode.log" \
            ${python} -m espnet_s3net.bin.asr_inference --asr_train_config "${out}/config.yaml" \
                --asr_model_file "${out}/valid.loss.ave.pth" --data_root "${raw}" --test_sets ${_sets} \
                --output_root "${out}" --missing_lang_mask "${missing_lang_mask}" --ngpu "${ngpu}" \
                ${inference_args}
    done
fi

if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ]; then
    for model in ${finetune_models}; do
        for l in ${langs}; do
            d=${expdir}/asr_${model}/decode_test_${l}
            ${python} -m espnet_s3net.bin.score --ref "${raw}/test_${l}/${text_name}" --hyp "${d}/text" \
                --output_dir "${d}/${score_dir}" --unit "${score_unit}" > "${d}/score.log"
        done
        log "Stage 11: scored ${expdir}/asr_${model} (${score_dir})"
    done
fi

if [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ]; then
    log "Stage 12: ${expdir}/RESULTS.md"
    _dirs=
    for model in ${finetune_models}; do _dirs+="${expdir}/asr_${model} "; done
    # shellcheck disable=SC2086
    ${python} -m espnet_s3net.bin.make_results --exp_dirs ${_dirs} --langs "${langs}" \
        --output "${expdir}/RESULTS.md" --score "${score_dir}" ${high_langs:+--high "${high_langs}"}
fi

log "Finished stages ${stage}-${stop_stage}"
