"""DistilXLSR through ``python -m espnet_s3net.bin.distill_train``: an ESPnet training run,
``--resume``, DDP (2 CPU ranks), and the experiment read downstream as a pre-trained XLSR model."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from language_data_dirs import data_args, lang_data

from espnet_s3net.bin import distill_train
from espnet_s3net.models.pretrain_model import XLSRPretrainModel

CONF = Path(__file__).parents[3] / "egs2/commonvoice_s3net/ssl1/conf/distill_xlsr_tiny.yaml"
TEACHER = {"name": "xlsr_tiny", "num_layers": 4}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A directory with data ``data/`` (es, fr) and a 4-layer teacher experiment
    (``teacher/config.yaml`` + ``teacher/model.pth``, as our pre-training writes them)."""
    tmp = tmp_path_factory.mktemp("distill")
    lang_data(tmp / "data")
    (tmp / "teacher").mkdir()
    torch.manual_seed(0)
    torch.save(XLSRPretrainModel(TEACHER).state_dict(), tmp / "teacher" / "model.pth")
    (tmp / "teacher" / "config.yaml").write_text(yaml.safe_dump({"model_conf": {"xlsr_conf": TEACHER}}))
    return tmp


def _args(tmp: Path, out: Path, epochs: int, *more: str):
    return ["--config", str(CONF), "--output_dir", str(out), "--max_epoch", str(epochs),
            "--num_iters_per_epoch", "2", "--batch_bins", "32000",
            "--teacher_conf", f"ssl_config={tmp}/teacher/config.yaml",
            "--teacher_conf", f"ssl_model_file={tmp}/teacher/model.pth", *data_args(tmp / "data"), *more]


def _xlsr_state(path: Path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith("xlsr.")}


def test_resumed_run_matches_the_uninterrupted_one_and_is_read_as_a_pretrained_model(teacher, capsys):
    tmp = teacher
    distill_train.main(_args(tmp, tmp / "full", 2, "--ngpu", "0"))
    distill_train.main(_args(tmp, tmp / "resumed", 1, "--ngpu", "0"))
    assert (tmp / "resumed" / "1epoch.pth").exists() and not (tmp / "resumed" / "2epoch.pth").exists()
    distill_train.main(_args(tmp, tmp / "resumed", 2, "--ngpu", "0", "--resume", "true"))
    full, resumed = _xlsr_state(tmp / "full" / "2epoch.pth"), _xlsr_state(tmp / "resumed" / "2epoch.pth")
    assert full.keys() == resumed.keys() and not any(k.startswith("teacher") for k in full)
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
    start = torch.load(tmp / "teacher" / "model.pth", weights_only=True)
    assert not torch.equal(full["xlsr.encoder.transformer.layers.1.feed_forward.output_dense.weight"],
                           start["xlsr.encoder.transformer.layers.3.feed_forward.output_dense.weight"])  # trained

    out = tmp / "full"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model_conf"]["xlsr_conf"]["num_layers"] == 2 and set(config["model_conf"]) == {"xlsr_conf"}
    assert config["distill_conf"]["layer_map"] == [2, 4] and config["teacher_conf"]["ssl_model_file"]
    # the s3net frontend (fine-tuning, stage 9), extraction and count_params read the student
    from espnet_s3net.asr.frontend.s3net import S3NetFrontend
    from espnet_s3net.bin import count_params
    from espnet_s3net.masks.extraction import load_source_model

    averaged = _xlsr_state(out / "valid.loss.ave.pth")
    frontend = S3NetFrontend(ssl_config=str(out / "config.yaml"), ssl_model_file=str(out / "valid.loss.ave.pth"))
    for name, value in frontend.xlsr.encoder.state_dict().items():
        assert torch.equal(value, averaged[f"xlsr.encoder.{name}"]), name
    model, _ = load_source_model(torch.device("cpu"), str(out / "config.yaml"), str(out / "valid.loss.ave.pth"))
    assert model.xlsr.cfg.num_layers == 2
    for name, value in model.state_dict().items():
        assert torch.equal(value, averaged[name]), name
    capsys.readouterr()
    count_params.main(["--ssl_config", str(out / "config.yaml"), "--ssl_model_file", str(out / "valid.loss.ave.pth")])
    assert int(capsys.readouterr().out.split()[-1]) == sum(p.numel() for p in model.xlsr.parameters())


@pytest.mark.gpu
def test_distillation_on_gpu(teacher):
    """``--ngpu 1``: the frozen teacher and the student on the GPU; the student trains and its
    model file is read on the CPU as a pre-trained XLSR model."""
    from espnet_s3net.masks.extraction import load_source_model

    if not torch.cuda.is_available():
        pytest.fail("no CUDA device: run the gpu tests on a machine with one")
    out = teacher / "gpu"
    distill_train.main(_args(teacher, out, 1, "--ngpu", "1"))
    trained = torch.load(out / "1epoch.pth", map_location="cpu", weights_only=True)
    assert not any(k.startswith("teacher") for k in trained)
    start = torch.load(teacher / "teacher" / "model.pth", weights_only=True)
    assert not torch.equal(trained["xlsr.encoder.transformer.layers.1.feed_forward.output_dense.weight"],
                           start["xlsr.encoder.transformer.layers.3.feed_forward.output_dense.weight"])
    model, _ = load_source_model(torch.device("cpu"), str(out / "config.yaml"), str(out / "1epoch.pth"))
    for name, value in model.state_dict().items():
        assert torch.equal(value, trained[name]), name


def test_unknown_student_options_are_refused(teacher):
    with pytest.raises(ValueError, match="model_conf \\(the student\\) takes only xlsr_conf"):
        distill_train.main(_args(teacher, teacher / "bad", 1, "--ngpu", "0", "--model_conf",
                                 "mask_file=masks.pt"))


@pytest.mark.ddp
def test_two_rank_ddp_run_through_espnets_distributed_path(teacher):
    """Two CPU ranks (gloo), started as ESPnet starts one process per node; both end with
    the same student."""
    tmp = teacher
    out = tmp / "ddp"
    init = f"file://{tmp}/ddp_init_{uuid.uuid4().hex}"
    procs = []
    for rank in range(2):
        log = open(tmp / f"ddp_rank{rank}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "espnet_s3net.bin.distill_train", *_args(tmp, out, 1), "--ngpu", "0",
             "--multiprocessing_distributed", "false", "--dist_backend", "gloo", "--dist_init_method", init,
             "--dist_world_size", "2", "--dist_rank", str(rank)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}))
    codes = [proc.wait(timeout=300) for proc in procs]
    logs = [(tmp / f"ddp_rank{rank}.log").read_text() for rank in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    assert "parameters identical on all 2 ranks" in logs[0], logs[0][-3000:]
    assert (out / "valid.loss.ave.pth").exists()
