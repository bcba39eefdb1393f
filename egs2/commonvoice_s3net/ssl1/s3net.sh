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
#   7  sub-network extraction per language (TE, LTH, random) + mask report, from the
#      pre-trained model (or from pretrain_init with skip_pretrain=true)
#   8  continued training from the same model: S3Net language-adaptive training with each
#      mask file, and (xlsr_cont in finetune_models) the same training without masks
#   9  multilingual CTC fine-tuning (s3net frontend, ESPnet's espnet2.bin.asr_train) of every
#      model in finetune_models
#  10  decoding of every test language (with its sub-network) by inference_tool: s3net
#      (espnet_s3net.bin.asr_inference, batched CTC greedy) or espnet (ESPnet's
#      espnet2.bin.asr_inference, e.g. inference_args="--beam_size 10 --ctc_weight 1.0" for
#      the CTC-only asr_ctc_* models); inference_args go to the tool used
#  11  scoring with sclite (phones: score_wer = PER; chars: score_cer)
#  12  RESULTS.md: one row per model of finetune_models, one column per language, High / Low / Avg
#
# --experiment pathways: ASR pathways and its baselines, every arm CTC fine-tuning of the same
# starting model with the same config, data, updates and seeds (stages 7 and 9-12; stage 8 has
# nothing to do): xlsr (dense), agnostic (language-agnostic pruned: one mask for all languages),
# fixed_<pathway_method> (stage 7's masks fixed before fine-tuning), pathways (per-language
# masks pruned during fine-tuning), dynamic_pathways (also drop-and-regrow); the pruned arms at
# pathway_sparsity; RESULTS_pathways.md with the pathways table (sparsity and overlap from the
# masks), next to the main experiment's RESULTS.md (both start from the same model).
#
# --experiment distill_l2s: Distill-L2S (Choi & Park, Interspeech 2022): CTC fine-tuning of each
# low-resource language alone (every language of langs but the High ones: high_langs, default the
# top 3 by XLSR-10 hours) from the starting model, without (arm ctc: plain CTC, lambda 0) and with
# the auxiliary loss of a text teacher (arm l2s: the asr_config's lambda; or l2s_lambda<value> per
# value of l2s_lambdas), the same config (conf/asr_ctc_l2s_small.yaml), data, updates and seeds;
# stage 8 trains the text teacher on the training transcripts (or l2s_teacher_dir gives one);
# RESULTS_distill_l2s.md with the per-language table (stages 8-12; stage 7 has nothing to do).
#
# --experiment distilxlsr: DistilXLSR (Interspeech 2023): students of about half the teacher's size
# distilled from the starting model (the teacher) on one source language's speech
# (distill_source_lang, default the language of langs with the most XLSR-10 hours), then every arm
# CTC fine-tuned on the other languages with the same config, data, updates and seeds: teacher (the
# starting model, the control), distilxlsr (layer jumping, shuffled phonemes), distil_first_k (no
# layer jumping: the teacher's first layers, shuffled phonemes), distil_unshuffled (layer jumping,
# the same utterances unshuffled). Stage 7: the phoneme CTC model that aligns the source language
# (the main experiment's stage-9 xlsr, fine-tuned here if missing); stage 8: the shuffled-phoneme
# sets dump/raw/{train,dev}_<src>_shuffled, their unshuffled twins, the fine-tuning data
# dump/raw/{train,dev}_multi_no_<src> and the three distillations; stages 9-11: fine-tuning,
# decoding, scoring of the four arms; stage 12: RESULTS_distilxlsr.md (PER per language, #params,
# decoding RTF of every arm measured in one run by espnet_s3net.bin.compare_rtf).
#
# Experiment directories (stages 6-9) are named from their config and a tag, as ESPnet's
# asr.sh names exp/asr_<asr_tag>, and every experiment lives inside the directory of the
# model it starts from, so that a change upstream gives new directories downstream:
#   ${expdir}/pretrain_<pretrain_tag>/                               6  pre-training ("ssl dir")
#   ${expdir}/init_<pretrain_tag>/                                   6  instead, with skip_pretrain=true
#   <ssl dir>/subnets_<method>[_<subnets_tag>]/masks.pt              7  sub-networks
#   <ssl dir>/subnets_<method>[_<subnets_tag>]/s3net_<s3net_tag>/    8  S3Net training ("S3Net dir")
#   <ssl dir>/xlsr_cont/s3net_<s3net_tag>/                           8  the same, no masks (xlsr_cont)
#   <ssl dir>/asr_<asr_tag>/                                         9  fine-tuning of xlsr
#   <S3Net dir>/asr_<asr_tag>/                                       9  fine-tuning of s3net_<method>
#   <ssl dir>/{agnostic,pathways,dynamic_pathways}/asr_<asr_tag>/    9  pathway arms (masks in pathways/)
#   <ssl dir>/subnets_<method>[_<subnets_tag>]_sparsity<s>/masks.pt  7  masks of fixed_<method> at pathway_sparsity
#   <that dir>/asr_<asr_tag>/                                        9  fine-tuning with them fixed (fixed_<method>)
#   ${expdir}/text_teacher[_<l2s_teacher_args suffix>]/              8  Distill-L2S text teacher (self-trained)
#   <ssl dir>/distill_l2s_<teacher>/<arm>/asr_<asr_tag>/<lang>/      9  Distill-L2S fine-tuning of one language
#   <ssl dir>/distilxlsr_<src>/<student>/distill_<distill_tag>/     8  DistilXLSR distillation of a student
#   <that dir>/asr_<asr_tag>/                                        9  its fine-tuning on the other languages
#   <ssl dir>/distilxlsr_<src>/teacher/asr_<asr_tag>/                9  the teacher's fine-tuning on them
# Default tags: pretrain_tag = basename of pretrain_config without .yaml (with skip_pretrain:
# basename of pretrain_init without .pt), s3net_tag = basename of s3net_train_config,
# distill_tag = basename of distill_config,
# asr_tag = basename of asr_config + _<token_type> (+ bpe_vocab_size for bpe); each plus the
# suffix ESPnet's asr.sh derives from the extra args ("--max_epoch 2" -> "_max_epoch2").
# A tag that already starts with the directory's prefix is not prefixed again
# (conf/pretrain_xlsr_small.yaml -> exp/pretrain_xlsr_small). Each experiment dir records
# what it was started with (experiment.yaml: config content, extra args, upstream inputs
# with their fingerprints); a stage run again with other settings stops and names what
# differs: pass a new tag, or remove the directory to redo it. What a stage takes from an
# experiment (extraction, S3Net initialisation, fine-tuning frontends, decoding, #params) is
# its checkpoint inference_model (default valid.loss.ave.pth), which also marks it finished.
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (s3net.sh:${BASH_LINENO[0]}) $*"; }
# a job of stages 7-10: log $1 when it starts (it may wait for a free slot), then run the rest
log_then() { log "$1"; shift; "$@"; }

# general
stage=0                 # first stage to run
stop_stage=100          # last stage to run
nj=4                    # parallel jobs for data preparation
ngpu=0                  # GPUs of each training, extraction and decoding job (0: CPU)
arm_nj=1                # stages 7-10: experiments (methods, arms x seeds) run at the same time; with
                        # cmd_backend=slurm each is a cluster job, so the grid takes the time of one
                        # arm; locally with ngpu > 0, job k gets GPUs k*ngpu..(k+1)*ngpu-1
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
pretrain_tag=           # names ${expdir}/pretrain_<tag> (default: from pretrain_config and pretrain_args)
pretrain_init=          # public checkpoint to start from: fairseq .pt or Hugging Face dir
skip_pretrain=false     # true: no pre-training; stages 7-9 start from pretrain_init (${expdir}/init_<tag>)
# stages 7-10: the checkpoint of an experiment that the next stage starts from or decodes with
inference_model=valid.loss.ave.pth  # file name inside the experiment dir (as in ESPnet's asr.sh)
# stages 7-8: sub-networks and S3Net training
subnet_methods="te lth" # extraction methods (te, lth, random); one S3Net model each
extract_conf_dir=conf   # holds extract_<method>.yaml
subnets_tag=            # names <ssl dir>/subnets_<method>_<tag> (default: subnets_<method>)
s3net_train_config=conf/s3net_train_small.yaml  # ESPnet config of S3Net training
s3net_train_args=       # extra options for espnet_s3net.bin.ssl_train in stage 8
s3net_tag=              # names .../s3net_<tag> (default: from s3net_train_config and s3net_train_args)
# stages 9-12: fine-tuning, decoding, scoring
finetune_models="xlsr xlsr_cont s3net_te s3net_lth"  # xlsr: the dense starting model; xlsr_cont: the
                        # same continued (stage 8) training as S3Net without masks, the control of
                        # equal budget; s3net_<method>: S3Net training with the <method> masks;
                        # adapter / gating: the same training of per-language adapters / gates
                        # the pathways arms (all fine-tuning the starting model directly): agnostic,
                        # pathways, dynamic_pathways (masks learned in fine-tuning, frontend_conf.pathways),
                        # fixed_<method> (stage 7's <method> masks at pathway_sparsity, fixed)
adapter_bottleneck=256  # bottleneck of the adapter model's per-language adapters
asr_config=             # ESPnet ASR config with frontend: s3net (default conf/asr_ctc_small.yaml;
                        # with --experiment pathways conf/asr_ctc_pathways_small.yaml, whose
                        # frontend_conf.pathways holds the pruned arms' schedule)
asr_args=               # extra options for espnet2.bin.asr_train
asr_tag=                # names .../asr_<tag> (default: from asr_config, token_type and asr_args)
inference_tool=s3net    # s3net: espnet_s3net.bin.asr_inference (batched CTC greedy, all sets in one process);
                        # espnet: ESPnet's espnet2.bin.asr_inference (one test set at a time)
inference_args=         # extra options for the inference_tool, e.g. "--batch_bins 2000000" (s3net),
                        # "--beam_size 10 --ctc_weight 1.0" (espnet; ctc_weight 1.0 for a CTC-only model)
missing_lang_mask=error # s3net tool, a language without a mask: error or dense (logged)
high_langs=             # High columns of RESULTS.md (default: the top 3 by XLSR-10 hours, as the paper)
seeds=                  # e.g. "1 2 3": stages 8-11 once per seed (--seed N; dirs *_seed<N>); empty: the configs' seed
# the pathways and Distill-L2S experiments
experiment=             # empty: the models of finetune_models; pathways: finetune_models becomes
                        # "xlsr agnostic fixed_<pathway_method> pathways dynamic_pathways", subnet_methods
                        # empty (no S3Net training), and stage 12 writes the multi-seed RESULTS.md
                        # (one experiment per arm without seeds) with the pathways table; distill_l2s:
                        # the arms ctc and l2s (or l2s_lambda<value>) instead of finetune_models (see above)
pathway_sparsity=0.5    # target sparsity of every pruned arm: agnostic, fixed_<method>, pathways, dynamic_pathways
pathway_method=lth      # extraction method (conf/extract_<method>.yaml) of the fixed_<method> arm
# the Distill-L2S experiment
l2s_lambdas=            # optional sweep, e.g. "0.1 1.0": one arm l2s_lambda<value> each (empty: one arm l2s
                        # with asr_config's model_conf.distill_l2s_conf.lambda); plain CTC (ctc) always runs
l2s_teacher_dir=        # the text teacher: a local Hugging Face text encoder dir (XLM-R / InfoXLM) or a
                        # train_text_teacher dir; empty: stage 8 trains one on the training transcripts
l2s_teacher_args=       # extra options for espnet_s3net.bin.train_text_teacher (stage 8), e.g. "--steps 500"
# the DistilXLSR experiment
distill_source_lang=    # the language whose speech the students are distilled on (one of langs; default: the one
                        # with the most XLSR-10 hours; the paper: English); the others are fine-tuned and scored
distill_config=conf/distill_xlsr_small.yaml  # config of espnet_s3net.bin.distill_train (all three students)
distill_args=           # extra options for espnet_s3net.bin.distill_train (stage 8), e.g. "--max_epoch 2"
distill_tag=            # names .../distill_<tag> (default: from distill_config and distill_args)
distill_min_utts=10     # fewer source utterances to shuffle (or shuffled) stop stage 8 with a message
distill_shuffle_args=   # extra options for espnet_s3net.bin.shuffle_phonemes, e.g. "--fade_ms 5 --seed 1"
distill_rtf_args=       # extra options for espnet_s3net.bin.compare_rtf (stage 12), e.g. "--rounds 5 --max_utts 100"

. ./path.sh
. ./cmd.sh
. ./db.sh
. utils/parse_options.sh
. utils/job_pool.sh

if [ $# -gt 0 ]; then
    log "Error: unexpected arguments: $*"
    exit 1
fi

raw=${dumpdir}/raw
per_lang_sets() { local s l; for s in train dev test; do for l in ${langs}; do echo "${s}_${l}"; done; done; }
cv_root=${COMMONVOICE:-${synth_dir}}

case "${token_type}" in
    phn) espnet_token_type=word; text_name=text_phn; score_dir=score_wer; score_unit=word ;;
    char) espnet_token_type=char; text_name=text_char; score_dir=score_cer; score_unit=char ;;
    bpe) espnet_token_type=bpe; text_name=text_char; score_dir=score_cer; score_unit=char ;;
    *) log "Error: token_type must be phn, char or bpe"; exit 1 ;;
esac
case "${inference_tool}" in
    s3net|espnet) ;;
    *) log "Error: inference_tool must be s3net or espnet, got '${inference_tool}'"; exit 1 ;;
esac
pool_init "${arm_nj}" "${ngpu}" "${cmd_backend:-local}" || exit 1
for seed in ${seeds}; do
    case "${seed}" in
        *[!0-9]*) log "Error: seeds must be non-negative integers, got '${seed}'"; exit 1 ;;
    esac
done
if "${skip_pretrain}" && [ -z "${pretrain_init}" ]; then
    log "Error: skip_pretrain=true needs --pretrain_init (a fairseq .pt file or a Hugging Face directory)"
    exit 1
fi
case "${experiment}" in
    "") ;;
    pathways)
        finetune_models="xlsr agnostic fixed_${pathway_method} pathways dynamic_pathways"
        subnet_methods=
        asr_config=${asr_config:-conf/asr_ctc_pathways_small.yaml}
        log "The pathways experiment: finetune_models=\"${finetune_models}\", no S3Net training (subnet_methods" \
            "empty), pathway_sparsity=${pathway_sparsity}, asr_config=${asr_config}" ;;
    distill_l2s)
        finetune_models=
        subnet_methods=
        asr_config=${asr_config:-conf/asr_ctc_l2s_small.yaml} ;;
    distilxlsr)
        finetune_models=
        subnet_methods= ;;
    *) log "Error: unknown --experiment '${experiment}' (empty, pathways, distill_l2s or distilxlsr)"; exit 1 ;;
esac
asr_config=${asr_config:-conf/asr_ctc_small.yaml}
# the Distill-L2S experiment's low-resource languages, text teacher and arms (name -> lambda),
# checked before any stage: a lambda < 0, a teacher dir that is missing or holds no text teacher,
# or no low-resource language stops here
l2s_low= l2s_teacher_type= l2s_arms=
declare -A l2s_lambda=()
if [ "${experiment}" = distill_l2s ]; then
    _lines=$(${python} -m espnet_s3net.bin.l2s_options --asr_config "${asr_config}" --lambdas "${l2s_lambdas}" \
        --teacher_dir "${l2s_teacher_dir}" --langs "${langs}" --high_langs "${high_langs}") || exit 1
    while read -r _kind _name _value; do
        case "${_kind}" in
            low) l2s_low="${_name} ${_value}" ;;
            teacher) l2s_teacher_type=${_name} ;;
            arm) l2s_arms+="${_name} "; l2s_lambda[${_name}]=${_value} ;;
        esac
    done <<< "${_lines}"
    l2s_low=$(echo ${l2s_low})
    log "The Distill-L2S experiment: arms ${l2s_arms}(lambda:$(for a in ${l2s_arms}; do printf ' %s' "${l2s_lambda[${a}]}"; done))," \
        "each low-resource language fine-tuned alone: ${l2s_low}; teacher ${l2s_teacher_type}" \
        "${l2s_teacher_dir:-(self-trained in stage 8)}; asr_config=${asr_config}; no S3Net training"
fi
# the DistilXLSR experiment's source language, evaluation languages and arms (name -> distill_conf.init
# and distillation data), checked before any stage: a source language not in langs, no other language
# or a missing distill_config stops here
distil_src= distil_langs= distil_arms=
declare -A distil_init=() distil_data=()
if [ "${experiment}" = distilxlsr ]; then
    case "${distill_min_utts}" in
        ""|*[!0-9]*|0) log "Error: distill_min_utts must be a positive integer, got '${distill_min_utts}'"; exit 1 ;;
    esac
    _lines=$(${python} -m espnet_s3net.bin.distilxlsr_options plan --langs "${langs}" \
        --source_lang "${distill_source_lang}" --distill_config "${distill_config}") || exit 1
    while read -r _kind _rest; do
        case "${_kind}" in
            source) distil_src=${_rest} ;;
            langs) distil_langs=${_rest} ;;
            arm)
                read -r _name _init _data <<< "${_rest}"
                distil_arms+="${_name} "; distil_init[${_name}]=${_init}; distil_data[${_name}]=${_data} ;;
        esac
    done <<< "${_lines}"
    distil_arms=$(echo ${distil_arms})
    log "The DistilXLSR experiment: source language ${distil_src} (shuffled-phoneme speech), arms ${distil_arms}," \
        "fine-tuned on ${distil_langs}; distill_config=${distill_config}; asr_config=${asr_config}; no S3Net training"
fi
if ! awk -v s="${pathway_sparsity}" 'BEGIN { exit !(s ~ /^([0-9]+\.?[0-9]*|\.[0-9]+)$/ && s + 0 < 1) }'; then
    log "Error: pathway_sparsity must be a number in [0, 1), got '${pathway_sparsity}'"
    exit 1
fi
for model in ${finetune_models}; do
    case "${model}" in
        xlsr|xlsr_cont|adapter|gating|s3net_?*|agnostic|pathways|dynamic_pathways|fixed_?*) ;;
        *) log "Error: finetune_models: unknown model '${model}' (xlsr, xlsr_cont, adapter, gating," \
               "s3net_<method>, agnostic, pathways, dynamic_pathways or fixed_<method>)"; exit 1 ;;
    esac
done
# the frontend_conf.pathways value of each model (stage 9), checked against the run now: a
# schedule that does not fit the run's updates stops the recipe before any training
# (the DistilXLSR experiment: xlsr's, the aligner of stage 7, which every arm shares: all are dense)
declare -A pathway_conf=()
if { [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ] && [ "${experiment}" != distill_l2s ]; } \
        || { [ ${stage} -le 9 ] && [ ${stop_stage} -ge 7 ] && [ "${experiment}" = distilxlsr ]; }; then
    _arms=${finetune_models}
    [ "${experiment}" = distilxlsr ] && _arms=xlsr
    _lines=$(${python} -m espnet_s3net.bin.pathway_options --asr_config "${asr_config}" --asr_args "${asr_args}" \
        --arms "${_arms}" --sparsity "${pathway_sparsity}" --langs "${langs}") || exit 1
    while read -r _model _value; do pathway_conf[${_model}]=${_value}; done <<< "${_lines}"
fi

# Experiment directories (see the top of this file).
# The suffix ESPnet's asr.sh adds to a tag for its extra args: "--max_epoch 2" -> "_max_epoch2"
args_suffix() { echo "$1" | sed -e "s/--/\_/g" -e "s/[ |=/]//g"; }
# <prefix>_<tag>, or <tag> when it already starts with <prefix>_
exp_name() { case "$2" in "$1"_*) echo "$2" ;; *) echo "$1_$2" ;; esac; }
if [ -z "${pretrain_tag}" ]; then
    if "${skip_pretrain}"; then
        pretrain_tag=$(basename "${pretrain_init%/}" .pt)
    else
        pretrain_tag="$(basename "${pretrain_config}" .yaml)$(args_suffix "${pretrain_args}")"
    fi
fi
if [ -z "${s3net_tag}" ]; then
    s3net_tag="$(basename "${s3net_train_config}" .yaml)$(args_suffix "${s3net_train_args}")"
fi
if [ -z "${asr_tag}" ]; then
    asr_tag="$(basename "${asr_config}" .yaml)_${token_type}"
    [ "${token_type}" = bpe ] && asr_tag+="${bpe_vocab_size}"
    asr_tag+="$(args_suffix "${asr_args}")"
fi
# the dir of the self-supervised starting model: a pre-training experiment, or (skip_pretrain)
# the dir that holds the experiments starting from pretrain_init
if "${skip_pretrain}"; then
    ssl_exp=${expdir}/$(exp_name init "${pretrain_tag}")
else
    ssl_exp=${expdir}/$(exp_name pretrain "${pretrain_tag}")
fi
subnets_exp() { echo "${ssl_exp}/subnets_$1${subnets_tag:+_${subnets_tag}}"; }  # method
# the masks of fixed_<method>: <method> extracted at pathway_sparsity
fixed_masks_exp() { echo "$(subnets_exp "$1")_sparsity${pathway_sparsity}"; }  # method
s3net_exp() { echo "$(subnets_exp "$1")/$(exp_name s3net "${s3net_tag}")"; }   # method
# stage 8 without masks: xlsr_cont, adapter, gating
cont_exp() { echo "${ssl_exp}/$1/$(exp_name s3net "${s3net_tag}")"; }
# finetune model (xlsr, s3net_<method>) -> the experiment its frontend starts from
# seeds: stage 8 and 9 run once per seed (--seed N, dirs *_seed<N>); none: the configs' seed
seed_list=${seeds:-_}
seed_suffix() { [ "$1" = _ ] || echo "_seed$1"; }
seed_opts() { [ "$1" = _ ] || echo "--seed $1"; }
# "<model>@<seed>" for every model of $1 (default finetune_models) and seed
model_runs() { local m s; for m in ${1:-${finetune_models}}; do for s in ${seed_list}; do echo "${m}@${s}"; done; done; }
# models fine-tuned from the starting model itself (no stage 8)
from_start() { case "$1" in xlsr|agnostic|pathways|dynamic_pathways|fixed_?*) return 0 ;; esac; return 1; }
# model seed -> the experiment its frontend starts from (xlsr and the pathways arms: the
# starting model, one for all seeds)
ssl_exp_of() {
    if from_start "$1"; then echo "${ssl_exp}"; return; fi
    case "$1" in
        xlsr_cont|adapter|gating) echo "$(cont_exp "$1")$(seed_suffix "$2")" ;;
        *) echo "$(s3net_exp "${1#s3net_}")$(seed_suffix "$2")" ;;
    esac
}
# model seed -> the dir its fine-tuning lives in (that of what makes the arm: its masks or its schedule)
asr_parent_of() {
    case "$1" in
        agnostic|pathways|dynamic_pathways) echo "${ssl_exp}/$1" ;;
        fixed_?*) fixed_masks_exp "${1#fixed_}" ;;
        *) ssl_exp_of "$1" "$2" ;;
    esac
}
asr_exp_of() { echo "$(asr_parent_of "$1" "$2")/$(exp_name asr "${asr_tag}")$(seed_suffix "$2")"; }
# the Distill-L2S experiment: its text teacher (given, or trained in stage 8), and the fine-tuning
# of arm $1, seed $2 as one dir per seed holding one experiment per low-resource language
if [ -n "${l2s_teacher_dir}" ]; then
    l2s_teacher=${l2s_teacher_dir%/}
else
    l2s_teacher=${expdir}/text_teacher$(args_suffix "${l2s_teacher_args}")
fi
l2s_root=${ssl_exp}/distill_l2s_$(basename "${l2s_teacher}")
l2s_arm_exp() { echo "${l2s_root}/$1/$(exp_name asr "${asr_tag}")$(seed_suffix "$2")"; }  # arm seed
l2s_exp_of() { echo "$(l2s_arm_exp "$1" "$2")/$3"; }  # arm seed lang
# the DistilXLSR experiment: the phoneme CTC model that aligns the source language (the main
# experiment's xlsr fine-tuning, first seed), the fine-tuning data (every language but the source),
# each student's distillation (arm) and every arm's fine-tuning (arm seed)
if [ -z "${distill_tag}" ]; then
    distill_tag="$(basename "${distill_config}" .yaml)$(args_suffix "${distill_args}")"
fi
distil_root=${ssl_exp}/distilxlsr_${distil_src}
distil_aligner=$(asr_exp_of xlsr "${seed_list%% *}")
distil_train=train_multi_no_${distil_src} distil_dev=dev_multi_no_${distil_src}
distil_student_exp() { echo "${distil_root}/$1/$(exp_name distill "${distill_tag}")"; }
distil_asr_exp() {
    if [ "$1" = teacher ]; then
        echo "${distil_root}/teacher/$(exp_name asr "${asr_tag}")$(seed_suffix "$2")"
    else
        echo "$(distil_student_exp "$1")/$(exp_name asr "${asr_tag}")$(seed_suffix "$2")"
    fi
}
# Refuse to start, resume or reuse an experiment whose recorded settings differ:
# check_experiment <dir> <tag option> <config> <extra args> [--input name=path | --option name=value]...
check_experiment() {
    local dir=$1 tag_option=$2 config=$3 args=$4
    shift 4
    ${python} -m espnet_s3net.bin.check_experiment --exp_dir "${dir}" --tag_option "${tag_option}" \
        --config "${config}" --args="${args}" "$@"
}
# --input options for the fingerprints of the training data (train_multi, dev_multi; with
# data_sets="train_<l> dev_<l>" those) files utt2num_samples, utt2lang and the given ones
data_sets="train_multi dev_multi"
data_inputs() {
    local s f
    for s in ${data_sets}; do
        for f in utt2num_samples utt2lang "$@"; do echo "--input ${s}/${f}=${raw}/${s}/${f}"; done
    done
}
# the language of each utterance as ESPnet data, for every training command
lang_data_opts="--train_data_path_and_name_and_type ${raw}/train_multi/utt2lang,lang,text"
lang_data_opts+=" --valid_data_path_and_name_and_type ${raw}/dev_multi/utt2lang,lang,text"

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

# the starting model of stages 7-9: options of extract_subnets, ssl_train and the s3net
# frontend, and the --input option that fingerprints it
if "${skip_pretrain}"; then
    extract_source_opts="--init ${pretrain_init}"
    s3net_init_opts="--init ${pretrain_init}"
    xlsr_frontend_opts="--frontend_conf init_checkpoint=${pretrain_init}"
    ssl_input="--input init=${pretrain_init}"
else
    extract_source_opts="--model_config ${ssl_exp}/config.yaml --model_file ${ssl_exp}/${inference_model}"
    s3net_init_opts="--init_param ${ssl_exp}/${inference_model}"
    xlsr_frontend_opts="--frontend_conf ssl_config=${ssl_exp}/config.yaml"
    xlsr_frontend_opts+=" --frontend_conf ssl_model_file=${ssl_exp}/${inference_model}"
    ssl_input="--input ssl_model=${ssl_exp}/${inference_model}"
fi
# stop unless the starting model of stage $1 exists; with skip_pretrain, the init dir records
# which checkpoint its experiments start from (another one under the same name is refused)
check_ssl_model() {
    local f=${pretrain_init}
    "${skip_pretrain}" || f=${ssl_exp}/${inference_model}
    if [ ! -e "${f}" ]; then
        log "Error: stage $1 starts from ${f}, which does not exist (run stage 6 first," \
            "or pass --skip_pretrain true --pretrain_init PATH)"
        exit 1
    fi
    if "${skip_pretrain}"; then
        check_experiment "${ssl_exp}" pretrain_tag "" "" --input "init=${pretrain_init}"
    fi
}

# stage 9 job: CTC fine-tuning into dir $1 with seed $2 ("_": the config's) and the frontend
# options $3, on the data sets $4 and $5 (default train_multi dev_multi)
finetune_job() {
    local train=${4:-train_multi} valid=${5:-dev_multi}
    # shellcheck disable=SC2046,SC2086
    ${cuda_cmd} "$1/train.log" \
        ${python} -m espnet2.bin.asr_train --config "${asr_config}" --ngpu "${ngpu}" \
            --multiprocessing_distributed true --resume true --output_dir "$1" \
            --mask_source_check false \
            --token_type "${espnet_token_type}" --token_list "data/token_list/${token_type}/tokens.txt" \
            --train_data_path_and_name_and_type ${raw}/${train}/wav.scp,speech,sound \
            --train_data_path_and_name_and_type ${raw}/${train}/${text_name},text,text \
            --train_shape_file ${raw}/${train}/utt2num_samples \
            --valid_data_path_and_name_and_type ${raw}/${valid}/wav.scp,speech,sound \
            --valid_data_path_and_name_and_type ${raw}/${valid}/${text_name},text,text \
            --valid_shape_file ${raw}/${valid}/utt2num_samples \
            --train_data_path_and_name_and_type ${raw}/${train}/utt2lang,lang,text \
            --valid_data_path_and_name_and_type ${raw}/${valid}/utt2lang,lang,text $3 $(seed_opts "$2") ${asr_args}
    log "Stage 9: done: $1/${inference_model} (log: $1/train.log)"
}

# stage 9, one fine-tuning of the main and pathways experiments (and of the DistilXLSR experiment's
# stage 7: the main experiment's xlsr, its aligner): model $1 with seed $2 on train_multi, a pool job
finetune_run() {
    local model=$1 seed=$2 src out _opts _inputs _masks
    src=$(ssl_exp_of "${model}" "${seed}")
    out=$(asr_exp_of "${model}" "${seed}")
    if from_start "${model}"; then
        _opts="${xlsr_frontend_opts} "
        _inputs="${ssl_input} "
        case "${model}" in
            fixed_?*)
                _masks=$(fixed_masks_exp "${model#fixed_}")/masks.pt
                if [ ! -f "${_masks}" ]; then
                    log "Error: ${model} fine-tunes with ${_masks}, which does not exist (run stage 7 first)"
                    exit 1
                fi
                _opts+="--frontend_conf mask_file=${_masks} "
                _inputs+="--input masks=${_masks} " ;;
        esac
    else
        if [ ! -e "${src}/${inference_model}" ]; then
            log "Error: fine-tuning ${model} starts from ${src}/${inference_model}, which does not exist" \
                "(run stage 8 first; s3net_<method> needs <method> in subnet_methods)"
            exit 1
        fi
        _opts="--frontend_conf ssl_config=${src}/config.yaml --frontend_conf ssl_model_file=${src}/${inference_model} "
        _inputs="--input ssl_model=${src}/${inference_model} "
        case "${model}" in
            s3net_*)
                _opts+="--frontend_conf mask_file=${src}/masks.pt "
                _inputs+="--input masks=${src}/masks.pt " ;;
        esac
    fi
    finetune_submit "${model}" "${src}" "${out}" "${seed}" "${_opts}" "${_inputs}" "${model}"
}

# stage 9, what every fine-tuning shares: the pathway schedule of model $7 (null: none although the
# config has one), the token list, the experiment check and the pool job, skipped when finished.
# $1 the run's name in the log, $2 its source, $3 its dir, $4 its seed, $5 frontend options, $6 inputs,
# $8 $9 the training and validation sets (default train_multi dev_multi)
finetune_submit() {
    local name=$1 src=$2 out=$3 seed=$4 _opts=$5 _inputs=$6 _pathways=${pathway_conf[$7]:--}
    local train=${8:-train_multi} valid=${9:-dev_multi}
    if [ "${_pathways}" != - ]; then
        _opts+="--frontend_conf pathways=${_pathways} "
        _inputs+="--option pathways=${_pathways} "
    fi
    _inputs+="--input token_list=data/token_list/${token_type}/tokens.txt "
    if [ "${token_type}" = bpe ]; then
        _opts+="--bpemodel data/token_list/bpe/bpe.model "
        _inputs+="--input bpemodel=data/token_list/bpe/bpe.model "
    fi
    # shellcheck disable=SC2046,SC2086
    check_experiment "${out}" asr_tag "${asr_config}" "${asr_args} $(seed_opts "${seed}")" \
        ${_inputs} $(data_sets="${train} ${valid}" data_inputs "${text_name}") --option "token_type=${token_type}"
    if [ -e "${out}/${inference_model}" ]; then
        log "Stage 9: fine-tuning of ${name} already finished: ${out}/${inference_model}"
        return 0
    fi
    pool_run "${out}/train.log" log_then "Stage 9: CTC fine-tuning (${token_type}) of ${name} (${src}) -> ${out}" \
        finetune_job "${out}" "${seed}" "${_opts}" "${train}" "${valid}"
}

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    if "${skip_pretrain}"; then
        log "Stage 6: XLSR pre-training skipped (skip_pretrain=true): stages 7-9 start from" \
            "${pretrain_init}, their experiments go into ${ssl_exp}"
        check_ssl_model 6
    else
        for f in ${raw}/train_multi/wav.scp ${raw}/train_multi/utt2num_samples \
                 ${raw}/train_multi/utt2lang ${raw}/dev_multi/wav.scp \
                 ${raw}/dev_multi/utt2num_samples ${raw}/dev_multi/utt2lang; do
            if [ ! -f "${f}" ]; then
                log "Error: ${f} is missing; run stages 3-4 first"
                exit 1
            fi
        done
        # shellcheck disable=SC2046
        check_experiment "${ssl_exp}" pretrain_tag "${pretrain_config}" "${pretrain_args}" \
            ${pretrain_init:+--input "init=${pretrain_init}"} $(data_inputs)
        if [ -e "${ssl_exp}/${inference_model}" ]; then
            log "Stage 6: XLSR pre-training already finished: ${ssl_exp}/${inference_model}"
        else
            log "Stage 6: XLSR pre-training with ${pretrain_config} -> ${ssl_exp}"
            _opts=
            if [ -n "${pretrain_init}" ]; then
                log "Stage 6: starting from the public checkpoint ${pretrain_init}"
                _opts+="--init ${pretrain_init} "
            fi
            # --resume true continues a killed run from ${ssl_exp}/checkpoint.pth
            # shellcheck disable=SC2086
            ${cuda_cmd} "${ssl_exp}/train.log" \
                ${python} -m espnet_s3net.bin.ssl_train \
                    --config "${pretrain_config}" \
                    --ngpu "${ngpu}" \
                    --multiprocessing_distributed true \
                    --resume true \
                    --output_dir "${ssl_exp}" \
                    --train_data_path_and_name_and_type ${raw}/train_multi/wav.scp,speech,sound \
                    --train_shape_file ${raw}/train_multi/utt2num_samples \
                    --valid_data_path_and_name_and_type ${raw}/dev_multi/wav.scp,speech,sound \
                    --valid_shape_file ${raw}/dev_multi/utt2num_samples \
                    ${lang_data_opts} ${_opts} ${pretrain_args}
            log "Stage 6: done: ${ssl_exp}/${inference_model} (log: ${ssl_exp}/train.log)"
        fi
    fi
fi

# stage 7 job: the masks of method $1 into dir $2 (extra options $3), and their report
extract_job() {
    # shellcheck disable=SC2086
    ${cuda_cmd} "$2/extract.log" \
        ${python} -m espnet_s3net.bin.extract_subnets --config "${extract_conf_dir}/extract_$1.yaml" \
            ${extract_source_opts} \
            --data_root "${raw}" --langs "${langs}" --output "$2/masks.pt" --ngpu "${ngpu}" $3
    ${python} -m espnet_s3net.bin.mask_report --masks "$2/masks.pt" > "$2/report.log"
    log "Stage 7: done: $2/masks.pt, report: $2/masks_report.md"
}

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    check_ssl_model 7
    # "<method>@<extra options>": each of subnet_methods at its config's sparsity, and the
    # method of each fixed_<method> model at pathway_sparsity
    _extractions=
    for method in ${subnet_methods}; do _extractions+="${method}@ "; done
    for model in ${finetune_models}; do
        case "${model}" in fixed_?*) _extractions+="${model#fixed_}@--sparsity=${pathway_sparsity} " ;; esac
    done
    for item in ${_extractions}; do
        method=${item%%@*} _args=${item#*@}
        _args=${_args/=/ }
        if [ -n "${_args}" ]; then out=$(fixed_masks_exp "${method}"); else out=$(subnets_exp "${method}"); fi
        _inputs=
        for l in ${langs}; do _inputs+="--input train_${l}/utt2num_samples=${raw}/train_${l}/utt2num_samples "; done
        # shellcheck disable=SC2086
        check_experiment "${out}" subnets_tag "${extract_conf_dir}/extract_${method}.yaml" "${_args}" \
            ${ssl_input} ${_inputs} --option "langs=${langs}"
        if [ -f "${out}/masks.pt" ]; then
            log "Stage 7: ${out}/masks.pt exists"
            continue
        fi
        pool_run "${out}/extract.log" log_then "Stage 7: ${method} sub-networks of ${langs}${_args:+ (${_args})} -> ${out}/masks.pt" \
            extract_job "${method}" "${out}" "${_args}"
    done
    pool_wait || { log "Error: stage 7 failed (see the logs named above)"; exit 1; }
fi

# the DistilXLSR experiment: the phoneme CTC model that aligns the source language's phonemes for the
# shuffled-phoneme speech (stage 8) is the main experiment's stage-9 xlsr (first seed), the same dir and
# settings: reused when the main experiment made it, fine-tuned here otherwise
if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ] && [ "${experiment}" = distilxlsr ]; then
    check_ssl_model 7
    log "Stage 7: the phoneme CTC model that aligns ${distil_src} for the shuffled-phoneme speech: the main" \
        "experiment's xlsr fine-tuning (stage 9) -> ${distil_aligner}"
    finetune_run xlsr "${seed_list%% *}"
    pool_wait || { log "Error: stage 7 failed (see the logs named above)"; exit 1; }
fi

# stage 8 job: continued training into dir $1 with seed $2 ("_": the config's) and the
# --model_conf value $3 (masks or language modules; empty: none)
continued_job() {
    # shellcheck disable=SC2046,SC2086
    ${cuda_cmd} "$1/train.log" \
        ${python} -m espnet_s3net.bin.ssl_train \
            --config "${s3net_train_config}" \
            --ngpu "${ngpu}" \
            --multiprocessing_distributed true \
            --resume true \
            ${s3net_init_opts} \
            ${3:+--model_conf "$3"} $(seed_opts "$2") \
            --output_dir "$1" \
            --train_data_path_and_name_and_type ${raw}/train_multi/wav.scp,speech,sound \
            --train_shape_file ${raw}/train_multi/utt2num_samples \
            --valid_data_path_and_name_and_type ${raw}/dev_multi/wav.scp,speech,sound \
            --valid_shape_file ${raw}/dev_multi/utt2num_samples \
            ${lang_data_opts} ${s3net_train_args}
    log "Stage 8: done: $1/${inference_model} (log: $1/train.log)"
}

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    check_ssl_model 8
    # every continued model: S3Net training with each method's masks (subnet_methods), and,
    # when fine-tuned, xlsr_cont, adapter and gating (the same config, updates, sampler and
    # seed: no masks; per-language adapters; per-language gates)
    _continued=
    for method in ${subnet_methods}; do _continued+="s3net_${method} "; done
    for model in ${finetune_models}; do
        case "${model}" in xlsr_cont|adapter|gating) _continued+="${model} " ;; esac
    done
    _langs_yaml="[$(echo ${langs} | sed 's/ /, /g')]"
    [ -n "${_continued}" ] || log "Stage 8: no model to train (no subnet_methods; no xlsr_cont, adapter or gating" \
        "in finetune_models)"
    for run in $( [ -z "${_continued}" ] || model_runs "${_continued}"); do
        model=${run%@*} seed=${run#*@}
        out=$(ssl_exp_of "${model}" "${seed}")
        _model_conf=  # one --model_conf value: the masks or the language modules
        _inputs=
        case "${model}" in
            s3net_*)
                masks=$(subnets_exp "${model#s3net_}")/masks.pt
                if [ ! -f "${masks}" ]; then
                    log "Error: ${masks} is missing; run stage 7 first"
                    exit 1
                fi
                _model_conf="mask_file=${out}/masks.pt"
                _inputs="--input masks=${masks}" ;;
            adapter)
                _model_conf="language_modules={type: adapter, languages: ${_langs_yaml}, bottleneck: ${adapter_bottleneck}}"
                _inputs="--option ${_model_conf// /}" ;;
            gating)
                _model_conf="language_modules={type: gating, languages: ${_langs_yaml}}"
                _inputs="--option ${_model_conf// /}" ;;
        esac
        # shellcheck disable=SC2046,SC2086
        check_experiment "${out}" s3net_tag "${s3net_train_config}" "${s3net_train_args} $(seed_opts "${seed}")" \
            ${ssl_input} ${_inputs} $(data_inputs)
        if [ -e "${out}/${inference_model}" ]; then
            log "Stage 8: continued training of ${model} already finished: ${out}/${inference_model}"
            continue
        fi
        # the experiment carries its masks (the trainer also records their fingerprint)
        case "${model}" in s3net_*) mkdir -p "${out}"; cp "${masks}" "${out}/masks.pt" ;; esac
        pool_run "${out}/train.log" log_then "Stage 8: continued training of ${model} -> ${out}" \
            continued_job "${out}" "${seed}" "${_model_conf}"
    done
    pool_wait || { log "Error: stage 8 failed (see the logs named above)"; exit 1; }
fi

# the Distill-L2S experiment: the self-trained text teacher (a masked LM over sentencepiece pieces)
# on the normalised training transcripts of every language (the teacher is multilingual, as the
# paper's InfoXLM; no dev or test text)
if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ] && [ "${experiment}" = distill_l2s ]; then
    if [ -n "${l2s_teacher_dir}" ]; then
        log "Stage 8: the text teacher is given (${l2s_teacher_type}): ${l2s_teacher}; nothing to train"
    else
        _texts= _inputs=
        for l in ${langs}; do
            if [ ! -f "${raw}/train_${l}/text" ]; then
                log "Error: ${raw}/train_${l}/text is missing; run stages 3-4 first"
                exit 1
            fi
            _texts+="${raw}/train_${l}/text "
            _inputs+="--input train_${l}/text=${raw}/train_${l}/text "
        done
        # shellcheck disable=SC2086
        check_experiment "${l2s_teacher}" l2s_teacher_args "" "${l2s_teacher_args}" ${_inputs}
        if [ -f "${l2s_teacher}/teacher.yaml" ]; then
            log "Stage 8: the text teacher is already trained: ${l2s_teacher}"
        else
            log "Stage 8: training the text teacher on the training transcripts of ${langs} -> ${l2s_teacher}"
            # shellcheck disable=SC2086
            ${train_cmd} "${l2s_teacher}/train.log" \
                ${python} -m espnet_s3net.bin.train_text_teacher --text ${_texts} --output_dir "${l2s_teacher}" \
                    ${l2s_teacher_args}
            log "Stage 8: done: ${l2s_teacher} (log: ${l2s_teacher}/train.log)"
        fi
    fi
fi

# stage 8 job (DistilXLSR): the distillation of student arm $1 into dir $2 on the data sets $3 (train)
# and $4 (valid); the students differ only in distill_conf.init and the data
distill_job() {
    # shellcheck disable=SC2086
    ${cuda_cmd} "$2/train.log" \
        ${python} -m espnet_s3net.bin.distill_train --config "${distill_config}" --ngpu "${ngpu}" \
            --multiprocessing_distributed true --resume true --output_dir "$2" \
            ${distil_teacher_opts} --distill_conf "init=${distil_init[$1]}" \
            --train_data_path_and_name_and_type ${raw}/$3/wav.scp,speech,sound \
            --train_data_path_and_name_and_type ${raw}/$3/utt2lang,lang,text \
            --train_shape_file ${raw}/$3/utt2num_samples \
            --valid_data_path_and_name_and_type ${raw}/$4/wav.scp,speech,sound \
            --valid_data_path_and_name_and_type ${raw}/$4/utt2lang,lang,text \
            --valid_shape_file ${raw}/$4/utt2num_samples ${distill_args}
    log "Stage 8: done: $2/${inference_model} (log: $2/train.log)"
}

# the DistilXLSR experiment: the fine-tuning data (every language but the source), the source language's
# shuffled-phoneme sets (train, and dev for the distillation's validation) and their unshuffled twins
# (the same utterances), and the three students' distillations from the starting model (the teacher)
if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ] && [ "${experiment}" = distilxlsr ]; then
    check_ssl_model 8
    if [ ! -e "${distil_aligner}/${inference_model}" ]; then
        log "Error: the shuffled-phoneme speech of ${distil_src} is aligned by the phoneme CTC model" \
            "${distil_aligner}/${inference_model}, which does not exist: run stage 7 first (it fine-tunes xlsr" \
            "as the main experiment's stage 9 does)"
        exit 1
    fi
    for split in train dev; do
        _srcs=
        for l in ${distil_langs}; do
            if [ ! -f "${raw}/${split}_${l}/${text_name}" ]; then
                log "Error: ${raw}/${split}_${l}/${text_name} is missing; run stages 3-4 first"
                exit 1
            fi
            _srcs+="${raw}/${split}_${l} "
        done
        # shellcheck disable=SC2086
        ${python} -m espnet_s3net.bin.prepare_cv --combine "${raw}/${split}_multi_no_${distil_src}" ${_srcs}
    done
    for split in train dev; do
        _in=${raw}/${split}_${distil_src} _out=${raw}/${split}_${distil_src}_shuffled
        _min=${distill_min_utts}
        [ "${split}" = train ] || _min=1
        # shellcheck disable=SC2086
        check_experiment "${_out}" "" "" "${distill_shuffle_args}" \
            --input "aligner=${distil_aligner}/${inference_model}" --input "wav.scp=${_in}/wav.scp" \
            --input "text_phn=${_in}/text_phn" --input "utt2num_samples=${_in}/utt2num_samples"
        if [ -f "${_out}/.done" ]; then
            log "Stage 8: ${_out} exists"
        else
            ${python} -m espnet_s3net.bin.distilxlsr_options check_source --data_dir "${_in}" \
                --min_utts "${_min}" > /dev/null
            log "Stage 8: shuffling the phonemes of ${_in} (aligned by ${distil_aligner}) -> ${_out}"
            # shellcheck disable=SC2086
            ${cuda_cmd} "${_out}/log/shuffle.log" \
                ${python} -m espnet_s3net.bin.shuffle_phonemes --asr_train_config "${distil_aligner}/config.yaml" \
                    --asr_model_file "${distil_aligner}/${inference_model}" --data_dir "${_in}" --out_dir "${_out}" \
                    --ngpu "${ngpu}" ${distill_shuffle_args}
            ${python} -m espnet_s3net.bin.distilxlsr_options check_source --data_dir "${_out}" \
                --min_utts "${_min}" --shuffled > /dev/null
            touch "${_out}/.done"
        fi
        _n=$(${python} -m espnet_s3net.bin.distilxlsr_options subset --data_dir "${_in}" --like "${_out}" \
            --out_dir "${raw}/${split}_${distil_src}_unshuffled")
        log "Stage 8: ${raw}/${split}_${distil_src}_unshuffled: the ${_n} utterances of ${_out} unshuffled"
    done
    if "${skip_pretrain}"; then
        distil_teacher_opts="--teacher_conf init_checkpoint=${pretrain_init}"
    else
        distil_teacher_opts="--teacher_conf ssl_config=${ssl_exp}/config.yaml"
        distil_teacher_opts+=" --teacher_conf ssl_model_file=${ssl_exp}/${inference_model}"
    fi
    for arm in ${distil_arms}; do
        [ "${arm}" = teacher ] && continue
        out=$(distil_student_exp "${arm}")
        _train=train_${distil_src}_${distil_data[${arm}]} _valid=dev_${distil_src}_${distil_data[${arm}]}
        # shellcheck disable=SC2046,SC2086
        check_experiment "${out}" distill_tag "${distill_config}" "${distill_args}" ${ssl_input} \
            --input "shuffled=${raw}/train_${distil_src}_shuffled/experiment.yaml" \
            $(data_sets="${_train} ${_valid}" data_inputs) --option "init=${distil_init[${arm}]}" \
            --option "data=${distil_data[${arm}]}" --option "source_lang=${distil_src}"
        if [ -e "${out}/${inference_model}" ]; then
            log "Stage 8: distillation of ${arm} already finished: ${out}/${inference_model}"
            continue
        fi
        _what="init ${distil_init[${arm}]}, ${distil_data[${arm}]} ${distil_src} speech: ${_train}"
        pool_run "${out}/train.log" log_then "Stage 8: DistilXLSR distillation of ${arm} (${_what}) -> ${out}" \
            distill_job "${arm}" "${out}" "${_train}" "${_valid}"
    done
    pool_wait || { log "Error: stage 8 failed (see the logs named above)"; exit 1; }
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ] && { [ -z "${experiment}" ] || [ "${experiment}" = pathways ]; }; then
    check_ssl_model 9
    for run in $(model_runs); do
        finetune_run "${run%@*}" "${run#*@}"
    done
    pool_wait || { log "Error: stage 9 failed (see the logs named above)"; exit 1; }
fi

# the Distill-L2S experiment: every arm, seed and low-resource language, one fine-tuning each
# (the arms differ only in distill_l2s_conf.lambda)
if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ] && [ "${experiment}" = distill_l2s ]; then
    check_ssl_model 9
    if [ "${l2s_teacher_type}" = self_trained ] && [ ! -f "${l2s_teacher}/teacher.yaml" ]; then
        log "Error: the text teacher ${l2s_teacher} is not trained (no teacher.yaml); run stage 8 first"
        exit 1
    fi
    # what identifies the teacher: the self-trained one's weights and tokenizer, a Hugging Face dir whole
    if [ "${l2s_teacher_type}" = self_trained ]; then
        _teacher_inputs="--input teacher=${l2s_teacher}/model.pth --input teacher_spm=${l2s_teacher}/spm.model "
    else
        _teacher_inputs="--input teacher=${l2s_teacher} "
    fi
    for run in $(model_runs "${l2s_arms}"); do
        arm=${run%@*} seed=${run#*@}
        for l in ${l2s_low}; do
            out=$(l2s_exp_of "${arm}" "${seed}" "${l}")
            _lambda=${l2s_lambda[${arm}]}
            _opts="${xlsr_frontend_opts} --model_conf distill_l2s_conf.teacher=${l2s_teacher_type}"
            _opts+=" --model_conf distill_l2s_conf.teacher_dir=${l2s_teacher} --model_conf distill_l2s_conf.lambda=${_lambda}"
            _opts+=" --train_data_path_and_name_and_type ${raw}/train_${l}/text,l2s_text,text"
            _opts+=" --valid_data_path_and_name_and_type ${raw}/dev_${l}/text,l2s_text,text "
            _inputs="${ssl_input} ${_teacher_inputs}--option l2s_lambda=${_lambda} --option l2s_teacher=${l2s_teacher_type} "
            _inputs+="--input token_list=data/token_list/${token_type}/tokens.txt "
            if [ "${token_type}" = bpe ]; then
                _opts+="--bpemodel data/token_list/bpe/bpe.model "
                _inputs+="--input bpemodel=data/token_list/bpe/bpe.model "
            fi
            # shellcheck disable=SC2046,SC2086
            check_experiment "${out}" asr_tag "${asr_config}" "${asr_args} $(seed_opts "${seed}")" \
                ${_inputs} $(data_sets="train_${l} dev_${l}" data_inputs "${text_name}" text) \
                --option "token_type=${token_type}"
            if [ -e "${out}/${inference_model}" ]; then
                log "Stage 9: Distill-L2S fine-tuning of ${l} (${arm}) already finished: ${out}/${inference_model}"
                continue
            fi
            pool_run "${out}/train.log" log_then \
                "Stage 9: CTC fine-tuning (${token_type}) of ${l} alone, arm ${arm} (lambda ${_lambda}) -> ${out}" \
                finetune_job "${out}" "${seed}" "${_opts}" "train_${l}" "dev_${l}"
        done
    done
    pool_wait || { log "Error: stage 9 failed (see the logs named above)"; exit 1; }
fi

# the DistilXLSR experiment: the teacher and every student, each seed, fine-tuned on the languages but
# the source (the arms differ only in the self-supervised model the frontend starts from)
if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ] && [ "${experiment}" = distilxlsr ]; then
    check_ssl_model 9
    for f in "${raw}/${distil_train}/utt2num_samples" "${raw}/${distil_dev}/utt2num_samples"; do
        if [ ! -f "${f}" ]; then
            log "Error: ${f} is missing; run stage 8 first"
            exit 1
        fi
    done
    for run in $(model_runs "${distil_arms}"); do
        arm=${run%@*} seed=${run#*@}
        out=$(distil_asr_exp "${arm}" "${seed}")
        if [ "${arm}" = teacher ]; then
            src=${ssl_exp}
            _opts="${xlsr_frontend_opts} "
            _inputs="${ssl_input} "
        else
            src=$(distil_student_exp "${arm}")
            if [ ! -e "${src}/${inference_model}" ]; then
                log "Error: fine-tuning ${arm} starts from ${src}/${inference_model}, which does not exist" \
                    "(run stage 8 first)"
                exit 1
            fi
            _opts="--frontend_conf ssl_config=${src}/config.yaml --frontend_conf ssl_model_file=${src}/${inference_model} "
            _inputs="--input ssl_model=${src}/${inference_model} "
        fi
        # every arm is dense, as xlsr (the pathway value null where the config has a schedule)
        finetune_submit "${arm} on ${distil_langs}" "${src}" "${out}" "${seed}" "${_opts}" "${_inputs}" xlsr \
            "${distil_train}" "${distil_dev}"
    done
    pool_wait || { log "Error: stage 9 failed (see the logs named above)"; exit 1; }
fi

# stage 10 job: decoding every test language (or those of $3) with the fine-tuned model in dir $1 of model $2
decode_job() {
    local out=$1 model=$2 l d _sets _lang_opt _langs=${3:-${langs}}
    if [ "${inference_tool}" = s3net ]; then
        _sets=
        for l in ${_langs}; do
            _sets+="test_${l} "
            rm -rf "${out}/decode_test_${l}/espnet"  # of an earlier decoding by the espnet tool
        done
        log "Stage 10: decoding ${_sets}with ${out}/${inference_model} (espnet_s3net.bin.asr_inference)"
        # shellcheck disable=SC2086
        ${decode_cmd} "${out}/decode.log" \
            ${python} -m espnet_s3net.bin.asr_inference --asr_train_config "${out}/config.yaml" \
                --asr_model_file "${out}/${inference_model}" --data_root "${raw}" --test_sets ${_sets} \
                --output_root "${out}" --missing_lang_mask "${missing_lang_mask}" --ngpu "${ngpu}" \
                ${inference_args}
    else
        for l in ${_langs}; do
            d=${out}/decode_test_${l}
            # the language selects the sub-network; a dense model (xlsr, xlsr_cont) takes no
            # language input
            _lang_opt=
            case "${model}" in
                s3net_*|adapter|gating|fixed_?*|agnostic|pathways|dynamic_pathways)
                    _lang_opt="--data_path_and_name_and_type ${raw}/test_${l}/utt2lang,lang,text" ;;
            esac
            log "Stage 10: decoding test_${l} with ${out}/${inference_model} (espnet2.bin.asr_inference)"
            rm -rf "${d}/espnet" "${d}/rtf"
            mkdir -p "${d}"
            # shellcheck disable=SC2086
            ${decode_cmd} "${d}/decode.log" \
                ${python} -m espnet2.bin.asr_inference --asr_train_config "${out}/config.yaml" \
                    --asr_model_file "${out}/${inference_model}" \
                    --data_path_and_name_and_type "${raw}/test_${l}/wav.scp,speech,sound" \
                    ${_lang_opt} --output_dir "${d}/espnet" --ngpu "${ngpu}" ${inference_args}
            # the hypothesis tokens, where stage 11 reads them for either tool
            cp "${d}/espnet/1best_recog/token" "${d}/text"
        done
    fi
}

# the runs of stages 10-11: "<model>@<seed>@<dir>@<languages>" (the Distill-L2S experiment: one per
# arm, seed and low-resource language, that language only; DistilXLSR: every language but the source)
stage_runs() {
    local run arm seed l
    if [ "${experiment}" = distill_l2s ]; then
        for run in $(model_runs "${l2s_arms}"); do
            arm=${run%@*} seed=${run#*@}
            for l in ${l2s_low}; do echo "${arm}@${seed}@$(l2s_exp_of "${arm}" "${seed}" "${l}")@${l}"; done
        done
    elif [ "${experiment}" = distilxlsr ]; then
        for run in $(model_runs "${distil_arms}"); do
            echo "${run}@$(distil_asr_exp "${run%@*}" "${run#*@}")@${distil_langs// /,}"
        done
    else
        for run in $(model_runs); do echo "${run}@$(asr_exp_of "${run%@*}" "${run#*@}")@${langs// /,}"; done
    fi
}

if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    for run in $(stage_runs); do
        IFS=@ read -r model seed out _langs <<< "${run}"
        if [ ! -e "${out}/${inference_model}" ]; then
            log "Error: ${out}/${inference_model} does not exist; run stage 9 first"
            exit 1
        fi
        pool_run "decoding with ${out}/${inference_model}" decode_job "${out}" "${model}" "${_langs//,/ }"
    done
    pool_wait || { log "Error: stage 10 failed (see the logs named above)"; exit 1; }
fi

if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ]; then
    for run in $(stage_runs); do
        IFS=@ read -r model seed out _langs <<< "${run}"
        for l in ${_langs//,/ }; do
            d=${out}/decode_test_${l}
            ${python} -m espnet_s3net.bin.score --ref "${raw}/test_${l}/${text_name}" --hyp "${d}/text" \
                --output_dir "${d}/${score_dir}" --unit "${score_unit}" > "${d}/score.log"
        done
        log "Stage 11: scored ${out} (${score_dir})"
    done
fi

if [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ] && [ "${experiment}" = distilxlsr ]; then
    # one arm per model (teacher: the control), one experiment per seed, scored on every language but the
    # source; #params of each self-supervised model (the teacher: the starting model; a student: its
    # distillation); the decoding RTF of every arm (its first seed's model) measured in one run
    _results=${expdir}/RESULTS_distilxlsr.md _params=${expdir}/params_distilxlsr.txt _rtf=${expdir}/rtf_distilxlsr.txt
    log "Stage 12: ${_results} (arms ${distil_arms}; seeds ${seeds:-of the config}; languages ${distil_langs})"
    _arms= _models=
    _first_seed=${seed_list%% *}
    for arm in ${distil_arms}; do
        _d=
        for seed in ${seed_list}; do
            out=$(distil_asr_exp "${arm}" "${seed}")
            for l in ${distil_langs}; do
                if [ ! -d "${out}/decode_test_${l}" ]; then
                    log "Error: ${out}/decode_test_${l} does not exist; run stages 9-11 first"
                    exit 1
                fi
            done
            _d+="${out},"
        done
        _arms+="--arm ${arm}=${_d%,} "
        out=$(distil_asr_exp "${arm}" "${_first_seed}")
        _models+="--model ${arm}=${out}/config.yaml,${out}/${inference_model} "
    done
    : > "${_params}"
    for arm in ${distil_arms}; do
        if [ "${arm}" != teacher ]; then
            _src=$(distil_student_exp "${arm}")
            _source="--ssl_config ${_src}/config.yaml --ssl_model_file ${_src}/${inference_model}"
        elif "${skip_pretrain}"; then
            _source="--init ${pretrain_init}"
        else
            _source="--ssl_config ${ssl_exp}/config.yaml --ssl_model_file ${ssl_exp}/${inference_model}"
        fi
        # shellcheck disable=SC2086
        _n=$(${python} -m espnet_s3net.bin.count_params ${_source})
        echo "${arm} ${_n}" >> "${_params}"
    done
    _sets=
    for l in ${distil_langs}; do _sets+="test_${l} "; done
    log "Stage 12: decoding real-time factor of ${distil_arms} on ${_sets}in one run -> ${_rtf}"
    # shellcheck disable=SC2086
    ${decode_cmd} "${expdir}/rtf_distilxlsr.log" \
        ${python} -m espnet_s3net.bin.compare_rtf ${_models} --control teacher --data_root "${raw}" \
            --test_sets ${_sets} --output "${_rtf}" --ngpu "${ngpu}" ${distill_rtf_args}
    # High: those of high_langs that are evaluated (default: the top 3 of them by XLSR-10 hours)
    _high=
    for l in ${high_langs}; do
        case " ${distil_langs} " in *" ${l} "*) _high+="${l} " ;; esac
    done
    _configs="--config ${asr_config} --config ${distill_config}"
    "${skip_pretrain}" || _configs+=" --config ${pretrain_config}"
    # shellcheck disable=SC2086
    ${python} -m espnet_s3net.bin.make_results ${_arms} --control teacher --langs "${distil_langs}" \
        --output "${_results}" --score "${score_dir}" --model_file "${inference_model}" \
        ${high_langs:+--high "${_high}"} ${_configs} --params_file "${_params}" --rtf_file "${_rtf}" \
        --distilxlsr_table
elif [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ] && [ "${experiment}" = distill_l2s ]; then
    # one arm per lambda (ctc: plain CTC, the control), one dir per seed holding the experiments of
    # its low-resource languages; the multi-seed report over those languages (all of them Low) with
    # the Distill-L2S table (PER with and without the loss per language, paired tests against ctc)
    _results=${expdir}/RESULTS_distill_l2s.md _params=${expdir}/params_distill_l2s.txt
    log "Stage 12: ${_results} (arms ${l2s_arms}; seeds ${seeds:-of the config}; languages ${l2s_low})"
    _arms=
    for arm in ${l2s_arms}; do
        _d=
        for seed in ${seed_list}; do
            out=$(l2s_arm_exp "${arm}" "${seed}")
            # the seed's dir reads as one experiment: each language's decoding, and the first
            # language's config and record (every language starts from the same model)
            for l in ${l2s_low}; do
                if [ ! -d "${out}/${l}/decode_test_${l}" ]; then
                    log "Error: ${out}/${l}/decode_test_${l} does not exist; run stages 9-11 first"
                    exit 1
                fi
                ln -sfn "${l}/decode_test_${l}" "${out}/decode_test_${l}"
            done
            _first=${l2s_low%% *}
            for f in config.yaml experiment.yaml; do
                [ -e "${out}/${_first}/${f}" ] && ln -sfn "${_first}/${f}" "${out}/${f}"
            done
            _d+="${out},"
        done
        _arms+="--arm ${arm}=${_d%,} "
    done
    # #params as the paper counts them: the self-supervised model (the same for every arm; the
    # projection of the loss is used in training only)
    if "${skip_pretrain}"; then
        _source="--init ${pretrain_init}"
    else
        _source="--ssl_config ${ssl_exp}/config.yaml --ssl_model_file ${ssl_exp}/${inference_model}"
    fi
    # shellcheck disable=SC2086
    _n=$(${python} -m espnet_s3net.bin.count_params ${_source})
    : > "${_params}"
    for arm in ${l2s_arms}; do echo "${arm} ${_n}" >> "${_params}"; done
    _configs="--config ${asr_config}"
    "${skip_pretrain}" || _configs+=" --config ${pretrain_config}"
    # the step-time cost of the loss with this starting model and teacher, measured in one process
    _step=${expdir}/l2s_step_distill_l2s.json _device=cpu
    [ "${ngpu}" -gt 0 ] && _device=cuda
    log "Stage 12: the step time with and without the loss (benchmark l2s_step, ${_device}) -> ${_step}"
    # shellcheck disable=SC2086
    ${python} -m espnet_s3net.bin.benchmark l2s_step ${xlsr_frontend_opts} --teacher "${l2s_teacher_type}" \
        --teacher_dir "${l2s_teacher}" --device "${_device}" > "${_step}.tmp" 2> "${expdir}/l2s_step_distill_l2s.log" \
        || { log "Error: benchmark l2s_step failed (see ${expdir}/l2s_step_distill_l2s.log)"; exit 1; }
    mv "${_step}.tmp" "${_step}"
    # shellcheck disable=SC2086
    ${python} -m espnet_s3net.bin.make_results ${_arms} --control ctc --langs "${l2s_low}" --high "" \
        --output "${_results}" --score "${score_dir}" --model_file "${inference_model}" \
        ${_configs} --params_file "${_params}" --distill_l2s_table --l2s_step_file "${_step}"
elif [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ] && { [ "${seed_list}" != _ ] || [ "${experiment}" = pathways ]; }; then
    # several seeds (or the pathways experiment): every model is an arm with one experiment per
    # seed; means ± sd over seeds, bootstrap CIs over test utterances, paired tests against the
    # control (xlsr_cont when fine-tuned, else xlsr), pictures and the mask-sharing heatmaps;
    # the pathways experiment adds its table (sparsity and overlap read from each arm's masks)
    # the pathways experiment shares the starting model (and the exp dir) with the main one:
    # its own RESULTS_pathways.md and params_pathways.txt
    _results=${expdir}/RESULTS${experiment:+_${experiment}}.md _params=${expdir}/params${experiment:+_${experiment}}.txt
    log "Stage 12: ${_results} (seeds ${seeds:-of the configs})"
    _arms=
    _control=xlsr
    for model in ${finetune_models}; do
        [ "${model}" = xlsr_cont ] && _control=xlsr_cont
        _d=
        for seed in ${seed_list}; do _d+="$(asr_exp_of "${model}" "${seed}"),"; done
        _arms+="--arm ${model}=${_d%,} "
    done
    _masks=
    for model in ${finetune_models}; do
        case "${model}" in s3net_*) _masks+="--masks ${model}=$(subnets_exp "${model#s3net_}")/masks.pt " ;; esac
    done
    _configs="--config ${asr_config}"
    [ "${experiment}" = pathways ] || _configs+=" --config ${s3net_train_config}"
    _table=
    [ "${experiment}" = pathways ] && _table=--pathways_table
    "${skip_pretrain}" || _configs+=" --config ${pretrain_config}"
    # #params as the paper counts them: each arm's self-supervised model (first seed's)
    _first_seed=${seed_list%% *}
    : > "${_params}"
    for model in ${finetune_models}; do
        if from_start "${model}" && "${skip_pretrain}"; then
            _source="--init ${pretrain_init}"
        else
            _src=$(ssl_exp_of "${model}" "${_first_seed}")
            _source="--ssl_config ${_src}/config.yaml --ssl_model_file ${_src}/${inference_model}"
        fi
        # shellcheck disable=SC2086
        _n=$(${python} -m espnet_s3net.bin.count_params ${_source})
        echo "${model} ${_n}" >> "${_params}"
    done
    # shellcheck disable=SC2086
    ${python} -m espnet_s3net.bin.make_results ${_arms} --control "${_control}" --langs "${langs}" \
        --output "${_results}" --score "${score_dir}" --model_file "${inference_model}" \
        ${high_langs:+--high "${high_langs}"} ${_masks} ${_configs} --params_file "${_params}" ${_table}
elif [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ]; then
    log "Stage 12: ${expdir}/RESULTS.md"
    # one row per model, named as in finetune_models: make_results names a row after its
    # directory, so it reads each experiment through a link of that name
    _rows=$(mktemp -d)
    _dirs=
    for model in ${finetune_models}; do
        out=$(asr_exp_of "${model}" _)
        if [ ! -d "${out}" ]; then
            rm -rf "${_rows}"
            log "Error: ${out} does not exist; run stages 9-11 for ${model} first"
            exit 1
        fi
        ln -s "$(cd "${out}" && pwd)" "${_rows}/${model}"
        _dirs+="${_rows}/${model} "
    done
    # shellcheck disable=SC2086
    ${python} -m espnet_s3net.bin.make_results --exp_dirs ${_dirs} --langs "${langs}" \
        --output "${expdir}/RESULTS.md" --score "${score_dir}" --model_file "${inference_model}" \
        ${high_langs:+--high "${high_langs}"} || { rm -rf "${_rows}"; exit 1; }
    rm -rf "${_rows}"
    {
        echo
        echo "Experiments (their ${inference_model}):"
        echo
        echo "| model | experiment |"
        echo "|---|---|"
        for model in ${finetune_models}; do echo "| ${model} | $(asr_exp_of "${model}" _) |"; done
    } >> "${expdir}/RESULTS.md"
fi

log "Finished stages ${stage}-${stop_stage}"
