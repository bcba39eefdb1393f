"""Phoneme transcripts with phonemizer + espeak-ng, cached per language.

espeak-ng comes from the ``espeakng-loader`` package (no system package). Output is
a space-separated phone sequence without word-boundary tokens, the XLSR phoneme
error rate convention. The cache ``<cache_dir>/<locale>.tsv`` (``sentence<TAB>phones``)
makes a rerun phonemize nothing it has seen before.
"""

import logging
import os
import re
from typing import Dict, Iterable, List, Optional

from espnet_s3net.languages import get_language

# espeak marks that are not phones (language-switch flags, stray brackets)
_NOT_PHONE = re.compile(r"[\[\]()|_\-]+")
_espeak_ready = False


def _use_bundled_espeak() -> None:
    global _espeak_ready
    if _espeak_ready:
        return
    import espeakng_loader
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    # the environment variables reach phonemizer's worker processes (njobs > 1) too
    os.environ["PHONEMIZER_ESPEAK_LIBRARY"] = espeakng_loader.get_library_path()
    os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    _espeak_ready = True


def clean_phones(raw: str) -> str:
    """Space-separated phones from one phonemizer output line (artefacts removed)."""
    tokens = (_NOT_PHONE.sub("", tok) for tok in raw.split())
    return " ".join(tok for tok in tokens if tok)


def _read_cache(path: str) -> Dict[str, str]:
    cache: Dict[str, str] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                sentence, _, phones = line.rstrip("\n").partition("\t")
                cache[sentence] = phones
    return cache


def _write_cache(path: str, cache: Dict[str, str]) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for sentence in sorted(cache):
            f.write(f"{sentence}\t{cache[sentence]}\n")
    os.replace(tmp, path)


class Phonemizer:
    """Phonemize sentences of one language, with a persistent cache.

    Args:
        locale: language id (``espnet_s3net.languages``).
        cache_dir: where ``<locale>.tsv`` is kept; ``None`` disables the cache.
        njobs: phonemizer worker processes for the sentences not in the cache.
    """

    def __init__(self, locale: str, cache_dir: Optional[str] = None, njobs: int = 1):
        self.locale = locale
        self.voice = get_language(locale).espeak_voice
        self.njobs = njobs
        self.cache_path = None
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            self.cache_path = os.path.join(cache_dir, f"{locale}.tsv")
        self.cache = _read_cache(self.cache_path) if self.cache_path else {}
        self.backend_calls = 0

    def _backend(self, sentences: List[str]) -> List[str]:
        _use_bundled_espeak()
        from phonemizer.backend import EspeakBackend
        from phonemizer.separator import Separator

        self.backend_calls += 1
        # word boundaries are dropped (clean_phones removes "|"), so a different word
        # count in the output does not matter
        quiet = logging.getLogger("espnet_s3net.phonemizer")
        quiet.setLevel(logging.ERROR)
        backend = EspeakBackend(
            self.voice, language_switch="remove-flags", words_mismatch="ignore", logger=quiet
        )
        return backend.phonemize(
            sentences, separator=Separator(phone=" ", word=" | ", syllable=""),
            strip=True, njobs=self.njobs,
        )

    def __call__(self, sentences: Iterable[str]) -> List[str]:
        """Phones (space-separated, possibly empty) for each sentence, in order."""
        sentences = list(sentences)
        todo = sorted({s for s in sentences if s not in self.cache})
        if todo:
            logging.info(f"phonemizing {len(todo)} new {self.locale} sentences "
                         f"({len(sentences) - len(todo)} from the cache)")
            for sentence, raw in zip(todo, self._backend(todo)):
                self.cache[sentence] = clean_phones(raw)
            if self.cache_path:
                _write_cache(self.cache_path, self.cache)
        return [self.cache[s] for s in sentences]
