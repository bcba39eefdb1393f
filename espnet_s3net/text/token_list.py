"""ESPnet token lists for phones, characters and a multilingual BPE model.

Tokenisation is ESPnet's own (the tokenizer classes ``build_tokenizer`` picks; imported
directly, which avoids loading ESPnet's English g2p), so the list holds
exactly the tokens the ASR task will see: phones use ESPnet's ``word`` tokenizer
(space-separated phones), characters use ``char`` (a blank becomes ``<space>``),
BPE uses ``bpe`` with a sentencepiece model trained here on all languages at once.

List format: ``<blank>``, ``<unk>``, tokens by descending frequency (ties in
code-point order), ``<sos/eos>`` last; one token per line in ``tokens.txt``.
"""

import logging
import os
from collections import Counter
from typing import Iterator, List, Optional

#: ESPnet token type used to tokenise each of our token types
ESPNET_TOKEN_TYPE = {"phn": "word", "char": "char", "bpe": "bpe"}


def _tokenizer(token_type: str, bpemodel: Optional[str]):
    """The ESPnet tokenizer ``build_tokenizer(ESPNET_TOKEN_TYPE[token_type])`` returns."""
    if token_type == "phn":
        from espnet2.text.word_tokenizer import WordTokenizer

        return WordTokenizer()
    if token_type == "char":
        from espnet2.text.char_tokenizer import CharTokenizer

        return CharTokenizer()
    from espnet2.text.sentencepiece_tokenizer import SentencepiecesTokenizer

    return SentencepiecesTokenizer(bpemodel)


def read_text_values(text_file: str) -> Iterator[str]:
    """The transcripts of a Kaldi ``text``-style file (``<utt> <transcript>``)."""
    with open(text_file, encoding="utf-8") as f:
        for line in f:
            _, _, value = line.rstrip("\n").partition(" ")
            yield value


def train_bpe(text_file: str, output_dir: str, vocab_size: int, model_type: str = "unigram") -> str:
    """Train one sentencepiece model on every transcript of ``text_file``.

    ``hard_vocab_limit`` is off, so a corpus too small for ``vocab_size`` gets a
    smaller vocabulary instead of an error (logged). Returns the model path.
    """
    import sentencepiece as spm

    train_txt = os.path.join(output_dir, "train.txt")
    with open(train_txt, "w", encoding="utf-8") as f:
        for value in read_text_values(text_file):
            f.write(value + "\n")
    prefix = os.path.join(output_dir, "bpe")
    spm.SentencePieceTrainer.train(
        input=train_txt, model_prefix=prefix, vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, input_sentence_size=10_000_000, shuffle_input_sentence=True,
        hard_vocab_limit=False, minloglevel=2,
    )
    size = spm.SentencePieceProcessor(model_file=prefix + ".model").get_piece_size()
    if size < vocab_size:
        logging.warning(f"BPE vocabulary is {size} pieces, fewer than the {vocab_size} asked (small corpus)")
    return prefix + ".model"


def build_token_list(
    token_type: str,
    text_file: str,
    output_dir: str,
    bpe_vocab_size: Optional[int] = None,
    bpe_model_type: str = "unigram",
) -> List[str]:
    """Write ``<output_dir>/tokens.txt`` (and ``bpe.model`` for bpe); return the list."""
    if token_type not in ESPNET_TOKEN_TYPE:
        raise ValueError(f"unknown token type {token_type!r}; choose from {sorted(ESPNET_TOKEN_TYPE)}")
    if not os.path.isfile(text_file):
        raise FileNotFoundError(f"transcript file {text_file} does not exist")
    os.makedirs(output_dir, exist_ok=True)
    bpemodel = None
    if token_type == "bpe":
        if not bpe_vocab_size:
            raise ValueError("token type bpe needs --bpe_vocab_size")
        bpemodel = train_bpe(text_file, output_dir, bpe_vocab_size, bpe_model_type)
    tokenizer = _tokenizer(token_type, bpemodel)
    counts: Counter = Counter()
    for value in read_text_values(text_file):
        counts.update(tokenizer.text2tokens(value))
    if not counts:
        raise ValueError(f"{text_file} holds no tokens")
    specials = ("<blank>", "<unk>", "<sos/eos>")
    tokens = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if t not in specials]
    token_list = ["<blank>", "<unk>", *tokens, "<sos/eos>"]
    tmp = os.path.join(output_dir, "tokens.txt.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(token_list) + "\n")
    os.replace(tmp, os.path.join(output_dir, "tokens.txt"))
    logging.info(f"{token_type} token list: {len(token_list)} entries -> {output_dir}/tokens.txt")
    return token_list
