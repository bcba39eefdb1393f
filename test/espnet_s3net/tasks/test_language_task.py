"""LanguageTaskMixin: the lang data input, lang_numel batches, language-following models."""

import gc
import logging
from typing import Tuple

import numpy as np
import pytest
import soundfile
import torch
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.tasks.abs_task import AbsTask
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.train.distributed_utils import DistributedOption
from language_data_dirs import data_args

from espnet_s3net.iterators.language_iter_factory import LanguageIterFactory
from espnet_s3net.masks.language_masker import attach_masker
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.tasks import language_task
from espnet_s3net.tasks.language_task import LanguageTaskMixin
from espnet_s3net.train.language_data import decode_language

LANGS = {"fr": 12, "ky": 4, "tt": 3}


class _SpeechBase(AbsTask):
    """Smallest ESPnet task with a 'speech' input and a one-layer model."""

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
        return torch.nn.Sequential(torch.nn.Linear(4, 4))


class _SpeechTask(LanguageTaskMixin, _SpeechBase):
    """The mixin on top of a complete ESPnet task, as for ESPnet's ASRTask."""


def _write_data_dir(root, with_lang=True):
    utt2lang = {f"{lang}-{i:02d}": lang for lang, count in LANGS.items() for i in range(count)}
    (root / "data").mkdir(parents=True)
    scp, lens, langs = [], [], []
    for i, utt in enumerate(sorted(utt2lang)):
        path = root / "data" / f"{utt}.flac"
        soundfile.write(path, np.full(1600 + 160 * (i % 5), 0.01, dtype=np.float32), 16000)
        scp.append(f"{utt} {path}\n")
        lens.append(f"{utt} {1600 + 160 * (i % 5)}\n")
        langs.append(f"{utt} {utt2lang[utt]}\n")
    (root / "wav.scp").write_text("".join(scp))
    (root / "utt2num_samples").write_text("".join(lens))
    if with_lang:
        (root / "utt2lang").write_text("".join(langs))
    return utt2lang


def _args(root, *extra, lang=True):
    return _SpeechTask.get_parser().parse_args(
        data_args(root, lang=lang) + ["--batch_bins", "16000", "--output_dir", f"{root}/exp", *extra])


def test_lang_numel_batches_carry_their_language(tmp_path, caplog):
    utt2lang = _write_data_dir(tmp_path)
    args = _args(tmp_path, "--batch_type", "lang_numel", "--lang_alpha", "0.0",
                 "--num_iters_per_epoch", "6", "--accum_grad", "2")
    train = _SpeechTask.build_iter_factory(args, DistributedOption(), mode="train")
    assert isinstance(train, LanguageIterFactory)
    with caplog.at_level(logging.INFO):
        batches = list(train.build_iter(1))
    assert len(batches) == 6
    for i, (utts, data) in enumerate(batches):
        assert len({utt2lang[u] for u in utts}) == 1
        assert data["speech"].dim() == 2 and data["speech_lengths"].shape == (len(utts),)
        # the language travels with the batch, one row per utterance
        assert [decode_language(row) for row in data["lang"]] == [utt2lang[u] for u in utts]
        if i % 2 == 1:
            assert utt2lang[utts[0]] == utt2lang[batches[i - 1][0][0]]
    logged = [r.getMessage() for r in caplog.records if "target p_l" in r.getMessage()]
    assert len(logged) == len(LANGS) and all("0.3333" in line for line in logged)
    valid = _SpeechTask.build_iter_factory(args, DistributedOption(), mode="valid")
    assert sorted(u for utts, _ in valid.build_iter(1) for u in utts) == sorted(utt2lang)


def test_lang_numel_without_language_input_names_the_option(tmp_path):
    _write_data_dir(tmp_path)
    args = _args(tmp_path, "--batch_type", "lang_numel", lang=False)
    with pytest.raises(ValueError, match=r"add --train_data_path_and_name_and_type <data dir>/utt2lang,lang,text"):
        _SpeechTask.build_iter_factory(args, DistributedOption(), mode="train")


def test_other_batch_types_are_espnet_s(tmp_path):
    _write_data_dir(tmp_path)
    factory = _SpeechTask.build_iter_factory(_args(tmp_path, "--batch_type", "numel"), DistributedOption(),
                                             mode="train")
    assert isinstance(factory, SequenceIterFactory)


def test_empty_language_is_an_error_naming_the_utterance(tmp_path):
    preprocess = _SpeechTask.build_preprocess_fn(None, False)
    assert list(preprocess("u1", {"lang": "es"})["lang"]) == [ord("e"), ord("s")]
    with pytest.raises(ValueError, match="utterance u2 has an empty language"):
        preprocess("u2", {"lang": " "})


def _stream(tmp_path, inference):
    return _SpeechTask.build_streaming_iterator(
        [(f"{tmp_path}/wav.scp", "speech", "sound"), (f"{tmp_path}/utt2lang", "lang", "text")],
        preprocess_fn=_SpeechTask.build_preprocess_fn(None, False),
        collate_fn=_SpeechTask.build_collate_fn(None, False), key_file=f"{tmp_path}/wav.scp", batch_size=1,
        num_workers=0, dtype="float32", inference=inference)


def test_streaming_batches_activate_their_language_on_built_models(tmp_path):
    utt2lang = _write_data_dir(tmp_path)
    model = _SpeechTask.build_model(None)
    masks = SubnetMasks.from_dense({lang: {"0.weight": torch.ones(4, 4, dtype=torch.bool)} for lang in LANGS}, {})
    masker = attach_masker(model, masks)
    assert model in set(language_task._BUILT_MODELS)
    with pytest.raises(RuntimeError, match="no language is active"):
        model(torch.zeros(1, 4))
    seen = 0
    for keys, batch in _stream(tmp_path, inference=True):
        assert "lang" not in batch and masker.active == utt2lang[keys[0]]
        model(torch.zeros(1, 4))
        seen += 1
    assert seen == len(utt2lang)


def test_inference_language_for_a_model_without_masks_is_an_error(tmp_path):
    _write_data_dir(tmp_path)
    gc.collect()  # models of earlier tests (a masker and its model hold each other)
    model = _SpeechTask.build_model(None)  # noqa: F841 (alive while the stream runs)
    with pytest.raises(ValueError, match="comes with a language .* but the model has no language sub-networks"):
        next(iter(_stream(tmp_path, inference=True)))
    assert len(list(_stream(tmp_path, inference=False))) == sum(LANGS.values())  # stats collection: fine


def test_streaming_batches_of_several_languages_are_split(tmp_path):
    utt2lang = _write_data_dir(tmp_path)
    gc.collect()
    model = _SpeechTask.build_model(None)
    masker = attach_masker(model, SubnetMasks.from_dense(
        {lang: {"0.weight": torch.ones(4, 4, dtype=torch.bool)} for lang in LANGS}, {}))
    loader = _SpeechTask.build_streaming_iterator(
        [(f"{tmp_path}/wav.scp", "speech", "sound"), (f"{tmp_path}/utt2lang", "lang", "text")],
        preprocess_fn=_SpeechTask.build_preprocess_fn(None, False),
        collate_fn=_SpeechTask.build_collate_fn(None, False), batch_size=5, num_workers=0, dtype="float32")
    seen = []
    for keys, batch in loader:  # stats collection: batches of 5 in file order
        assert {utt2lang[k] for k in keys} == {masker.active}
        assert batch["speech"].shape[0] == batch["speech_lengths"].shape[0] == len(keys)
        seen += keys
    assert seen == sorted(utt2lang)
