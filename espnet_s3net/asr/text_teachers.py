"""Text teachers of Distill-L2S: the hidden states of a frozen text encoder for sentences.

Two kinds, both read from a local directory the user gives (nothing is downloaded):

- ``huggingface`` (:class:`HFTextTeacher`): a Hugging Face text encoder directory
  (XLM-R / InfoXLM as in the paper: ``config.json``, weights, tokenizer files), loaded
  with ``transformers`` ``AutoModel`` / ``AutoTokenizer`` and ``local_files_only=True``.
- ``self_trained`` (:class:`SelfTrainedTextTeacher`): the small masked-LM encoder that
  ``python -m espnet_s3net.bin.train_text_teacher`` trains on the corpus's transcripts
  (``espnet_s3net.text.teacher_lm``): the offline default.

A teacher maps a batch of sentences to :class:`TeacherStates`: the states of one layer
at the sentence's *content* tokens (special tokens such as ``<s>``/``</s>`` are dropped,
their positions are not speech), left-aligned ``(B, N, E)``, with token counts ``(B,)``.
A sentence the tokenizer cannot encode (no content token, or only unknown tokens and
word-boundary pieces such as a lone ``▁``) gets 0 tokens and a reason in ``skipped``; the
loss leaves it out. Teachers run in eval mode
under ``torch.no_grad`` and their parameters never require gradients.

``layer`` indexes the encoder's hidden states as Hugging Face does: 0 is the embedding
output, ``i`` the output of layer ``i``, -1 the last layer.
"""

import dataclasses
import os
from typing import List, Optional, Sequence

import torch

#: the teacher types ``distill_l2s_conf: {teacher: ...}`` accepts
TEACHER_TYPES = ("self_trained", "huggingface")


@dataclasses.dataclass
class TeacherStates:
    """States ``(B, N, E)`` (zeros beyond ``lengths``, on the teacher's device), content-token
    counts ``(B,)`` (on the CPU), and per sentence None or the reason it was skipped."""

    states: torch.Tensor
    lengths: torch.Tensor
    skipped: List[Optional[str]]


def _select_layer(hidden_states: Sequence[torch.Tensor], layer: int) -> torch.Tensor:
    try:
        return hidden_states[layer]
    except IndexError:
        raise ValueError(f"teacher_layer {layer} is out of range: the teacher has {len(hidden_states)} hidden "
                         f"states (0 = embeddings ... {len(hidden_states) - 1} = last layer, or -1)") from None


def blank_pieces(pieces: Sequence[str]) -> torch.Tensor:
    """Bool per vocabulary entry: the piece is only a word boundary / whitespace (``▁``, ``Ġ``)."""
    return torch.tensor([not p.replace("\u2581", "").replace("\u0120", "").strip() for p in pieces], dtype=torch.bool)


def _content_states(states: torch.Tensor, content: torch.Tensor, unknown: torch.Tensor,
                    empty_text: Sequence[bool]) -> TeacherStates:
    """Left-align the ``content`` positions of ``states`` (B, N, E); skip sentences with no
    content or only ``unknown`` content tokens. ``content`` and ``unknown`` (B, N) are on the
    CPU, so the bookkeeping reads nothing back from the states' device."""
    counts = content.sum(dim=1)
    unknown_counts = (unknown & content).sum(dim=1)
    skipped: List[Optional[str]] = []
    for i, (count, unk) in enumerate(zip(counts.tolist(), unknown_counts.tolist())):
        if empty_text[i]:
            skipped.append("empty text")
        elif count == 0:
            skipped.append("the tokenizer gives no token")
        elif unk == count:
            skipped.append(f"all {count} tokens are unknown (or bare word boundaries) to the tokenizer")
        else:
            skipped.append(None)
    content = content & torch.tensor([s is None for s in skipped])[:, None]
    lengths = content.sum(dim=1)
    # stable sort puts content positions first, in order
    order = torch.sort((~content).to(torch.int8), dim=1, stable=True).indices
    width = int(lengths.max()) if len(skipped) else 0
    order = order[:, :width].to(states.device)
    packed = torch.gather(states, 1, order[:, :, None].expand(-1, -1, states.shape[-1]))
    valid = (torch.arange(width)[None, :] < lengths[:, None]).to(states.device)
    return TeacherStates(torch.where(valid[:, :, None], packed, 0.0), lengths, skipped)


class TextTeacher:
    """A frozen text encoder (module docstring); subclasses define ``_encode``."""

    hidden_size: int
    name: str

    def __init__(self):
        self.device = torch.device("cpu")

    def modules(self) -> List[torch.nn.Module]:
        raise NotImplementedError

    def to(self, device) -> "TextTeacher":
        device = torch.device(device)
        if device != self.device:
            for module in self.modules():
                module.to(device)
            self.device = device
        return self

    def __call__(self, sentences: Sequence[str]) -> TeacherStates:
        with torch.no_grad():
            return self._encode(list(sentences))

    def _encode(self, sentences: List[str]) -> TeacherStates:
        raise NotImplementedError

    @staticmethod
    def _freeze(module: torch.nn.Module) -> torch.nn.Module:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return module


class SelfTrainedTextTeacher(TextTeacher):
    """The masked-LM teacher of ``espnet_s3net.text.teacher_lm`` (``self_trained``)."""

    def __init__(self, path: str, layer: int = -1):
        super().__init__()
        from espnet_s3net.text.teacher_lm import load_teacher

        self.model, self.processor = load_teacher(path)
        self._freeze(self.model)
        self.layer, self.name = layer, f"self_trained:{path}"
        self.hidden_size = self.model.hidden_size
        _select_layer(range(self.model.cfg.layers + 1), layer)
        self.blank = blank_pieces([self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())])

    def modules(self) -> List[torch.nn.Module]:
        return [self.model]

    def _encode(self, sentences: List[str]) -> TeacherStates:
        from espnet_s3net.text.teacher_lm import EOS, UNK, encode_sentences, pad_ids

        rows = encode_sentences(self.processor, sentences, self.model.cfg.max_len)
        ids, lengths = pad_ids(rows)
        states = _select_layer(self.model(ids.to(self.device), lengths.to(self.device)), self.layer)
        positions = torch.arange(ids.shape[1])[None, :]
        content = (positions >= 1) & (positions < lengths[:, None]) & (ids != EOS)
        unknown = (ids == UNK) | self.blank[ids]
        return _content_states(states, content, unknown, [not s.strip() for s in sentences])


def _import_transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError("the huggingface text teacher needs the 'transformers' package: "
                          "pip install transformers (it is in espnet_s3net's 'test' extra)") from None
    return transformers


class HFTextTeacher(TextTeacher):
    """A Hugging Face text encoder directory (``huggingface``), loaded offline."""

    def __init__(self, path: str, layer: int = -1):
        super().__init__()
        transformers = _import_transformers()
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"{path} is not a Hugging Face model directory (no config.json)")
        try:
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: cannot read its Hugging Face config: {exc}") from exc
        if getattr(config, "is_encoder_decoder", False):
            raise ValueError(f"{path} holds an encoder-decoder model ({config.model_type}); give a text encoder "
                             "(XLM-R / InfoXLM style)")
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise ValueError(f"{path} is not a text encoder directory: no usable tokenizer "
                             f"({type(exc).__name__}: {exc})") from exc
        if len(self.tokenizer) <= len(set(self.tokenizer.all_special_ids)) + 1:
            raise ValueError(f"{path} is not a text encoder directory: its tokenizer has no vocabulary "
                             f"({len(self.tokenizer)} entries; tokenizer files missing?)")
        try:
            model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise ValueError(f"{path}: cannot load its model ({type(exc).__name__}: {exc})") from exc
        if getattr(model, "main_input_name", None) != "input_ids":
            raise ValueError(f"{path} is not a text encoder: its model {type(model).__name__} takes "
                             f"{getattr(model, 'main_input_name', '?')}, not token ids")
        self.model = self._freeze(model)
        self.layer, self.name = layer, f"huggingface:{path}"
        self.hidden_size = int(config.hidden_size)
        _select_layer(range(int(config.num_hidden_layers) + 1), layer)
        limit = getattr(config, "max_position_embeddings", 512)
        # 2 positions spare: RoBERTa-style models offset positions by the padding index
        self.max_length = min(int(self.tokenizer.model_max_length), int(limit) - 2)
        self.unk_id = self.tokenizer.unk_token_id
        pieces = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        self.blank = blank_pieces([p or "" for p in pieces])

    def modules(self) -> List[torch.nn.Module]:
        return [self.model]

    def _encode(self, sentences: List[str]) -> TeacherStates:
        enc = self.tokenizer(sentences, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt", return_special_tokens_mask=True, return_attention_mask=True)
        ids, attention = enc["input_ids"], enc["attention_mask"]
        out = self.model(input_ids=ids.to(self.device), attention_mask=attention.to(self.device),
                         output_hidden_states=True)
        states = _select_layer(out.hidden_states, self.layer)
        content = attention.bool() & ~enc["special_tokens_mask"].bool()
        unknown = self.blank[ids.clamp(max=len(self.blank) - 1)]
        if self.unk_id is not None:
            unknown |= ids == self.unk_id
        return _content_states(states, content, unknown, [not s.strip() for s in sentences])


def check_teacher_dir(teacher: str, path: Optional[str]) -> None:
    """Errors for an unknown ``teacher`` type or a missing ``path`` (no loading)."""
    if teacher not in TEACHER_TYPES:
        raise ValueError(f"Distill-L2S: unknown teacher type {teacher!r}; choose from {', '.join(TEACHER_TYPES)}")
    if not path:
        raise ValueError("Distill-L2S: teacher_dir is required (a directory of the text teacher)")
    if not os.path.isdir(path):
        hint = (" (train one with python -m espnet_s3net.bin.train_text_teacher)" if teacher == "self_trained"
                else " (a local Hugging Face model directory; nothing is downloaded)")
        raise ValueError(f"Distill-L2S: teacher_dir {path} does not exist{hint}")


def load_text_teacher(teacher: str, path: str, layer: int = -1) -> TextTeacher:
    """The teacher of type ``teacher`` (:data:`TEACHER_TYPES`) from the directory ``path``."""
    check_teacher_dir(teacher, path)
    if teacher == "self_trained":
        return SelfTrainedTextTeacher(path, layer)
    return HFTextTeacher(path, layer)


def teacher_hidden_size(teacher: str, path: str) -> Optional[int]:
    """The teacher's hidden size from its directory's config alone, or None when unreadable."""
    import json

    import yaml

    try:
        if teacher == "self_trained":
            with open(os.path.join(path, "teacher.yaml"), encoding="utf-8") as f:
                return int(yaml.safe_load(f)["config"]["dim"])
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            return int(json.load(f)["hidden_size"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
