import logging
from typing import Optional, Tuple

import numpy as np
import pytest
import soundfile
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.samplers.build_batch_sampler import BATCH_TYPES
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.train.distributed_utils import DistributedOption

from espnet_s3net.samplers.language_batch_sampler import LanguageBatchSampler
from espnet_s3net.samplers.language_iter_factory import (
    LANG_NUMEL,
    LanguageIterFactory,
    LanguageSamplerTaskMixin,
)

LANGS = {"fr": 12, "ky": 4, "tt": 3}


class _LengthDataset:
    """Stands in for ESPnetDataset: item = (utt, {"speech": zeros(length)})."""

    def __init__(self, utt2len):
        self.utt2len = utt2len

    def __getitem__(self, utt):
        return utt, {"speech": np.zeros(self.utt2len[utt], dtype=np.float32)}


def _toy_corpus():
    utt2lang, utt2len = {}, {}
    for lang, count in LANGS.items():
        for i in range(count):
            utt = f"{lang}-{i:02d}"
            utt2lang[utt] = lang
            utt2len[utt] = 1600 + 160 * i
    return utt2lang, utt2len


def test_lang_numel_is_registered():
    assert LANG_NUMEL in BATCH_TYPES


def test_ranks_see_same_language_each_step():
    utt2lang, utt2len = _toy_corpus()
    world_size = 3
    loaders = []
    for rank in range(world_size):
        sampler = LanguageBatchSampler(
            utt2lang, utt2len, batch_bins=16000, alpha=0.5, seed=5,
            num_batches=40, min_batch_size=world_size,
        )
        factory = LanguageIterFactory(
            _LengthDataset(utt2len), sampler, rank=rank, world_size=world_size,
            collate_fn=CommonCollateFn(float_pad_value=0.0, int_pad_value=-1),
        )
        loaders.append(list(factory.build_iter(epoch=2)))
    full = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=16000, alpha=0.5, seed=5, num_batches=40,
        min_batch_size=world_size,
    ).epoch_batches(2)
    assert all(len(loader) == 40 for loader in loaders)
    for step, batch in enumerate(full):
        shares = [loaders[rank][step][0] for rank in range(world_size)]
        step_langs = {utt2lang[u] for share in shares for u in share}
        assert len(step_langs) == 1, f"step {step}: {shares}"
        assert sorted(u for share in shares for u in share) == sorted(batch)
        speech = loaders[0][step][1]["speech"]
        assert speech.shape[0] == len(shares[0])


def test_rank_outside_world_is_rejected():
    utt2lang, utt2len = _toy_corpus()
    sampler = LanguageBatchSampler(
        utt2lang, utt2len, batch_bins=16000, alpha=0.5, seed=0
    )
    with pytest.raises(ValueError, match="rank 2"):
        LanguageIterFactory(_LengthDataset(utt2len), sampler, rank=2, world_size=2)


class _SpeechTask(LanguageSamplerTaskMixin, AbsTask):
    """Smallest ESPnet task with one 'speech' input, to drive the mixin."""

    @classmethod
    def add_task_arguments(cls, parser):
        pass

    @classmethod
    def build_collate_fn(cls, args, train):
        return CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)

    @classmethod
    def build_preprocess_fn(cls, args, train):
        return None

    @classmethod
    def required_data_names(cls, train=True, inference=False) -> Tuple[str, ...]:
        return ("speech",)

    @classmethod
    def optional_data_names(cls, train=True, inference=False) -> Tuple[str, ...]:
        return ()

    @classmethod
    def build_model(cls, args):
        raise NotImplementedError("no model needed to build iterators")


def _write_data_dir(root, utt2lang_name: Optional[str] = "utt2category"):
    utt2lang, utt2len = _toy_corpus()
    (root / "data").mkdir(parents=True)
    scp, lens, langs = [], [], []
    for utt in sorted(utt2len):
        path = root / "data" / f"{utt}.flac"
        soundfile.write(path, np.full(utt2len[utt], 0.01, dtype=np.float32), 16000)
        scp.append(f"{utt} {path}\n")
        lens.append(f"{utt} {utt2len[utt]}\n")
        langs.append(f"{utt} {utt2lang[utt]}\n")
    (root / "wav.scp").write_text("".join(scp))
    (root / "utt2num_samples").write_text("".join(lens))
    if utt2lang_name is not None:
        (root / utt2lang_name).write_text("".join(langs))
    return utt2lang


def _args(root, *extra):
    return _SpeechTask.get_parser().parse_args(
        [
            "--train_data_path_and_name_and_type", f"{root}/wav.scp,speech,sound",
            "--train_shape_file", f"{root}/utt2num_samples",
            "--valid_data_path_and_name_and_type", f"{root}/wav.scp,speech,sound",
            "--valid_shape_file", f"{root}/utt2num_samples",
            "--batch_bins", "16000",
            "--output_dir", f"{root}/exp",
            *extra,
        ]
    )


def test_task_mixin_builds_language_batches(tmp_path, caplog):
    utt2lang = _write_data_dir(tmp_path)
    args = _args(tmp_path, "--batch_type", "lang_numel", "--lang_alpha", "0.0",
                 "--num_iters_per_epoch", "6", "--accum_grad", "2")
    assert args.lang_alpha == 0.0 and args.utt2lang_name == "utt2category"
    train = _SpeechTask.build_iter_factory(args, DistributedOption(), mode="train")
    assert isinstance(train, LanguageIterFactory)
    with caplog.at_level(logging.INFO):
        batches = list(train.build_iter(1))
    assert len(batches) == 6
    for i, (utts, data) in enumerate(batches):
        assert len({utt2lang[u] for u in utts}) == 1
        assert data["speech"].dim() == 2
        assert data["speech_lengths"].shape == (len(utts),)
        if i % 2 == 1:
            assert utt2lang[utts[0]] == utt2lang[batches[i - 1][0][0]]
    logged = [r.getMessage() for r in caplog.records if "target p_l" in r.getMessage()]
    assert len(logged) == len(LANGS)
    assert all("0.3333" in line for line in logged)

    valid = _SpeechTask.build_iter_factory(args, DistributedOption(), mode="valid")
    seen = [u for utts, _ in valid.build_iter(1) for u in utts]
    assert sorted(seen) == sorted(utt2lang)


def test_task_mixin_custom_language_file_and_errors(tmp_path):
    _write_data_dir(tmp_path, utt2lang_name="utt2lang")
    args = _args(tmp_path, "--batch_type", "lang_numel")
    with pytest.raises(ValueError, match="utt2category does not exist"):
        _SpeechTask.build_iter_factory(args, DistributedOption(), mode="train")
    args = _args(tmp_path, "--batch_type", "lang_numel", "--utt2lang_name", "utt2lang")
    factory = _SpeechTask.build_iter_factory(args, DistributedOption(), mode="train")
    assert isinstance(factory, LanguageIterFactory)


def test_task_mixin_defers_other_batch_types(tmp_path):
    _write_data_dir(tmp_path)
    args = _args(tmp_path, "--batch_type", "numel")
    factory = _SpeechTask.build_iter_factory(args, DistributedOption(), mode="train")
    assert isinstance(factory, SequenceIterFactory)
