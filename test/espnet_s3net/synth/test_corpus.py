import pytest

from espnet_s3net.languages import LANGUAGES, XLSR10
from espnet_s3net.synth.corpus import (
    SIZES,
    SentenceMaker,
    generate_corpus,
    make_speakers,
    train_seconds,
)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_train_seconds_follow_xlsr_hours(size):
    by_hours = sorted(XLSR10, key=lambda loc: LANGUAGES[loc].xlsr10_hours)
    seconds = [train_seconds(size, loc) for loc in by_hours]
    assert seconds == sorted(seconds)
    assert train_seconds(size, "sv-SE") == pytest.approx(SIZES[size].min_train_s)
    assert train_seconds(size, "fr") == pytest.approx(SIZES[size].max_train_s)
    assert train_seconds(size, "fr", scale=2.5) == pytest.approx(2.5 * SIZES[size].max_train_s)
    # long tail: the median language gets well under half of the largest one
    assert seconds[len(seconds) // 2] < 0.5 * seconds[-1]


def test_speakers_are_distinct_and_reproducible():
    speakers = make_speakers("es", seed=0, count=10)
    assert len({s.client_id for s in speakers}) == 10
    assert len({s.variant for s in speakers}) == 10
    assert all(len(s.client_id) == 128 and int(s.client_id, 16) >= 0 for s in speakers)
    assert make_speakers("es", seed=0, count=10) == speakers
    assert make_speakers("es", seed=1, count=10) != speakers
    assert {s.gender for s in speakers} == {"male_masculine", "female_feminine"}


def test_sentences_unique_deterministic_and_sized():
    make = SentenceMaker("fr", seed=0)
    sentences = [make((3, 8)) for _ in range(200)]
    assert len(set(sentences)) == 200
    assert all(3 <= len(s.rstrip(".").split()) <= 8 for s in sentences)
    again = SentenceMaker("fr", seed=0)
    assert [again((3, 8)) for _ in range(200)] == sentences
    zh = SentenceMaker("zh-CN", seed=0)((3, 3))
    assert " " not in zh and zh.endswith("。")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown size"):
        generate_corpus(str(tmp_path / "a"), size="huge")
    with pytest.raises(ValueError, match="supported: es, fr"):
        generate_corpus(str(tmp_path / "a"), langs=["fr", "xx"])
    with pytest.raises(ValueError, match="scale must be positive"):
        generate_corpus(str(tmp_path / "a"), scale=0)
    with pytest.raises(ValueError, match="duplicate"):
        generate_corpus(str(tmp_path / "a"), langs=["fr", "fr"])
    assert not (tmp_path / "a").exists()
