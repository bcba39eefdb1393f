"""A synthetic Common Voice release: espeak-ng speech of real CLDR words.

Layout (the real Common Voice release layout)::

    OUT/synth_cv.json                       generation parameters + per-locale stats
    OUT/<locale>/{validated,train,dev,test}.tsv
    OUT/<locale>/clip_durations.tsv         clip<TAB>duration[ms]
    OUT/<locale>/clips/common_voice_<locale>_<number>.mp3   48 kHz mono MP3

``validated.tsv`` holds every clip: train, dev, test and a few validated-only
clips of train speakers that are in no split. Dev and test speakers are disjoint
from the train speakers and from each other. Sentences (3-8 real words, see
:mod:`espnet_s3net.synth.vocabulary`) are unique within a locale.

Train audio per locale follows the XLSR-10 pre-training hours with a floor:
``train_seconds = scale * (floor + slope * hours)`` where the size preset fixes
the seconds for 3 h (Swedish) and 353 h (French). Utterances are synthesised
until the train audio reaches that target.

Reproducibility: text, speakers and audio depend only on (size, locale, seed,
scale). espeak-ng keeps synthesis state between utterances (e.g. the phase of
its pitch flutter), so every locale is generated in a fresh worker process, in a
fixed utterance order; ``--nj`` and the choice of other locales therefore never
change a locale's bytes.

Re-running with the same parameters on a complete corpus does nothing
("up to date"); an unfinished corpus with the same parameters is regenerated.
Any other content in the output directory is refused unless ``overwrite``, which
removes the locale directories about to be written (and those of a previous
synthetic corpus found there) and leaves other entries alone.

Speed: espeak-ng synthesises several hundred times faster than real time and
dominates together with MP3 encoding (LAME through ``lameenc`` at its fast
quality setting, several times faster than libsndfile's built-in LAME, whose
speed setting is not exposed); see ``python -m espnet_s3net.bin.benchmark synth``.
"""

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet_s3net.languages import LANGUAGES, XLSR10, check_languages

#: Common Voice tsv columns (current release schema).
CV_COLUMNS = [
    "client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes",
    "down_votes", "age", "gender", "accents", "variant", "locale", "segment",
]
PARAMS_FILE = "synth_cv.json"
SAMPLE_RATE = 48000
FORMAT_VERSION = 1
#: LAME settings: constant 64 kbit/s (what Common Voice clips use) at quality 7,
#: LAME's fast mode (2 = best, 9 = fastest; 7 costs little quality for speech).
MP3_BITRATE_KBPS = 64
MP3_QUALITY = 7
#: First clip number; clip numbers follow generation order within a locale.
CLIP_NUMBER_BASE = 20000000

_MALE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
_FEMALE_VARIANTS = ["f1", "f2", "f3", "f4", "f5"]
_AGES = ["teens", "twenties", "thirties", "fourties", "fifties", "sixties"]
_GENDER = {"m": "male_masculine", "f": "female_feminine"}


@dataclass(frozen=True)
class SizePreset:
    """How big one locale gets.

    Attributes:
        min_train_s: train seconds at 3 XLSR-10 hours (Swedish), before ``scale``.
        max_train_s: train seconds at 353 XLSR-10 hours (French), before ``scale``.
        n_dev, n_test: clips per locale in dev / test (before ``scale``).
        n_extra: validated-only clips of train speakers (before ``scale``).
        n_train_spk, n_dev_spk, n_test_spk: speakers per split.
        words: (min, max) words per train sentence.
        dev_test_words: (min, max) words per dev/test sentence.
    """

    min_train_s: float
    max_train_s: float
    n_dev: int
    n_test: int
    n_extra: int
    n_train_spk: int
    n_dev_spk: int
    n_test_spk: int
    words: Tuple[int, int]
    dev_test_words: Tuple[int, int]


SIZES: Dict[str, SizePreset] = {
    "tiny": SizePreset(4.0, 40.0, 2, 2, 1, 2, 1, 1, (3, 5), (3, 3)),
    "small": SizePreset(30.0, 600.0, 10, 10, 5, 6, 2, 2, (3, 8), (3, 8)),
}
_LOW_HOURS, _HIGH_HOURS = 3.0, 353.0


class CorpusExistsError(RuntimeError):
    """The output directory holds something this generator did not write with these parameters."""


def train_seconds(size: str, locale: str, scale: float = 1.0) -> float:
    """Target train audio (s) of ``locale``: ``scale * (floor + slope * xlsr10_hours)``."""
    preset = SIZES[size]
    slope = (preset.max_train_s - preset.min_train_s) / (_HIGH_HOURS - _LOW_HOURS)
    floor = preset.min_train_s - slope * _LOW_HOURS
    return scale * (floor + slope * LANGUAGES[locale].xlsr10_hours)


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak voice variant with its own pitch and rate."""

    client_id: str
    variant: str
    pitch: int
    rate: int
    age: str
    gender: str


@dataclass
class Clip:
    """One written clip (a tsv row plus its duration)."""

    speaker: Speaker
    path: str
    sentence: str
    split: str
    duration_ms: int

    def row(self, locale: str) -> List[str]:
        sentence_id = hashlib.sha256(self.sentence.encode("utf-8")).hexdigest()
        return [
            self.speaker.client_id, self.path, sentence_id, self.sentence, "", "2", "0",
            self.speaker.age, self.speaker.gender, "", "", locale, "",
        ]


def _rng(seed: int, locale: str, stream: str) -> np.random.Generator:
    """Independent random stream per (seed, locale, purpose), stable across runs."""
    return np.random.default_rng([seed, zlib.crc32(locale.encode()), zlib.crc32(stream.encode())])


def make_speakers(locale: str, seed: int, count: int) -> List[Speaker]:
    """``count`` distinct speakers (distinct voice variants, alternating gender)."""
    rng = _rng(seed, locale, "speakers")
    males = list(rng.permutation(_MALE_VARIANTS))
    females = list(rng.permutation(_FEMALE_VARIANTS))
    if count > len(males) + len(females):
        raise ValueError(f"at most {len(males) + len(females)} speakers per locale, asked {count}")
    speakers = []
    for index in range(count):
        pool = males if (index % 2 == 0 and males) or not females else females
        variant = str(pool.pop(0))
        client_id = hashlib.sha512(f"synth_cv/{locale}/{seed}/{index}".encode()).hexdigest()
        speakers.append(
            Speaker(
                client_id=client_id,
                variant=variant,
                pitch=int(rng.integers(30, 71)),
                rate=int(rng.integers(140, 201)),
                age=str(rng.choice(_AGES)),
                gender=_GENDER[variant[0]],
            )
        )
    return speakers


class SentenceMaker:
    """Unique sentences of real words of one locale, in a fixed random order."""

    def __init__(self, locale: str, seed: int):
        from espnet_s3net.synth.vocabulary import locale_script, vocabulary

        babel_locale = LANGUAGES[locale].babel_locale
        self.words = vocabulary(babel_locale)
        han = locale_script(babel_locale) in ("Hans", "Hant")
        self._joiner, self._end = ("", "。") if han else (" ", ".")
        self._rng = _rng(seed, locale, "sentences")
        self._seen = set()

    def __call__(self, n_words: Tuple[int, int]) -> str:
        for _ in range(1000):
            k = int(self._rng.integers(n_words[0], n_words[1] + 1))
            picks = self._rng.choice(len(self.words), size=min(k, len(self.words)), replace=False)
            sentence = self._joiner.join(self.words[i] for i in picks) + self._end
            if sentence not in self._seen:
                self._seen.add(sentence)
                return sentence
        raise RuntimeError(
            f"could not draw a new unique sentence after 1000 tries ({len(self._seen)} drawn)"
        )


@dataclass
class Timings:
    """Seconds spent per stage of clip generation."""

    synth_s: float = 0.0
    resample_s: float = 0.0
    encode_s: float = 0.0


def encode_mp3(audio: np.ndarray) -> bytes:
    """Encode mono float audio in [-1, 1] at ``SAMPLE_RATE`` Hz as an MP3 file (bytes)."""
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(SAMPLE_RATE)
    encoder.set_channels(1)
    encoder.set_bit_rate(MP3_BITRATE_KBPS)
    encoder.set_quality(MP3_QUALITY)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    return bytes(encoder.encode(pcm.tobytes()) + encoder.flush())


class ClipWriter:
    """Synthesises sentences and writes them as 48 kHz mono MP3 clips of one locale."""

    def __init__(self, locale: str, clips_dir: str):
        from espnet_s3net.synth.espeak import get_engine

        self.locale = locale
        self.clips_dir = clips_dir
        self.engine = get_engine()
        self.voice = self.engine.voice_name(LANGUAGES[locale].espeak_voice)
        self.timings = Timings()
        self._number = CLIP_NUMBER_BASE

    def write(self, speaker: Speaker, sentence: str, split: str) -> Clip:
        import soundfile as sf
        import soxr

        t0 = time.perf_counter()
        samples = self.engine.synthesize(
            sentence, f"{self.voice}+{speaker.variant}", rate=speaker.rate,
            pitch=speaker.pitch, seed=self._number,
        )
        if samples.size == 0:
            raise RuntimeError(f"espeak-ng produced no audio for {self.locale} sentence {sentence!r}")
        t1 = time.perf_counter()
        audio = soxr.resample(
            samples.astype(np.float32) / 32768.0, self.engine.sample_rate, SAMPLE_RATE, quality="HQ"
        )
        t2 = time.perf_counter()
        name = f"common_voice_{self.locale}_{self._number}.mp3"
        self._number += 1
        path = os.path.join(self.clips_dir, name)
        with open(path, "wb") as f:
            f.write(encode_mp3(audio))
        t3 = time.perf_counter()
        self.timings.synth_s += t1 - t0
        self.timings.resample_s += t2 - t1
        self.timings.encode_s += t3 - t2
        # the decoded length of the file (the encoder adds its delay and frame padding)
        duration_ms = int(round(1000 * sf.info(path).duration))
        return Clip(speaker, name, sentence, split, duration_ms)


def _write_tsv(path: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def generate_locale(out_dir: str, locale: str, size: str, seed: int, scale: float) -> dict:
    """Write ``out_dir/<locale>`` (built in a hidden directory, then renamed).

    Returns:
        {"locale", "stats": {split: {"clips", "seconds"}}, "timings": Timings as dict,
        "audio_s", "wall_s"}; stats are deterministic, timings are not.
    """
    start = time.perf_counter()
    preset = SIZES[size]
    final_dir = os.path.join(out_dir, locale)
    work_dir = os.path.join(out_dir, f".{locale}.partial")
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(os.path.join(work_dir, "clips"))

    n_dev = max(1, round(preset.n_dev * scale))
    n_test = max(1, round(preset.n_test * scale))
    n_extra = max(1, round(preset.n_extra * scale))
    target_s = train_seconds(size, locale, scale)
    speakers = make_speakers(
        locale, seed, preset.n_train_spk + preset.n_dev_spk + preset.n_test_spk
    )
    train_spk = speakers[: preset.n_train_spk]
    dev_spk = speakers[preset.n_train_spk : preset.n_train_spk + preset.n_dev_spk]
    test_spk = speakers[preset.n_train_spk + preset.n_dev_spk :]
    logging.info(
        "%s: generating %.1f s train audio, %d dev, %d test, %d validated-only clips, %d speakers",
        locale, target_s, n_dev, n_test, n_extra, len(speakers),
    )
    sentences = SentenceMaker(locale, seed)
    writer = ClipWriter(locale, os.path.join(work_dir, "clips"))
    clips: List[Clip] = []
    for i in range(n_dev):
        clips.append(writer.write(dev_spk[i % len(dev_spk)], sentences(preset.dev_test_words), "dev"))
    for i in range(n_test):
        clips.append(writer.write(test_spk[i % len(test_spk)], sentences(preset.dev_test_words), "test"))
    train_ms, i = 0, 0
    while train_ms < 1000 * target_s:
        clip = writer.write(train_spk[i % len(train_spk)], sentences(preset.words), "train")
        clips.append(clip)
        train_ms += clip.duration_ms
        i += 1
        if i % 200 == 0:
            logging.info("%s: %d train clips, %.1f / %.1f s", locale, i, train_ms / 1000, target_s)
    for i in range(n_extra):
        clips.append(writer.write(train_spk[i % len(train_spk)], sentences(preset.words), "other"))

    rows = {split: [c.row(locale) for c in clips if c.split == split] for split in ("train", "dev", "test")}
    rows["validated"] = [c.row(locale) for c in clips]
    for split, split_rows in rows.items():
        _write_tsv(os.path.join(work_dir, f"{split}.tsv"), CV_COLUMNS, split_rows)
    _write_tsv(
        os.path.join(work_dir, "clip_durations.tsv"),
        ["clip", "duration[ms]"],
        [[c.path, str(c.duration_ms)] for c in clips],
    )
    shutil.rmtree(final_dir, ignore_errors=True)
    os.replace(work_dir, final_dir)

    stats = {
        split: {
            "clips": sum(c.split == split for c in clips),
            "seconds": sum(c.duration_ms for c in clips if c.split == split) / 1000,
        }
        for split in ("train", "dev", "test", "other")
    }
    wall = time.perf_counter() - start
    audio_s = sum(c.duration_ms for c in clips) / 1000
    logging.info(
        "%s: wrote %d clips (train %.1f s in %d clips) in %.1f s (%.0fx real time)",
        locale, len(clips), stats["train"]["seconds"], stats["train"]["clips"], wall, audio_s / wall,
    )
    return {
        "locale": locale, "stats": stats, "timings": asdict(writer.timings),
        "audio_s": audio_s, "wall_s": wall,
    }


def _init_worker(level: int) -> None:
    from espnet_s3net.log import setup_logging

    setup_logging(level)


def _read_params(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _prepare_out_dir(out_dir: str, params: dict, langs: List[str], overwrite: bool) -> bool:
    """Check what ``out_dir`` holds. Returns True when the corpus is already complete."""
    if not os.path.isdir(out_dir):
        if os.path.exists(out_dir):
            raise CorpusExistsError(f"{out_dir} exists and is not a directory")
        return False
    entries = sorted(os.listdir(out_dir))
    if not entries:
        return False
    old = _read_params(os.path.join(out_dir, PARAMS_FILE))
    if old is not None and old.get("params") == params:
        if old.get("complete") and all(
            os.path.isfile(os.path.join(out_dir, loc, "validated.tsv")) for loc in langs
        ):
            return True
        return False  # our own unfinished run: regenerate
    if not overwrite:
        if old is not None:
            old_params = json.dumps(old.get("params"), sort_keys=True)
            what = f"a synthetic corpus with other parameters ({old_params})"
        else:
            shown = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "")
            what = f"files not written by synth_cv ({shown})"
        raise CorpusExistsError(
            f"{out_dir} already holds {what}; wanted {json.dumps(params, sort_keys=True)}. "
            "Pass --overwrite to replace it, or choose another --out."
        )
    stale = set(langs) | set((old or {}).get("params", {}).get("langs", []))
    for name in entries:
        if name in stale or name == PARAMS_FILE or name.endswith(".partial"):
            path = os.path.join(out_dir, name)
            logging.info("--overwrite: removing %s", path)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    return False


def _write_params(out_dir: str, record: dict) -> None:
    tmp = os.path.join(out_dir, PARAMS_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    os.replace(tmp, os.path.join(out_dir, PARAMS_FILE))


def generate_corpus(
    out_dir: str,
    size: str = "tiny",
    langs: Optional[Sequence[str]] = None,
    seed: int = 0,
    scale: float = 1.0,
    overwrite: bool = False,
    nj: int = 1,
) -> dict:
    """Generate (or confirm up to date) a synthetic Common Voice release in ``out_dir``.

    Returns:
        the ``synth_cv.json`` record plus, when generated now, a ``"run"`` entry with
        per-locale wall time and stage timings (not stored on disk).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if nj < 1:
        raise ValueError(f"nj must be >= 1, got {nj}")
    langs = check_languages(XLSR10 if langs is None else langs)
    if not langs:
        raise ValueError("no languages given")
    if len(set(langs)) != len(langs):
        raise ValueError(f"duplicate language codes in {langs}")
    params = {
        "format_version": FORMAT_VERSION, "size": size, "langs": list(langs),
        "seed": int(seed), "scale": float(scale),
    }
    if _prepare_out_dir(out_dir, params, langs, overwrite):
        logging.info("%s is up to date (same parameters, complete); nothing to do", out_dir)
        record = _read_params(os.path.join(out_dir, PARAMS_FILE))
        return record
    os.makedirs(out_dir, exist_ok=True)
    record = {
        "params": params,
        "complete": False,
        "sample_rate": SAMPLE_RATE,
        "train_seconds_target": {loc: train_seconds(size, loc, scale) for loc in langs},
    }
    _write_params(out_dir, record)

    start = time.perf_counter()
    results: Dict[str, dict] = {}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(nj, len(langs)), mp_context=context, max_tasks_per_child=1,
        initializer=_init_worker, initargs=(logging.getLogger().getEffectiveLevel(),),
    ) as pool:
        futures = {
            pool.submit(generate_locale, out_dir, loc, size, seed, scale): loc for loc in langs
        }
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            loc = futures[future]
            try:
                results[loc] = future.result()
            except Exception as exc:
                raise RuntimeError(f"generating locale {loc} in {out_dir} failed: {exc}") from exc
            logging.info("finished %s (%d/%d languages)", loc, done, len(langs))

    record["stats"] = {loc: results[loc]["stats"] for loc in langs}
    record["complete"] = True
    _write_params(out_dir, record)
    wall = time.perf_counter() - start
    audio = sum(r["audio_s"] for r in results.values())
    logging.info("wrote %d languages to %s: %.1f s audio in %.1f s", len(langs), out_dir, audio, wall)
    run = {
        loc: {key: results[loc][key] for key in ("audio_s", "wall_s", "timings")} for loc in langs
    }
    return {**record, "run": {"wall_s": wall, "locales": run}}
