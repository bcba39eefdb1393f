"""A small multilingual masked-LM text encoder, trained here on the corpus's transcripts.

It is the offline default *text teacher* of Distill-L2S (``espnet_s3net.asr.distill_l2s_model``):
the paper distils InfoXLM, which a fresh machine without network does not have, so the
recipe trains this stand-in itself (``python -m espnet_s3net.bin.train_text_teacher``).

- Tokens: one sentencepiece unigram model over the sentences of all languages
  (``character_coverage`` 1.0, so every character of the training text has a piece);
  ids ``0 <pad>``, ``1 <unk>``, ``2 <s>``, ``3 </s>``, ``4 <mask>``. A sentence is
  encoded as ``<s> pieces </s>``, cut to ``max_len`` positions.
- Model (:class:`MaskedTextEncoder`): token + learned position embeddings, ``layers``
  pre-LayerNorm transformer encoder layers (``dim``, ``heads``, ``ffn_dim``, GELU), a final
  LayerNorm, and an output layer tied to the token embeddings. Hidden states ``(B, N, dim)``:
  entry 0 is the embedding output, entry ``i`` the output of layer ``i``; the last entry
  has the final LayerNorm applied.
- Training (:func:`train_teacher`): BERT-style masked LM. 15 % of the content pieces of a
  sentence (at least one) are chosen; of those 80 % become ``<mask>``, 10 % a random
  piece, 10 % stay; cross-entropy on the chosen positions. AdamW with linear warm-up and
  linear decay. Sentences are drawn per step from the text files with file probability
  ``∝ n_file^alpha`` (one file per language: ``alpha < 1`` up-samples small languages).

The saved directory (:func:`save_teacher` / :func:`load_teacher`) holds ``teacher.yaml``
(architecture and training record), ``spm.model`` and ``model.pth``.
"""

import dataclasses
import logging
import math
import os
import random
from typing import Dict, List, Optional, Sequence, Tuple

import torch

PAD, UNK, BOS, EOS, MASK = 0, 1, 2, 3, 4
TEACHER_YAML = "teacher.yaml"
SPM_MODEL = "spm.model"
WEIGHTS = "model.pth"
#: the ``type`` recorded in ``teacher.yaml``
TYPE_NAME = "espnet_s3net_masked_lm"


@dataclasses.dataclass
class TeacherLMConfig:
    """Architecture of :class:`MaskedTextEncoder` (``vocab_size`` from the sentencepiece model)."""

    vocab_size: int
    dim: int = 128
    layers: int = 2
    heads: int = 2
    ffn_dim: int = 512
    max_len: int = 128
    dropout: float = 0.1


class MaskedTextEncoder(torch.nn.Module):
    """Transformer text encoder with a tied masked-LM output layer (module docstring)."""

    def __init__(self, cfg: TeacherLMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = torch.nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=PAD)
        self.position = torch.nn.Embedding(cfg.max_len, cfg.dim)
        self.dropout = torch.nn.Dropout(cfg.dropout)
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(cfg.dim, cfg.heads, cfg.ffn_dim, cfg.dropout, activation="gelu",
                                             batch_first=True, norm_first=True)
            for _ in range(cfg.layers))
        self.norm = torch.nn.LayerNorm(cfg.dim)
        self.output_bias = torch.nn.Parameter(torch.zeros(cfg.vocab_size))
        # small embeddings (BERT's 0.02): the tied output layer starts near uniform
        torch.nn.init.normal_(self.embed.weight, std=0.02)
        torch.nn.init.normal_(self.position.weight, std=0.02)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()

    @property
    def hidden_size(self) -> int:
        return self.cfg.dim

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
        """Hidden states (``layers + 1`` tensors ``(B, N, dim)``) of ids ``(B, N)`` with
        ``lengths`` ``(B,)`` valid positions each."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        pad = positions[None, :] >= lengths.to(ids.device)[:, None]
        x = self.dropout(self.embed(ids) + self.position(positions)[None])
        states = [x]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
            states.append(x)
        states[-1] = self.norm(x)
        return states

    def logits(self, last: torch.Tensor) -> torch.Tensor:
        """Masked-LM logits ``(..., vocab)`` of final hidden states ``(..., dim)``."""
        return last @ self.embed.weight.T + self.output_bias


def _spm_processor(path: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=path)


def encode_sentences(processor, sentences: Sequence[str], max_len: int) -> List[List[int]]:
    """``<s> pieces </s>`` ids of each sentence, pieces cut to ``max_len - 2``."""
    return [[BOS, *ids[:max_len - 2], EOS] for ids in processor.encode(list(sentences), num_threads=1)]


def pad_ids(rows: Sequence[Sequence[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, N) padded with ``<pad>``, lengths (B,))."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    ids = torch.full((len(rows), int(lengths.max()) if len(rows) else 0), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return ids, lengths


def mask_for_mlm(ids: torch.Tensor, lengths: torch.Tensor, vocab_size: int, generator: torch.Generator,
                 prob: float = 0.15) -> Tuple[torch.Tensor, torch.Tensor]:
    """(corrupted ids, targets with -100 where no loss) for the masked LM (module docstring)."""
    positions = torch.arange(ids.shape[1])[None, :]
    content = (positions >= 1) & (positions < lengths[:, None] - 1)  # not <s>, </s>, <pad>
    score = torch.rand(ids.shape, generator=generator).masked_fill(~content, 2.0)
    chosen = (score < prob) & content
    # at least one chosen piece per sentence that has content
    first = score.argmin(dim=1)
    has_content = content.any(dim=1)
    chosen[torch.arange(ids.shape[0])[has_content], first[has_content]] = True
    targets = torch.where(chosen, ids, torch.full_like(ids, -100))
    action = torch.rand(ids.shape, generator=generator)
    corrupted = ids.clone()
    corrupted[chosen & (action < 0.8)] = MASK
    random_ids = torch.randint(MASK + 1, max(vocab_size, MASK + 2), ids.shape, generator=generator)
    swap = chosen & (action >= 0.8) & (action < 0.9)
    corrupted[swap] = random_ids[swap]
    return corrupted, targets


def read_sentences(path: str, text_format: str = "kaldi") -> List[str]:
    """Non-empty sentences of a text file: ``kaldi`` (``<utt> <sentence>`` per line, as a
    data dir's ``text``) or ``plain`` (one sentence per line)."""
    if text_format not in ("kaldi", "plain"):
        raise ValueError(f"text_format must be kaldi or plain, got {text_format!r}")
    sentences = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if text_format == "kaldi":
                line = line.partition(" ")[2].strip()
            if line:
                sentences.append(line)
    return sentences


def train_sentencepiece(sentences: Sequence[str], prefix: str, vocab_size: int) -> None:
    """``prefix.model``: a unigram model over ``sentences`` with the ids of the module docstring."""
    import sentencepiece as spm

    # every character needs a piece (character_coverage 1.0): many scripts (zh) have more
    # characters than a small vocabulary
    needed = len({c for s in sentences for c in s if not c.isspace()}) + MASK + 2
    if vocab_size < needed:
        logging.warning(f"text teacher: vocab_size {vocab_size} raised to {needed}, the number of distinct "
                        "characters of the text plus the special pieces")
        vocab_size = needed
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, user_defined_symbols=["<mask>"],
        hard_vocab_limit=False, minloglevel=2)


def save_teacher(model: MaskedTextEncoder, spm_model_bytes: bytes, output_dir: str, record: Dict) -> None:
    """Write ``output_dir`` (``teacher.yaml``, ``spm.model``, ``model.pth``)."""
    import yaml

    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, SPM_MODEL), "wb") as f:
        f.write(spm_model_bytes)
    torch.save(model.state_dict(), os.path.join(output_dir, WEIGHTS))
    meta = {"type": TYPE_NAME, "format_version": 1, "config": dataclasses.asdict(model.cfg), **record}
    with open(os.path.join(output_dir, TEACHER_YAML), "w", encoding="utf-8") as f:
        yaml.safe_dump(meta, f, sort_keys=False, allow_unicode=True)


def is_teacher_dir(path: str) -> bool:
    """Whether ``path`` holds a saved teacher of this module (its ``teacher.yaml`` names it)."""
    import yaml

    meta_path = os.path.join(path, TEACHER_YAML)
    if not os.path.isfile(meta_path):
        return False
    with open(meta_path, encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    return isinstance(meta, dict) and meta.get("type") == TYPE_NAME


def load_teacher(path: str):
    """(model in eval mode, sentencepiece processor) of a directory :func:`save_teacher` wrote;
    a directory that is not one is a ``ValueError`` naming what is missing."""
    import yaml

    if not os.path.isdir(path):
        raise ValueError(f"text teacher directory {path} does not exist")
    missing = [name for name in (TEACHER_YAML, SPM_MODEL, WEIGHTS) if not os.path.isfile(os.path.join(path, name))]
    if missing or not is_teacher_dir(path):
        raise ValueError(f"{path} is not a text teacher trained by espnet_s3net.bin.train_text_teacher "
                         f"(missing or foreign: {', '.join(missing) or TEACHER_YAML})")
    with open(os.path.join(path, TEACHER_YAML), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    model = MaskedTextEncoder(TeacherLMConfig(**meta["config"]))
    model.load_state_dict(torch.load(os.path.join(path, WEIGHTS), map_location="cpu", weights_only=True))
    return model.eval(), _spm_processor(os.path.join(path, SPM_MODEL))


def train_teacher(
    text_files: Sequence[str],
    output_dir: str,
    text_format: str = "kaldi",
    vocab_size: int = 2000,
    dim: int = 128,
    layers: int = 2,
    heads: int = 2,
    ffn_dim: int = 512,
    max_len: int = 128,
    dropout: float = 0.1,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-3,
    warmup_steps: Optional[int] = None,
    alpha: float = 1.0,
    seed: int = 0,
    log_interval: int = 100,
) -> Dict:
    """Train the masked-LM teacher on ``text_files`` (one per language) and save it to
    ``output_dir``; returns the training record written into ``teacher.yaml``."""
    if not text_files:
        raise ValueError("no text files given")
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be >= 1")
    per_file = []
    for path in text_files:
        sentences = read_sentences(path, text_format)
        if not sentences:
            logging.warning(f"text teacher: {path} has no sentences; not used")
            continue
        per_file.append((path, sentences))
    if not per_file:
        raise ValueError(f"none of {', '.join(text_files)} has a sentence")
    everything = [s for _, sentences in per_file for s in sentences]
    random.Random(seed).shuffle(everything)

    import tempfile

    with tempfile.TemporaryDirectory(prefix="text_teacher_spm_") as tmp:
        train_sentencepiece(everything, os.path.join(tmp, "spm"), vocab_size)
        with open(os.path.join(tmp, "spm.model"), "rb") as f:
            spm_bytes = f.read()
        processor = _spm_processor(os.path.join(tmp, "spm.model"))
    encoded = [encode_sentences(processor, sentences, max_len) for _, sentences in per_file]
    weights = [len(rows) ** alpha for rows in encoded]

    torch.manual_seed(seed)
    cfg = TeacherLMConfig(vocab_size=processor.get_piece_size(), dim=dim, layers=layers, heads=heads,
                          ffn_dim=ffn_dim, max_len=max_len, dropout=dropout)
    model = MaskedTextEncoder(cfg).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10 if warmup_steps is None else warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    recent: List[float] = []
    for step in range(1, steps + 1):
        files = rng.choices(range(len(encoded)), weights=weights, k=batch_size)
        ids, lengths = pad_ids([rng.choice(encoded[i]) for i in files])
        corrupted, targets = mask_for_mlm(ids, lengths, cfg.vocab_size, generator)
        logits = model.logits(model(corrupted, lengths)[-1])
        loss = torch.nn.functional.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1),
                                                 ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        recent = (recent + [loss.item()])[-50:]
        if step % log_interval == 0 or step == steps:
            logging.info(f"text teacher: step {step}/{steps}, masked-LM loss {sum(recent) / len(recent):.3f}")
    record = {"steps": steps, "batch_size": batch_size, "lr": lr, "alpha": alpha, "seed": seed,
              "final_mlm_loss": round(sum(recent) / len(recent), 4),
              "uniform_loss": round(math.log(cfg.vocab_size), 4),
              "sentences": {os.path.abspath(path): len(s) for path, s in per_file}}
    save_teacher(model.eval(), spm_bytes, output_dir, record)
    logging.info(f"text teacher: saved to {output_dir} (final masked-LM loss {record['final_mlm_loss']}, "
                 f"uniform {record['uniform_loss']})")
    return record
