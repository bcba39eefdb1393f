"""Real-time factor of CTC greedy decoding on CPU (decoding seconds / audio seconds).

Builds an ASR model with the ``s3net`` frontend (``--xlsr_config``, randomly initialised;
speed does not depend on the weights) and a CTC head through our ASR task, writes
``--utts`` utterances of espeak-ng speech, and times ``espnet_s3net.asr.inference.decode_set`` (the
recipe's decoder: batching, frontend, CTC argmax and collapse) on ``--threads`` threads.
"""

import argparse
import os
import tempfile
from typing import List

import numpy as np
import torch


def main(argv: List[str]) -> dict:
    parser = argparse.ArgumentParser(prog="benchmark decode_rtf", description=__doc__)
    parser.add_argument("--xlsr_config", default="xlsr_small")
    parser.add_argument("--utts", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import soundfile as sf
    import soxr

    from espnet_s3net.asr.inference import GreedyCTCDecoder, decode_set
    from espnet_s3net.data.kaldi_dir import write_kaldi_map
    from espnet_s3net.synth.espeak import get_engine
    from espnet_s3net.tasks.asr import S3NetASRTask

    with tempfile.TemporaryDirectory(prefix="decode_rtf_") as tmp:
        tokens = os.path.join(tmp, "tokens.txt")
        with open(tokens, "w") as f:
            f.write("\n".join(["<blank>", "<unk>", *[f"p{i}" for i in range(60)], "<sos/eos>"]) + "\n")
        cli = ["--token_list", tokens, "--token_type", "word", "--frontend", "s3net",
               "--frontend_conf", f"xlsr_conf={{name: {args.xlsr_config}}}", "--encoder", "passthrough",
               "--normalize", "none", "--model_conf", "ctc_weight=1.0", "--decoder", "none"]
        model = S3NetASRTask.build_model(S3NetASRTask.get_parser().parse_args(cli)).eval()
        engine = get_engine()
        voice = engine.voice_name("es")
        wav, lengths = {}, {}
        for i in range(args.utts):
            pcm = engine.synthesize("la casa grande del mercado está cerca del parque", voice, seed=i)
            audio = soxr.resample(pcm.astype(np.float32) / 32768.0, engine.sample_rate, 16000)
            path = os.path.join(tmp, f"u{i}.flac")
            sf.write(path, audio, 16000)
            wav[f"u{i}"], lengths[f"u{i}"] = path, str(len(audio))
        data = os.path.join(tmp, "test")
        os.makedirs(data)
        write_kaldi_map(os.path.join(data, "wav.scp"), wav)
        write_kaldi_map(os.path.join(data, "utt2num_samples"), lengths)
        decode = GreedyCTCDecoder(model, "cpu")
        decode_set(decode, data, os.path.join(tmp, "out"), 1600000)  # warm-up
        rtf = decode_set(decode, data, os.path.join(tmp, "out"), 1600000)
    audio_s = sum(int(n) for n in lengths.values()) / 16000
    return {"rtf": rtf, "audio_s": audio_s, "xlsr_config": args.xlsr_config, "threads": args.threads,
            "params": sum(p.numel() for p in model.parameters())}
