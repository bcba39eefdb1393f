"""CTC greedy decoding of test sets with an ``s3net`` ASR model (recipe stage 10).

    python -m espnet_s3net.bin.asr_inference --asr_train_config exp/asr_xlsr/config.yaml \\
        --asr_model_file exp/asr_xlsr/valid.loss.ave.pth --data_root dump/raw \\
        --test_sets test_es test_fr --output_root exp/asr_xlsr

Each test set holds one language (its ``utt2lang``); before decoding it, that language's
sub-network mask is put on every masker of the model once. A language without a mask is an
error, or with ``--missing_lang_mask dense`` an explicit, logged fallback to the dense
model. Writes ``<output_root>/decode_<set>/text`` (hypothesis tokens) and ``rtf`` (decoding
seconds / audio seconds). All sets are decoded in one process (the model loads once).
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


def decode_set(model, data_dir: str, out_dir: str, device, batch_bins: int) -> float:
    """Decode one data dir into ``out_dir/text``; return the real-time factor."""
    import soundfile as sf

    wav = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    lengths = read_kaldi_map(os.path.join(data_dir, "utt2num_samples"))
    hyps, decode_s = {}, 0.0
    for utts in batches(wav, lengths, batch_bins):
        audio = [sf.read(wav[u], dtype="float32")[0] for u in utts]
        lens = torch.tensor([len(a) for a in audio])
        speech = torch.zeros(len(audio), int(lens.max()))
        for i, a in enumerate(audio):
            speech[i, : len(a)] = torch.from_numpy(a)
        start = time.perf_counter()
        with torch.no_grad():
            enc, enc_lens = model.encode(speech.to(device), lens.to(device))
            best = model.ctc.argmax(enc).cpu()
        decode_s += time.perf_counter() - start
        for i, utt in enumerate(utts):
            hyps[utt] = " ".join(model.token_list[t] for t in ctc_greedy(best[i], int(enc_lens[i])))
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
    parser.add_argument("--batch_bins", type=int, default=1600000, help="padded samples per batch")
    parser.add_argument("--ngpu", type=int, default=0)
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    from espnet_s3net.tasks.asr import S3NetASRTask
    from espnet_s3net.train.language_masker import find_maskers

    device = "cuda" if args.ngpu > 0 else "cpu"
    model, _ = S3NetASRTask.build_model_from_file(args.asr_train_config, args.asr_model_file, device)
    model.eval()
    maskers = find_maskers(model)
    try:
        for name in args.test_sets:
            data_dir = os.path.join(args.data_root, name)
            lang = set_language(maskers, data_dir, args.missing_lang_mask) if maskers else "(dense)"
            rtf = decode_set(model, data_dir, os.path.join(args.output_root, f"decode_{name}"), device, args.batch_bins)
            logging.info(f"decoded {name} ({lang}{', sub-network' if maskers else ''}): RTF {rtf:.4f}")
    except ValueError as exc:
        sys.exit(f"asr_inference: {exc}")
    finally:
        for masker in maskers:
            masker.deactivate()


if __name__ == "__main__":
    main()
