"""Two-process DDP training on CPU (gloo) through ESPnet's distributed path.

Each rank is started as ESPnet starts one process per node (``--multiprocessing_distributed
false --dist_world_size 2 --dist_rank R``) and runs ``AbsTask.main_worker`` and
``Trainer.run`` with ``DistributedDataParallel``, the code that ``--ngpu N`` spawns per GPU.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from language_data_dirs import data_args as _data_args
from language_data_dirs import lang_data as _data
from language_data_dirs import start_model as _start

from espnet_s3net.masks.mask_file import SubnetMasks

pytestmark = pytest.mark.ddp

S3NET = """
model_conf:
    xlsr_conf:
        name: xlsr_tiny
        layer_drop: 0.5
        dropout: 0.1
        latent_temp: [1.0, 0.5, 0.99]
    mask_file: {masks}
batch_type: lang_numel
batch_bins: 32000
num_iters_per_epoch: 3
max_epoch: {epochs}
num_workers: 0
num_att_plot: 0
optim: adam
optim_conf:
    lr: 1.0e-2
grad_clip: 10.0
keep_nbest_models: 2
log_interval: 1
seed: 3
"""
ASR = """
frontend: s3net
frontend_conf:
    xlsr_conf:
        name: xlsr_tiny
        layer_drop: 0.5
    mask_file: {masks}
    layer_selection: weighted_sum
    freeze_feature_encoder: true
    freeze_transformer_steps: 2
encoder: passthrough
normalize: null
model_conf:
    ctc_weight: 1.0
batch_type: lang_numel
batch_bins: 32000
num_iters_per_epoch: 4
max_epoch: 1
num_workers: 0
num_att_plot: 0
optim: adam
optim_conf:
    lr: 1.0e-3
mask_source_check: false
seed: 0
"""


def _launch(module: str, args, tmp: Path, env=None):
    """Start both ranks; returns the Popen objects (output to tmp/rank<R>.log)."""
    init = f"file://{tmp}/ddp_init_{uuid.uuid4().hex}"
    procs = []
    for rank in range(2):
        log = open(tmp / f"rank{rank}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", module, *args, "--ngpu", "0", "--multiprocessing_distributed", "false",
             "--dist_backend", "gloo", "--dist_init_method", init, "--dist_world_size", "2",
             "--dist_rank", str(rank)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}))
    return procs


def _wait(procs, tmp: Path, timeout: float):
    """Exit codes and logs of both ranks; kills them when past ``timeout`` seconds."""
    deadline = time.time() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.time())))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            codes.append(None)
    return codes, [(tmp / f"rank{rank}.log").read_text() for rank in range(2)]


def _run(module, args, tmp, timeout=120.0):
    codes, logs = _wait(_launch(module, args, tmp), tmp, timeout)
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    return logs


def _s3net_args(tmp: Path, out: Path, epochs: int):
    conf = tmp / f"s3net_{epochs}.yaml"
    conf.write_text(S3NET.format(masks=tmp / "masks.pt", epochs=epochs))
    return ["--config", str(conf), "--output_dir", str(out), "--init_param", str(tmp / "init.pth"),
            *_data_args(tmp / "data")]


@pytest.fixture(scope="module")
def s3net(tmp_path_factory):
    """An uninterrupted 2-epoch S3Net run on 2 ranks."""
    tmp = tmp_path_factory.mktemp("ddp")
    _data(tmp / "data")
    masks = _start(tmp)
    logs = _run("espnet_s3net.bin.ssl_train", _s3net_args(tmp, tmp / "full", 2), tmp)
    return tmp, masks, logs


def _xlsr_state(path: Path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k[len("xlsr."):]: v for k, v in state.items() if k.startswith("xlsr.")}


def test_ranks_agree_and_stay_inside_the_masks(s3net):
    tmp, masks, logs = s3net
    # the trainer checks both every step (language) and every epoch (parameters)
    assert logs[0].count("parameters identical on all 2 ranks") == 2, logs[0][-3000:]
    assert "find_unused_parameters on" in logs[0] and "LayerDrop" in logs[0]
    start_state = _xlsr_state(tmp / "init.pth")
    final = _xlsr_state(tmp / "full" / "2epoch.pth")
    union = {n: masks.dense("es")[n] | masks.dense("fr")[n] for n in masks.names}
    for name in masks.names:
        assert torch.equal(final[name][~union[name]], start_state[name][~union[name]]), name
        assert not torch.equal(final[name][union[name]], start_state[name][union[name]]), name


def test_killed_and_resumed_run_matches_the_uninterrupted_one(s3net):
    tmp, _, _ = s3net
    out = tmp / "resumed"
    procs = _launch("espnet_s3net.bin.ssl_train", _s3net_args(tmp, out, 2), tmp)
    deadline = time.time() + 120
    # latest.pth: ESPnet links it once 1epoch.pth is completely written (a kill while it is
    # written leaves a truncated epoch file that the final averaging cannot read)
    while not (out / "latest.pth").is_symlink() and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    for proc in procs:  # a kill from outside, e.g. a preempted job
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (out / "1epoch.pth").exists()
    assert not (out / "2epoch.pth").exists()
    _run("espnet_s3net.bin.ssl_train", [*_s3net_args(tmp, out, 2), "--resume", "true"], tmp)
    full, resumed = _xlsr_state(tmp / "full" / "2epoch.pth"), _xlsr_state(out / "2epoch.pth")
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), name


def test_averaged_checkpoint_keeps_the_newest_update_counter(s3net):
    tmp, _, _ = s3net
    averaged = torch.load(tmp / "full" / "valid.loss.ave_2best.pth", weights_only=True)
    newest = torch.load(tmp / "full" / "2epoch.pth", weights_only=True)
    first = torch.load(tmp / "full" / "1epoch.pth", weights_only=True)
    counter = "xlsr.quantizer.num_updates"
    assert int(newest[counter]) == 6 and int(first[counter]) == 3
    assert int(averaged[counter]) == 6


def test_asr_fine_tuning_with_frozen_parts_and_layer_drop(tmp_path):
    d = _data(tmp_path / "data")
    _start(tmp_path)
    (tmp_path / "asr.yaml").write_text(ASR.format(masks=tmp_path / "masks.pt"))
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    logs = _run("espnet2.bin.asr_train",
                ["--config", str(tmp_path / "asr.yaml"), "--output_dir", str(tmp_path / "exp"),
                 "--token_type", "word", "--token_list", str(tmp_path / "tokens.txt"), *_data_args(d, text=True)],
                tmp_path)
    assert "parameters identical on all 2 ranks" in logs[0]
    assert "freeze_transformer_steps" in logs[0]


def test_asr_pathways_agree_across_ranks(tmp_path):
    """Round 1 at update 2, a regrow at 3 (gradient sinks all-reduced), round 2 at 4."""
    d = _data(tmp_path / "data")
    conf = ASR.replace("    mask_file: {masks}\n", "    pathways: {target_sparsity: 0.5, rounds: 2, "
                       "updates_per_round: 2, importance: taylor, regrow_every: 3, languages: [es, fr]}\n")
    (tmp_path / "asr.yaml").write_text(conf.replace("freeze_transformer_steps: 2", "freeze_transformer_steps: 0"))
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    logs = _run("espnet2.bin.asr_train",
                ["--config", str(tmp_path / "asr.yaml"), "--output_dir", str(tmp_path / "exp"),
                 "--token_type", "word", "--token_list", str(tmp_path / "tokens.txt"), *_data_args(d, text=True)],
                tmp_path)
    assert "parameters and pathway masks identical on all 2 ranks" in logs[0], logs[0][-3000:]
    final = SubnetMasks.load(str(tmp_path / "exp" / "pathways" / "masks.pt"))
    assert final.meta["sparsity"] == 0.5 and final.meta["updates"] == 4
    assert (tmp_path / "exp" / "pathways" / "masks_round1.pt").exists()


def test_nonfinite_loss_on_one_rank_stops_both(tmp_path):
    d = _data(tmp_path / "data", nan_short=True)
    _start(tmp_path)
    conf = tmp_path / "s3net.yaml"
    conf.write_text(S3NET.format(masks=tmp_path / "masks.pt", epochs=2))
    start = time.time()
    codes, logs = _wait(_launch("espnet_s3net.bin.ssl_train",
                                ["--config", str(conf), "--output_dir", str(tmp_path / "exp"),
                                 "--init_param", str(tmp_path / "init.pth"), *_data_args(d),
                                 "--max_nonfinite_steps", "1"], tmp_path), tmp_path, timeout=60)
    assert None not in codes and codes[0] != 0 and codes[1] != 0, logs
    assert time.time() - start < 60
    for log in logs:
        assert "NonFiniteLossError: 2 steps had a non-finite loss" in log, log[-3000:]
