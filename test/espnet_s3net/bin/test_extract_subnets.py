"""The extraction entry point (recipe stage 7) from a public checkpoint (``--init``) and its
argument checks."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from shared_fixtures import hf_tiny

from espnet_s3net.bin import extract_subnets
from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
from espnet_s3net.models.pretrain_model import XLSRPretrainModel

transformers = pytest.importorskip("transformers")

CONFIG = "method: te\nscope: layerwise\nsparsity: 0.5\nseed: 0\nbatch_bins: 32000\nbatches: 2\n"


def _data(root):
    """dump dirs train_<lang>/ (wav.scp, utt2num_samples) of a few noise clips each."""
    rng = np.random.default_rng(0)
    for lang in ("es", "fr"):
        d = root / f"train_{lang}"
        d.mkdir(parents=True)
        wav, num = [], []
        for i in range(3):
            audio = (0.1 * rng.standard_normal(8000 + 1000 * i)).astype(np.float32)
            sf.write(d / f"{lang}-{i}.flac", audio, 16000)
            wav.append(f"{lang}-{i} {d / f'{lang}-{i}.flac'}\n")
            num.append(f"{lang}-{i} {len(audio)}\n")
        (d / "wav.scp").write_text("".join(wav))
        (d / "utt2num_samples").write_text("".join(num))


def test_extraction_from_a_public_checkpoint_names_it(tmp_path, caplog):
    hf = hf_tiny(tmp_path / "hf")
    _data(tmp_path / "dump")
    (tmp_path / "extract_te.yaml").write_text(CONFIG)
    out = tmp_path / "exp" / "subnets_te" / "masks.pt"
    with caplog.at_level("INFO"):
        extract_subnets.main(["--config", str(tmp_path / "extract_te.yaml"), "--init", str(hf),
                              "--data_root", str(tmp_path / "dump"), "--langs", "es fr", "--output", str(out)])
    masks = SubnetMasks.load(str(out))
    assert masks.languages == ["es", "fr"] and masks.meta["method"] == "te"
    assert masks.meta["source_model"] == os.path.abspath(hf)
    # extracted from the checkpoint's weights: S3Net training started with --init passes the source check
    xlsr = XLSRPretrainModel(init_checkpoint=str(hf)).xlsr
    assert masks.meta["source_fingerprint"] == parameter_fingerprint(xlsr, masks.names)
    assert "te extraction: 2/2 (100%)" in caplog.text


@pytest.mark.parametrize("args, message", [
    (["--init", "hf", "--model_file", "m.pth"], "not allowed with argument"),
    (["--model_file", "m.pth"], "--model_file needs --model_config"),
    (["--init", "hf", "--model_config", "c.yaml"], "--model_config goes with --model_file"),
    ([], "one of the arguments --model_file --init is required"),
])
def test_the_model_is_a_checkpoint_of_ours_or_a_public_one(args, message, capsys):
    with pytest.raises(SystemExit) as err:
        extract_subnets.main(["--config", "c.yaml", "--data_root", "d", "--langs", "es", "--output", "o", *args])
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_any_language_id_with_data_works_and_missing_data_is_named(tmp_path):
    hf = hf_tiny(tmp_path / "hf")
    _data(tmp_path / "dump")
    shutil.copytree(tmp_path / "dump" / "train_fr", tmp_path / "dump" / "train_xty")  # ISO 639-3 (ML-SUPERB)
    (tmp_path / "extract_te.yaml").write_text(CONFIG)
    common = ["--config", str(tmp_path / "extract_te.yaml"), "--init", str(hf), "--data_root", str(tmp_path / "dump")]
    with pytest.raises(SystemExit, match=r"no data dir .*train_<lang> for language\(s\) zz"):
        extract_subnets.main([*common, "--langs", "xty zz", "--output", str(tmp_path / "bad" / "masks.pt")])
    extract_subnets.main([*common, "--langs", "xty", "--output", str(tmp_path / "ok" / "masks.pt")])
    assert SubnetMasks.load(str(tmp_path / "ok" / "masks.pt")).languages == ["xty"]
