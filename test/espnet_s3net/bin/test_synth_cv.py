import csv
import json
import os
import subprocess
import sys

import pytest
import soundfile as sf

from espnet_s3net.bin.synth_cv import main
from espnet_s3net.languages import XLSR10
from espnet_s3net.synth.corpus import CV_COLUMNS, train_seconds

SPLITS = ("validated", "train", "dev", "test")


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]


def tree_bytes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The whole default tiny corpus (all XLSR-10 languages, ~10 s on one core)."""
    out = tmp_path_factory.mktemp("cv") / "release"
    main(["--out", str(out), "--size", "tiny", "--seed", "7"])
    return out


def test_layout_headers_and_audio(corpus):
    assert sorted(p.name for p in corpus.iterdir() if p.is_dir()) == sorted(XLSR10)
    record = json.loads((corpus / "synth_cv.json").read_text())
    assert record["complete"] is True
    assert record["params"]["langs"] == XLSR10 and record["params"]["seed"] == 7
    for loc in XLSR10:
        tables = {}
        for split in SPLITS:
            header, rows = read_tsv(corpus / loc / f"{split}.tsv")
            assert header == CV_COLUMNS, (loc, split)
            assert rows, (loc, split)
            assert all(r["locale"] == loc and r["sentence"] for r in rows)
            tables[split] = rows
        paths = {split: {r["path"] for r in rows} for split, rows in tables.items()}
        union = paths["train"] | paths["dev"] | paths["test"]
        assert len(union) == sum(len(paths[s]) for s in ("train", "dev", "test"))
        extra = paths["validated"] - union
        assert union < paths["validated"] and extra
        spk = {split: {r["client_id"] for r in rows} for split, rows in tables.items()}
        extra_spk = {r["client_id"] for r in tables["validated"] if r["path"] in extra}
        assert extra_spk <= spk["train"]
        assert not spk["dev"] & spk["train"] and not spk["test"] & spk["train"]
        assert not spk["dev"] & spk["test"]
        assert len(spk["validated"]) >= 4
        assert len(tables["dev"]) == 2 and len(tables["test"]) == 2
        clips = sorted(os.listdir(corpus / loc / "clips"))
        assert clips == sorted(paths["validated"])
        assert all(c.startswith(f"common_voice_{loc}_") and c.endswith(".mp3") for c in clips)
        for split in ("train", "dev", "test"):
            info = sf.info(str(corpus / loc / "clips" / tables[split][0]["path"]))
            assert (info.samplerate, info.channels, info.format) == (48000, 1, "MP3")


def test_train_durations_follow_xlsr_hours(corpus):
    durations, longest = {}, 0.0
    for loc in XLSR10:
        _, rows = read_tsv(corpus / loc / "train.tsv")
        seconds = [sf.info(str(corpus / loc / "clips" / r["path"])).duration for r in rows]
        durations[loc] = sum(seconds)
        longest = max(longest, max(seconds))
        # generation stops at the first clip that reaches the target
        assert train_seconds("tiny", loc) <= durations[loc] + 0.01
        assert durations[loc] < train_seconds("tiny", loc) + max(seconds) + 0.01
    assert durations["fr"] > durations["es"] > durations["it"] > durations["sv-SE"]
    assert max(durations, key=durations.get) == "fr"
    # any two languages whose targets differ by more than one clip keep the hours order
    for a in XLSR10:
        for b in XLSR10:
            if train_seconds("tiny", a) - train_seconds("tiny", b) > longest:
                assert durations[a] > durations[b], (a, b, durations)
    # long tail: the smallest language gets under a fifth of the largest one
    assert min(durations.values()) < 0.2 * durations["fr"]


def test_deterministic_and_independent_of_other_languages(corpus, tmp_path):
    out = tmp_path / "again"
    main(["--out", str(out), "--size", "tiny", "--seed", "7", "--langs", "tr", "sv-SE", "--nj", "2"])
    for loc in ("sv-SE", "tr"):
        assert tree_bytes(out / loc) == tree_bytes(corpus / loc), loc
    other = tmp_path / "other_seed"
    main(["--out", str(other), "--size", "tiny", "--seed", "8", "--langs", "sv-SE"])
    assert read_tsv(other / "sv-SE" / "train.tsv") != read_tsv(corpus / "sv-SE" / "train.tsv")


def test_same_parameters_are_up_to_date(corpus):
    clip = next((corpus / "tt" / "clips").iterdir())
    before = clip.stat().st_mtime_ns
    main(["--out", str(corpus), "--size", "tiny", "--seed", "7"])
    assert clip.stat().st_mtime_ns == before


def test_unknown_language_is_refused(tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["--out", str(tmp_path / "x"), "--langs", "fr", "xx"])
    assert "'xx'" in str(err.value.code) and "sv-SE" in str(err.value.code)
    assert not (tmp_path / "x").exists()


def test_other_corpus_is_refused_unless_overwrite(corpus, tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["--out", str(corpus), "--size", "tiny", "--seed", "8", "--langs", "sv-SE"])
    assert "other parameters" in str(err.value.code) and "--overwrite" in str(err.value.code)
    foreign = tmp_path / "real_cv"
    (foreign / "sv-SE").mkdir(parents=True)
    (foreign / "sv-SE" / "validated.tsv").write_text("client_id\tpath\n")
    with pytest.raises(SystemExit) as err:
        main(["--out", str(foreign), "--langs", "sv-SE"])
    assert "not written by synth_cv (sv-SE)" in str(err.value.code)
    main(["--out", str(foreign), "--langs", "sv-SE", "--overwrite"])
    header, rows = read_tsv(foreign / "sv-SE" / "validated.tsv")
    assert header == CV_COLUMNS and rows
    assert json.loads((foreign / "synth_cv.json").read_text())["complete"] is True


def test_command_line_help_and_exit_code(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.synth_cv", "--help"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "--overwrite" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "espnet_s3net.bin.synth_cv",
                          "--out", str(tmp_path / "y"), "--langs", "xx"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "supported" in bad.stderr
