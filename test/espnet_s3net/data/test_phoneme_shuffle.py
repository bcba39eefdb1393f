import numpy as np
import pytest
import torch

from espnet_s3net.data.phoneme_shuffle import AlignmentError, ctc_segments, fade, shuffle_segments


def _emissions(frame_labels, classes=5, blank=0):
    """(T, C) log-probs whose best path is ``frame_labels`` (sharp but not one-hot)."""
    logits = torch.full((len(frame_labels), classes), -8.0)
    logits[torch.arange(len(frame_labels)), torch.tensor(frame_labels)] = 8.0
    return logits.log_softmax(-1)


def test_segments_split_blank_gaps_half_way_and_cover_the_utterance():
    # frames: blank, 1 1, blank blank, 2, blank, 2 (a repeat needs a blank between), blank
    log_probs = _emissions([0, 1, 1, 0, 0, 2, 0, 2, 0])
    segments = ctc_segments(log_probs, [1, 2, 2], blank=0, samples=9 * 10 + 7, frame_shift=10)
    # token spans (frames): [1, 3), [5, 6), [7, 8): cuts at (3 + 5)·10/2 = 40 and (6 + 7)·10/2 = 65
    assert segments == [(0, 40), (40, 65), (65, 97)]


def test_alignment_failures_are_named_errors():
    log_probs = _emissions([0, 1, 0])
    with pytest.raises(AlignmentError, match="3 frames cannot hold 3 tokens"):
        ctc_segments(log_probs, [1, 1, 2], blank=0, samples=30, frame_shift=10)  # 1 _ 1 2: 4 frames
    with pytest.raises(AlignmentError, match="no tokens"):
        ctc_segments(log_probs, [], blank=0, samples=30, frame_shift=10)
    with pytest.raises(AlignmentError, match="blank id 0"):
        ctc_segments(log_probs, [1, 0], blank=0, samples=30, frame_shift=10)
    with pytest.raises(AlignmentError, match="do not fit 12 samples"):
        ctc_segments(_emissions([1, 0, 2]), [1, 2], blank=0, samples=12, frame_shift=10)


@pytest.mark.parametrize("seed", range(3))
def test_shuffled_audio_keeps_duration_and_the_multiset_of_segments(seed):
    rng = np.random.default_rng(seed)
    wav = rng.standard_normal(1000).astype(np.float32)
    segments = [(0, 120), (120, 121), (121, 500), (500, 760), (760, 1000)]
    out, order = shuffle_segments(wav, segments, np.random.default_rng(seed + 10), fade_samples=16)
    assert out.shape == wav.shape and out.dtype == np.float32
    assert sorted(order) == list(range(len(segments)))
    pieces, offsets, start = [], {}, 0
    for i in order:  # the output cut at the shuffled segments' lengths
        length = segments[i][1] - segments[i][0]
        pieces.append(out[start:start + length].tobytes())
        offsets[i], start = start, start + length
    faded = [fade(wav[s:e], 16).tobytes() for s, e in segments]
    assert sorted(pieces) == sorted(faded)
    # a segment's interior is the original samples; its edges are faded towards zero
    (s, e), at = segments[2], offsets[2]
    assert np.array_equal(out[at + 16:at + e - s - 16], wav[s + 16:e - 16])
    assert abs(out[at]) < abs(wav[s])


def test_shuffle_is_seeded_and_refuses_what_cannot_be_shuffled():
    wav = np.arange(100, dtype=np.float32)
    segments = [(0, 30), (30, 60), (60, 100)]
    a = shuffle_segments(wav, segments, np.random.default_rng(1))[0]
    b = shuffle_segments(wav, segments, np.random.default_rng(1))[0]
    assert np.array_equal(a, b)
    with pytest.raises(AlignmentError, match="nothing to shuffle"):
        shuffle_segments(wav, [(0, 100)], np.random.default_rng(1))
    with pytest.raises(ValueError, match="contiguous"):
        shuffle_segments(wav, [(0, 30), (40, 100)], np.random.default_rng(1))


def test_data_dir_copy_is_shuffled_with_named_skips(tmp_path):
    import soundfile as sf

    from espnet_s3net.data.kaldi_dir import read_kaldi_map, read_skip_rows
    from espnet_s3net.data.phoneme_shuffle import shuffle_data_dir

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    files = {"wav.scp": {}, "text_phn": {"u1": "a b a", "u2": "a b", "u3": "a x", "u4": "a a a a a a"},
             "utt2lang": {}, "utt2spk": {}, "utt2num_samples": {}}
    for utt in ("u1", "u2", "u3", "u4"):
        audio = (0.1 * rng.standard_normal(3200)).astype(np.float32)  # 10 frames of 320 samples
        sf.write(src / f"{utt}.flac", audio, 16000, subtype="PCM_16")
        files["wav.scp"][utt], files["utt2lang"][utt] = str(src / f"{utt}.flac"), "es"
        files["utt2spk"][utt], files["utt2num_samples"][utt] = "s1", "3200"
    for name, mapping in files.items():
        (src / name).write_text("".join(f"{u} {v}\n" for u, v in sorted(mapping.items())))

    def emissions(audio):  # a b a spread over 10 frames, whatever the utterance
        return _emissions([0, 1, 1, 0, 2, 2, 0, 1, 0, 0], classes=3)

    written, skips = shuffle_data_dir(str(src), str(out), emissions, {"a": 1, "b": 2}, blank=0, frame_shift=320)
    assert written == 2
    assert sorted((s.item, s.reason) for s in skips) == [("u3", "token not in the model's token list"),
                                                         ("u4", "alignment failed")]
    assert [(s.item, s.reason) for s in read_skip_rows(str(out))] == [(s.item, s.reason) for s in skips]
    wav = read_kaldi_map(str(out / "wav.scp"))
    assert sorted(wav) == ["u1", "u2"] and sorted(read_kaldi_map(str(out / "utt2lang"))) == ["u1", "u2"]
    assert read_kaldi_map(str(out / "text_phn"))["u1"] == "a b a"
    for utt in wav:
        shuffled = sf.read(wav[utt], dtype="float32")[0]
        original = sf.read(files["wav.scp"][utt], dtype="float32")[0]
        assert len(shuffled) == len(original) and not np.array_equal(shuffled, original)
    again, _ = shuffle_data_dir(str(src), str(tmp_path / "again"), emissions, {"a": 1, "b": 2}, 0, 320)
    assert all(np.array_equal(sf.read(wav[u])[0], sf.read(str(tmp_path / "again" / "data" / f"{u}.flac"))[0])
               for u in wav)
    with pytest.raises(ValueError, match="no utterance of .* could be shuffled"):
        shuffle_data_dir(str(src), str(tmp_path / "none"), emissions, {"a": 1, "b": 2}, 0, 1000)
