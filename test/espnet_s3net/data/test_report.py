from conftest import write_mp3

from espnet_s3net.data.audio_format import format_part, merge_parts, split_scp
from espnet_s3net.data.kaldi_dir import Skip, write_data_dir
from espnet_s3net.data.report import build_report


def test_skips_counted_once_and_grouped_by_kind(tmp_path):
    """Stage-1 skips (copied into the dump dir by stage 3) count once; two corrupt clips and
    two short clips of different lengths give one group each."""
    clips = tmp_path / "clips"
    clips.mkdir()
    write_mp3(clips / "ok.mp3", 1.0)
    write_mp3(clips / "short1.mp3", 0.2)
    write_mp3(clips / "short2.mp3", 0.3)
    (clips / "bad1.mp3").write_bytes(b"not an mp3 at all" * 50)
    (clips / "bad2.mp3").write_bytes(b"no mp3 either" * 70)
    data, dump = tmp_path / "data", tmp_path / "dump"
    utts = {f"s-{clip.stem}": str(clip) for clip in clips.iterdir()}
    write_data_dir(str(data / "train_es"), {"wav.scp": utts, "utt2spk": {u: "s" for u in utts}},
                   [Skip("x.mp3", "contains digits"), Skip("y.mp3", "contains digits")])
    for part in split_scp(str(data / "train_es"), str(dump / "train_es"), nj=2):
        format_part(part, str(dump / "train_es"), min_s=0.5)
    merge_parts(str(data / "train_es"), str(dump / "train_es"), nj=2)
    for split in ("dev", "test"):
        write_data_dir(str(dump / f"{split}_es"), {"wav.scp": {"s-x": "/x.flac"}, "utt2spk": {"s-x": "s"},
                                                    "utt2num_samples": {"s-x": "16000"}})
    report = build_report(str(dump), ["es"], str(tmp_path / "token_list"), str(data))
    train_row = next(line for line in report.splitlines() if line.startswith("| es | train |"))
    cell = train_row.split(" | ")[-1].rstrip(" |")
    counts = dict(group.rsplit(": ", 1) for group in cell.split(", "))
    assert counts["contains digits"] == "2"  # in data/train_es and dump/train_es: counted once
    assert counts == {"cannot decode audio (corrupt or unsupported format)": "2", "contains digits": "2",
                      "shorter than the minimum duration": "2"}
