import soundfile as sf

from conftest import write_mp3
from espnet_s3net.data.audio_format import format_part, merge_parts, split_scp
from espnet_s3net.data.kaldi_dir import read_kaldi_map, read_skipped, write_data_dir


def test_format_resamples_and_skips_bad_clips(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_mp3(clips / "ok.mp3", 1.0)
    write_mp3(clips / "short.mp3", 0.2)
    (clips / "bad.mp3").write_bytes(b"not an mp3 at all" * 50)
    utts = {"s-ok": "ok", "s-short": "short", "s-bad": "bad"}
    data = tmp_path / "data"
    write_data_dir(str(data), {"wav.scp": {u: str(clips / f"{c}.mp3") for u, c in utts.items()},
                               "text": {u: "x" for u in utts}, "utt2spk": {u: "s" for u in utts}})
    out = tmp_path / "dump"
    parts = split_scp(str(data), str(out), nj=2)
    for part in parts:
        format_part(part, str(out), min_s=0.5)
    counts = merge_parts(str(data), str(out), nj=2)
    assert counts == {"kept": 1, "skipped": 2}
    wav = read_kaldi_map(f"{out}/wav.scp")
    info = sf.info(wav["s-ok"])
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
    assert abs(int(read_kaldi_map(f"{out}/utt2num_samples")["s-ok"]) - 16000) < 1200
    reasons = dict(read_skipped(str(out)))
    assert reasons["s-short"].startswith("shorter than the minimum")
    assert reasons["s-bad"].startswith("corrupt or undecodable audio")
    assert list(read_kaldi_map(f"{out}/text")) == ["s-ok"]
