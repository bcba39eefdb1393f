
import numpy as np
import pytest
from espnet2.samplers.build_batch_sampler import BATCH_TYPES
from espnet2.train.collate_fn import CommonCollateFn

from espnet_s3net.iterators.language_iter_factory import LANG_NUMEL, LanguageIterFactory
from espnet_s3net.samplers.language_batch_sampler import LanguageBatchSampler

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
