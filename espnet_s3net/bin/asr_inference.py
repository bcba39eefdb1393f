"""Decoding of test sets with an ``s3net`` ASR model (recipe stage 10).

    python -m espnet_s3net.bin.asr_inference --asr_train_config exp/asr_xlsr/config.yaml \\
        --asr_model_file exp/asr_xlsr/valid.loss.ave.pth --data_root dump/raw \\
        --test_sets test_es test_fr --output_root exp/asr_xlsr

Each test set holds one language (its ``utt2lang``); before decoding it, that language's
sub-network mask is put on every masker of the model once. A language without a mask is an
error, or with ``--missing_lang_mask dense`` an explicit, logged fallback to the dense
model. Writes ``<output_root>/decode_<set>/text`` (hypothesis tokens) and ``rtf`` (decoding
seconds / audio seconds). All sets are decoded in one process (the model loads once).

``--beam_size 1`` (default) is batched CTC greedy decoding. A larger beam runs ESPnet's
beam search (``espnet2.bin.asr_inference.Speech2Text``, one utterance at a time): CTC
prefix scores only for a CTC model, joint CTC/attention with ``--ctc_weight`` for a
model with a decoder.
"""

import argparse
import logging
import os
import sys
import time

import torch

from espnet_s3net.data.kaldi_dir import read_kaldi_map, write_kaldi_map
from espnet_s3net.log import setup_logging


def ctc_greedy(token_ids: torch.Tensor, length: int, blank: int = 0):
    """Collapse repeats and drop blanks of one argmax path (T,) -> token id list."""
    path = token_ids[:length].tolist()
    out, previous = [], None
    for token in path:
        if token != previous and token != blank:
            out.append(token)
        previous = token
    return out


def batches(wav: dict, lengths: dict, batch_bins: int):
    """Utterance id lists sorted by length, at most ``batch_bins`` padded samples each."""
    current, longest = [], 0
    for utt in sorted(wav, key=lambda u: -int(lengths[u])):
        n = int(lengths[utt])
        if current and max(longest, n) * (len(current) + 1) > batch_bins:
            yield current
            current, longest = [], 0
        current.append(utt)
        longest = max(longest, n)
    if current:
        yield current


class GreedyCTCDecoder:
    """Batched CTC greedy decoding: a list of (S,) waveforms -> a list of token lists."""

    def __init__(self, model, device):
        self.model, self.device = model, device

    @torch.no_grad()
    def __call__(self, audio):
        lens = torch.tensor([len(a) for a in audio])
        speech = torch.zeros(len(audio), int(lens.max()))
        for i, a in enumerate(audio):
            speech[i, : len(a)] = torch.from_numpy(a)
        enc, enc_lens = self.model.encode(speech.to(self.device), lens.to(self.device))
        best = self.model.ctc.argmax(enc).cpu()
        return [[self.model.token_list[t] for t in ctc_greedy(best[i], int(enc_lens[i]))]
                for i in range(len(audio))]


class BeamSearchDecoder:
    """ESPnet's beam search (``Speech2Text``), one utterance at a time -> best token lists."""

    def __init__(self, speech2text):
        self.speech2text = speech2text

    @torch.no_grad()
    def __call__(self, audio):
        return [self.speech2text(torch.from_numpy(a))[0][1] for a in audio]


def decode_set(decode, data_dir: str, out_dir: str, batch_bins: int) -> float:
    """Decode one data dir into ``out_dir/text`` with ``decode`` (waveforms -> token lists);
    return the real-time factor."""
    import soundfile as sf

    wav = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    lengths = read_kaldi_map(os.path.join(data_dir, "utt2num_samples"))
    hyps, decode_s = {}, 0.0
    for utts in batches(wav, lengths, batch_bins):
        audio = [sf.read(wav[u], dtype="float32")[0] for u in utts]
        start = time.perf_counter()
        tokens = decode(audio)
        decode_s += time.perf_counter() - start
        for utt, hyp in zip(utts, tokens):
            hyps[utt] = " ".join(hyp)
    os.makedirs(out_dir, exist_ok=True)
    write_kaldi_map(os.path.join(out_dir, "text"), hyps)
    audio_s = sum(int(n) for n in lengths.values()) / 16000
    rtf = decode_s / audio_s
    with open(os.path.join(out_dir, "rtf"), "w") as f:
        f.write(f"{rtf:.6f}\n")
    return rtf


def set_language(maskers, data_dir: str, missing: str) -> str:
    langs = set(read_kaldi_map(os.path.join(data_dir, "utt2lang")).values())
    if len(langs) != 1:
        raise ValueError(f"{data_dir} holds languages {sorted(langs)}; decode one language per set")
    lang = langs.pop()
    for masker in maskers:
        masker.missing = missing
        masker.activate(lang)
    return lang


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", required=True)
    parser.add_argument("--asr_model_file", required=True)
    parser.add_argument("--data_root", required=True, help="dump dir holding the test sets")
    parser.add_argument("--test_sets", nargs="+", required=True)
    parser.add_argument("--output_root", required=True)
    parser.add_argument("--missing_lang_mask", default="error", choices=["error", "dense"])
    parser.add_argument("--batch_bins", type=int, default=1600000, help="padded samples per batch (greedy)")
    parser.add_argument("--beam_size", type=int, default=1, help="1: CTC greedy; >1: ESPnet beam search")
    parser.add_argument("--ctc_weight", type=float, default=0.3,
                        help="beam search: CTC weight (forced to 1.0 for a model without a decoder)")
    parser.add_argument("--penalty", type=float, default=0.0, help="beam search: insertion bonus")
    parser.add_argument("--maxlenratio", type=float, default=0.0,
                        help="beam search: max output length / encoder frames (0: no limit)")
    parser.add_argument("--ngpu", type=int, default=0)
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    from espnet_s3net.tasks.asr import S3NetASRTask
    from espnet_s3net.train.language_masker import find_maskers

    if args.beam_size < 1:
        sys.exit("asr_inference: --beam_size must be >= 1")
    device = "cuda" if args.ngpu > 0 else "cpu"
    if args.beam_size == 1:
        model, _ = S3NetASRTask.build_model_from_file(args.asr_train_config, args.asr_model_file, device)
        decode = GreedyCTCDecoder(model.eval(), device)
        method = "CTC greedy"
    else:
        import yaml
        from espnet2.bin.asr_inference import Speech2Text

        with open(args.asr_train_config) as f:
            train_ctc_weight = (yaml.safe_load(f).get("model_conf") or {}).get("ctc_weight")
        # a model trained with CTC only has no decoder (ESPnet drops it)
        ctc_weight = 1.0 if train_ctc_weight == 1.0 else args.ctc_weight
        speech2text = Speech2Text(
            asr_train_config=args.asr_train_config, asr_model_file=args.asr_model_file, device=device,
            beam_size=args.beam_size, ctc_weight=ctc_weight, penalty=args.penalty,
            maxlenratio=args.maxlenratio, nbest=1,
        )
        model = speech2text.asr_model
        decode = BeamSearchDecoder(speech2text)
        method = f"beam search (beam {args.beam_size}, CTC weight {ctc_weight})"
    maskers = find_maskers(model)
    try:
        for name in args.test_sets:
            data_dir = os.path.join(args.data_root, name)
            lang = set_language(maskers, data_dir, args.missing_lang_mask) if maskers else "(dense)"
            rtf = decode_set(decode, data_dir, os.path.join(args.output_root, f"decode_{name}"), args.batch_bins)
            logging.info(f"decoded {name} ({lang}{', sub-network' if maskers else ''}) by {method}: RTF {rtf:.4f}")
    except ValueError as exc:
        sys.exit(f"asr_inference: {exc}")
    finally:
        for masker in maskers:
            masker.deactivate()


if __name__ == "__main__":
    main()
