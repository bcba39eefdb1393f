from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_s3net.bin import ssl_train

CONF = (
    Path(__file__).parents[3]
    / "egs2/commonvoice_s3net/ssl1/conf/pretrain_xlsr_tiny.yaml"
)
# utterances per language and set; lengths 0.4-1.0 s at 16 kHz
LANGS = {"fr": 4, "ky": 2}


def _data_dir(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True)
    scp, lens, langs = [], [], []
    for lang, count in LANGS.items():
        for i in range(count):
            utt = f"{lang}-spk-{i:02d}"
            num = int(rng.integers(6400, 16000))
            path = root / "data" / f"{utt}.flac"
            wav = 0.1 * rng.standard_normal(num).astype(np.float32)
            soundfile.write(path, wav, 16000)
            scp.append(f"{utt} {path}\n")
            lens.append(f"{utt} {num}\n")
            langs.append(f"{utt} {lang}\n")
    (root / "wav.scp").write_text("".join(sorted(scp)))
    (root / "utt2num_samples").write_text("".join(sorted(lens)))
    (root / "utt2lang").write_text("".join(sorted(langs)))
    return root


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ssl_train.main(["--help"])
    assert exit_info.value.code == 0
    assert "--lang_alpha" in capsys.readouterr().out


def test_pretrain_a_few_steps_of_xlsr_tiny(tmp_path):
    train = _data_dir(tmp_path / "train_multi", seed=0)
    dev = _data_dir(tmp_path / "dev_multi", seed=1)
    out = tmp_path / "exp"
    ssl_train.main(
        [
            "--config", str(CONF),
            "--output_dir", str(out),
            "--ngpu", "0",
            "--train_data_path_and_name_and_type", f"{train}/wav.scp,speech,sound",
            "--train_data_path_and_name_and_type", f"{train}/utt2lang,lang,text",
            "--train_shape_file", f"{train}/utt2num_samples",
            "--valid_data_path_and_name_and_type", f"{dev}/wav.scp,speech,sound",
            "--valid_data_path_and_name_and_type", f"{dev}/utt2lang,lang,text",
            "--valid_shape_file", f"{dev}/utt2num_samples",
        ]
    )
    assert (out / "config.yaml").exists()
    assert (out / "2epoch.pth").exists() or (out / "valid.loss.best.pth").exists()
    assert (out / "valid.loss.ave.pth").exists()
    assert (out / "checkpoint.pth").exists()
