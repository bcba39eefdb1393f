"""A tiny self-trained text teacher and a tiny random Hugging Face XLM-R directory (standing
in for XLM-R / InfoXLM), shared by the Distill-L2S tests."""

from pathlib import Path

import torch

SENTENCES = {
    "es": ["la casa grande del mercado", "el río corre hacia el mar", "la casa del parque está cerca"],
    "ky": ["бир эки үч төрт беш", "китеп мектеп жол үй суу", "бир китеп жана эки үй"],
}
#: the words the tiny XLM-R tokenizer knows
XLMR_WORDS = "la casa grande del mercado".split()


def write_texts(d: Path):
    """One Kaldi-style text file per language of :data:`SENTENCES`; their paths."""
    paths = []
    for lang, sentences in SENTENCES.items():
        path = d / f"text_{lang}"
        path.write_text("".join(f"{lang}-{i} {s}\n" for i, s in enumerate(sentences)), encoding="utf-8")
        paths.append(str(path))
    return paths


def train_tiny(tmp_path: Path, name: str = "teacher", steps: int = 3, texts=None) -> Path:
    """A tiny teacher (hidden 16) trained for a few steps by the entry point; its directory."""
    from espnet_s3net.bin.train_text_teacher import main

    out = tmp_path / name
    main(["--text", *(texts or write_texts(tmp_path)), "--output_dir", str(out), "--vocab_size", "40", "--dim",
          "16", "--layers", "1", "--heads", "2", "--ffn_dim", "32", "--steps", str(steps), "--batch_size", "4"])
    return out


def save_tiny_xlmr(d: Path) -> Path:
    """A randomly initialised 2-layer XLM-R (hidden 16) with a word-level fast tokenizer
    (``<s> … </s>`` around the words, ``<unk>`` for others), saved as a local HF directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "\u2581": 5}
    vocab.update({w: i + len(vocab) for i, w in enumerate(XLMR_WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=24, pad_token_id=1)
    XLMRobertaModel(config).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d
