import logging
import re

import numpy as np
import soundfile as sf
from conftest import write_mp3

from espnet_s3net.bin import format_audio
from espnet_s3net.data.audio_format import format_part, merge_parts, split_scp
from espnet_s3net.data.kaldi_dir import read_kaldi_map, read_skip_rows, read_skipped, write_data_dir


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
    assert reasons["s-short"] == "shorter than the minimum duration"
    assert reasons["s-bad"] == "cannot decode audio (corrupt or unsupported format)"
    assert list(read_kaldi_map(f"{out}/text")) == ["s-ok"]


def test_skip_reasons_say_what_is_wrong(tmp_path):
    """Our reason first (libsndfile says "does not exist" for a corrupt file that exists),
    the library's text as the detail."""
    clips = tmp_path / "clips"
    clips.mkdir()
    write_mp3(clips / "ok.mp3")
    (clips / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(4000))
    (clips / "empty.mp3").write_bytes(b"")
    sf.write(clips / "silent.wav", [], 16000)
    paths = {f"s-{name.split('.')[0]}": str(clips / name)
             for name in ("ok.mp3", "corrupt.mp3", "empty.mp3", "gone.mp3", "silent.wav")}
    data, out = tmp_path / "data", tmp_path / "dump"
    write_data_dir(str(data), {"wav.scp": paths})
    for part in split_scp(str(data), str(out), nj=1):
        format_part(part, str(out))
    merge_parts(str(data), str(out), nj=1)
    rows = {row.item: row[1:] for row in read_skip_rows(str(out))}
    reason, detail = rows["s-corrupt"]
    assert reason == "cannot decode audio (corrupt or unsupported format)"
    assert "corrupt.mp3" in detail and "Error" in detail
    assert rows["s-gone"] == ("file not found", paths["s-gone"])
    assert rows["s-empty"] == ("empty file", paths["s-empty"])
    assert rows["s-silent"] == ("empty audio", paths["s-silent"])
    assert "s-ok" not in rows


def test_job_logs_progress_up_to_the_last_clip(tmp_path, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a", "b", "c"):
        write_mp3(clips / f"{name}.mp3", 0.3)
    paths = {f"s-{name}": str(clips / f"{name}.mp3") for name in ("a", "b", "c", "gone")}
    data, out = tmp_path / "data", tmp_path / "dump"
    write_data_dir(str(data), {"wav.scp": paths})
    (part,) = split_scp(str(data), str(out), nj=1)
    with caplog.at_level(logging.INFO):
        format_audio.main(["job", "--wav_scp", part, "--out_dir", str(out)])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"formatting {part}: ")]
    # the default interval (10 s) is longer than this job: only the final line is due
    assert len(lines) == 1
    assert re.fullmatch(rf"formatting {re.escape(part)}: 4/4 \(100%\), elapsed \d+:\d\d:\d\d, ETA 0:00:00",
                        lines[0])


def test_job_progress_interval_zero_logs_every_clip(tmp_path, caplog):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_mp3(clips / "a.mp3", 0.3)
    data, out = tmp_path / "data", tmp_path / "dump"
    write_data_dir(str(data), {"wav.scp": {f"s-{n}": str(clips / "a.mp3") for n in range(3)}})
    (part,) = split_scp(str(data), str(out), nj=1)
    with caplog.at_level(logging.INFO):
        format_part(part, str(out), progress_interval_s=0.0)
    done = [r.getMessage().split(": ", 1)[1].split(" ")[0] for r in caplog.records
            if r.getMessage().startswith(f"formatting {part}: ")]
    assert done == ["1/3", "2/3", "3/3"]
