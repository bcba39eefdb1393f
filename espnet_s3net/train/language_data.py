"""The language of an utterance as ordinary ESPnet data.

Data preparation writes ``utt2lang`` (``<utt> <language id>``) once per data directory;
it is given to any ESPnet entry point as one more data input::

    --train_data_path_and_name_and_type dump/raw/train/utt2lang,lang,text

ESPnet reads it as a string; :class:`LanguagePreprocessor` turns the string into an
int64 array of its Unicode code points, so that ESPnet's dataset and collate function
carry it like any token sequence (padded with -1 into ``lang`` (B, L) and
``lang_lengths`` (B,)). Nothing else needs a table of languages: language ids are
whatever strings the data uses (Common Voice locales, ISO 639-3 codes, ...).
:func:`pop_batch_language` takes it out of a batch again (the models never see it), and
:func:`language_followers` lists what of a model takes it: the language maskers and every
:class:`LanguageConditioned` module (e.g. language adapters).
"""

import abc
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

#: the data name of the language input (``<path>,lang,text``)
LANG = "lang"


def language_input(data_path_and_name_and_type: Sequence) -> Optional[str]:
    """Path of the ``lang`` data input among ``(path, name, type)`` triples, or None."""
    for path, name, _ in data_path_and_name_and_type:
        if name == LANG:
            return path
    return None


def encode_language(lang: str) -> np.ndarray:
    """``lang`` as an int64 array of code points (L,)."""
    return np.array([ord(c) for c in lang], dtype=np.int64)


def decode_language(codes) -> str:
    """Inverse of :func:`encode_language` for a 1-D array/tensor; -1 padding is dropped."""
    values = codes.tolist() if hasattr(codes, "tolist") else list(codes)
    return "".join(chr(c) for c in values if c >= 0)


class LanguagePreprocessor:
    """Wraps a task's preprocess function: the ``lang`` string of an utterance becomes
    its code points (:func:`encode_language`); an empty language is an error naming the
    utterance. ``inner`` (ESPnet's preprocessor, or None) handles everything else."""

    def __init__(self, inner: Optional[Callable[[str, Dict], Dict]]):
        self.inner = inner

    def __call__(self, uid: str, data: Dict) -> Dict:
        if LANG in data and isinstance(data[LANG], str):
            lang = data[LANG].strip()
            if not lang:
                raise ValueError(f"utterance {uid} has an empty language in its utt2lang input")
            data = {**data, LANG: encode_language(lang)}
        return self.inner(uid, data) if self.inner is not None else data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


def pop_languages(batch: Dict[str, torch.Tensor]) -> Optional[List[str]]:
    """Remove ``lang``/``lang_lengths`` from an ESPnet batch; the language of each of its
    utterances (None when the batch has no language input)."""
    codes = batch.pop(LANG, None)
    batch.pop(f"{LANG}_lengths", None)
    return None if codes is None else [decode_language(row) for row in codes]


def pop_batch_language(batch: Dict[str, torch.Tensor], utt_ids: Sequence[str]) -> Optional[str]:
    """Remove ``lang``/``lang_lengths`` from an ESPnet batch and return the batch's one
    language (None when the batch has no language input). A batch mixing languages is
    an error naming its utterances and languages."""
    rows = pop_languages(batch)
    if rows is None:
        return None
    langs = set(rows)
    if len(langs) != 1:
        raise ValueError(f"a batch mixes languages {', '.join(sorted(langs))} (utterances "
                         f"{', '.join(list(utt_ids)[:4])}, ...): use --batch_type lang_numel, or "
                         "decode one language per batch")
    return langs.pop()


class LanguageConditioned(abc.ABC):
    """A module with language-specific behaviour: ``activate(lang)`` before a batch of
    ``lang`` (a forward with no active language is an error), ``deactivate()`` after."""

    @abc.abstractmethod
    def activate(self, lang: str) -> None:
        """Behave as for ``lang`` from the next forward on."""

    @abc.abstractmethod
    def deactivate(self) -> None:
        """No active language."""


def language_followers(model: torch.nn.Module) -> List:
    """What of ``model`` follows the batch's language: its language maskers and its
    :class:`LanguageConditioned` modules (each has ``activate(lang)`` / ``deactivate()``)."""
    from espnet_s3net.masks.language_masker import find_maskers

    return find_maskers(model) + [m for m in model.modules() if isinstance(m, LanguageConditioned)]
