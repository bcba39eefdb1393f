"""Export one language's sub-network: an ESPnet model and a Hugging Face Wav2Vec2ForCTC whose
weights are the masked weights (no mask file, no language input to decode).

    python -m espnet_s3net.bin.export_subnet --asr_train_config exp/asr_xlsr/config.yaml \\
        --asr_model_file exp/asr_xlsr/valid.loss.ave.pth --lang es --output_dir exp/asr_xlsr/export_es

Writes ``<output_dir>/espnet/{config.yaml,model.pth}``, ``espnet.zip`` (ESPnet's pack of
them), ``hf/`` (``Wav2Vec2ForCTC.from_pretrained`` and ``Wav2Vec2Processor.from_pretrained``
read it) and ``sizes.json`` (bytes dense, masked and sparse: CSR, bitmask + values).
``--format espnet`` exports models HF cannot hold (weighted layer sum, an encoder, feature
normalisation, BPE tokens); ``--mask_file`` replaces the config's mask file (e.g. moved).
"""

import argparse
import sys

from espnet_s3net.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", required=True)
    parser.add_argument("--asr_model_file", required=True)
    parser.add_argument("--lang", required=True, help="the language whose sub-network is exported")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--mask_file", help="mask file instead of the config's frontend_conf mask_file")
    parser.add_argument("--format", default="espnet,hf", help="espnet, hf or espnet,hf")
    return parser


def main(argv=None) -> None:
    setup_logging()
    args = get_parser().parse_args(argv)
    from espnet_s3net.asr.export import export_subnet

    try:
        export_subnet(args.asr_train_config, args.asr_model_file, args.lang, args.output_dir, args.mask_file,
                      args.format.split(","))
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"export_subnet: {exc}")


if __name__ == "__main__":
    main()
