"""ASR pathways through ESPnet's own ``espnet2.bin.asr_train`` (``frontend_conf.pathways``,
xlsr_tiny, CTC): masks pruned to the target while training, one mask file per round,
decoding with the final masks from the checkpoint, resume mid-schedule, bad input."""

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from language_data_dirs import LANGS, asr_train_command, lang_data, train_asr

from espnet_s3net.asr.frontend.s3net import S3NetFrontend
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.masks.pathways import kept_after_round
from espnet_s3net.masks.report import write_report
from espnet_s3net.train.masked_trainer import start_pathways

PATHWAYS = ("{target_sparsity: 0.5, rounds: 2, updates_per_round: 2, importance: taylor, regrow_every: 5, "
            "languages: [es, fr]}")
# 2 epochs of 3 updates: round 1 ends at update 2, round 2 at 4 (its Taylor scores from updates 3
# and 4, across the epoch's checkpoint), a regrow at 5
CTC = """
frontend: s3net
frontend_conf:
    xlsr_conf:
        name: xlsr_tiny
    pathways: {pathways}
encoder: passthrough
normalize: null
model_conf:
    ctc_weight: 1.0
batch_type: lang_numel
batch_bins: 32000
num_iters_per_epoch: 3
max_epoch: 2
keep_nbest_models: 2
num_workers: 0
num_att_plot: 0
optim: adam
optim_conf:
    lr: 1.0e-3
seed: 0
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An uninterrupted pathways run of ``python -m espnet2.bin.asr_train`` (dir ``exp``)."""
    tmp = tmp_path_factory.mktemp("pathways")
    result = train_asr(tmp, CTC.format(pathways=PATHWAYS))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp


def _assert_rounds_reach_the_target(out: Path):
    """Every round's mask file in ``out`` (and ``masks.pt``) keeps exactly the weights its round allows."""
    assert sorted(p.name for p in out.iterdir()) == ["masks.pt", "masks_round1.pt", "masks_round2.pt",
                                                     "scores.rank0.pth"]
    for name, r in (("masks_round1.pt", 1), ("masks_round2.pt", 2), ("masks.pt", 2)):
        masks = SubnetMasks.load(str(out / name))
        assert masks.languages == list(LANGS) and masks.meta["round"] == r
        for lang in LANGS:
            kept = [int(m.sum()) for m in masks.dense(lang).values()]
            assert kept == [kept_after_round(n, 0.5, r, 2) for n in map(torch.Size.numel, masks.shapes.values())]


def test_final_masks_reach_the_target_exactly_and_each_round_is_saved(trained):
    out = trained / "exp" / "pathways"
    _assert_rounds_reach_the_target(out)
    final = SubnetMasks.load(str(out / "masks.pt"))
    assert final.meta["sparsity"] == 0.5 and final.meta["updates"] == 6
    assert final.meta["method"] == "dynamic_pathways"
    assert final.fingerprint != SubnetMasks.load(str(out / "masks_round2.pt")).fingerprint  # the regrow at 5
    with open(write_report(str(out / "masks.pt")), encoding="utf-8") as f:
        assert "method dynamic_pathways, scope layerwise" in f.read()


@pytest.mark.gpu
def test_pathways_on_gpu(tmp_path):
    """The same schedule with ``--ngpu 1``: Taylor scores, pruning rounds and the regrow on the
    GPU; every round's masks at the target, the regrow at constant sparsity."""
    if not torch.cuda.is_available():
        pytest.fail("no CUDA device: run the gpu tests on a machine with one")
    result = train_asr(tmp_path, CTC.format(pathways=PATHWAYS), "--ngpu", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "exp" / "pathways"
    _assert_rounds_reach_the_target(out)
    final, round2 = (SubnetMasks.load(str(out / name)) for name in ("masks.pt", "masks_round2.pt"))
    assert final.meta["updates"] == 6 and final.fingerprint != round2.fingerprint  # the regrow at 5


def test_decoding_uses_the_final_masks_without_a_mask_file(trained):
    from espnet2.bin.asr_inference import Speech2Text

    (trained / "masks.pt").unlink(missing_ok=True)  # train_asr's random masks: not used
    final = SubnetMasks.load(str(trained / "exp" / "pathways" / "masks.pt"))
    for model_file in ("2epoch.pth", "valid.loss.ave.pth"):  # the averaged checkpoint keeps the newest masks
        speech2text = Speech2Text(str(trained / "exp" / "config.yaml"), str(trained / "exp" / model_file))
        masker = speech2text.asr_model.frontend.xlsr.language_masker
        assert masker.masks.fingerprint == final.fingerprint, model_file
    result = subprocess.run(
        [sys.executable, "-m", "espnet2.bin.asr_inference", "--asr_train_config", "exp/config.yaml",
         "--asr_model_file", "exp/valid.loss.ave.pth", "--data_path_and_name_and_type", "train/wav.scp,speech,sound",
         "--data_path_and_name_and_type", "train/utt2lang,lang,text", "--output_dir", "decode", "--beam_size", "1",
         "--ctc_weight", "1.0", "--maxlenratio", "0.5"], cwd=trained, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((trained / "decode" / "1best_recog" / "token").read_text().splitlines()) == 4


def test_killed_and_resumed_run_ends_with_the_same_masks(trained):
    """Killed after epoch 1's checkpoint (update 3: round 1 done, round 2's scores half
    accumulated), resumed with ``--resume true``."""
    proc = subprocess.Popen(asr_train_command("resumed"), cwd=trained, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    epoch1, latest = trained / "resumed" / "1epoch.pth", trained / "resumed" / "latest.pth"
    deadline = time.time() + 120
    # latest.pth: ESPnet links it once 1epoch.pth is completely written
    while not latest.is_symlink() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a kill from outside, e.g. a preempted job
    proc.wait()
    assert epoch1.exists() and not (trained / "resumed" / "2epoch.pth").exists()
    saved = torch.load(epoch1, weights_only=True)
    assert int(saved["frontend.xlsr.pathway_schedule.updates"]) == 3
    # the weight-sized scores are beside the checkpoint, not in it
    assert not [k for k in saved if k.endswith(("pathway_schedule.importance", "pathway_schedule.grow"))]
    scores = torch.load(trained / "resumed" / "pathways" / "scores.rank0.pth", weights_only=True)
    assert int(scores["updates"]) == 3 and scores["importance"].any()
    result = subprocess.run(asr_train_command("resumed", "--resume", "true"), cwd=trained, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("masks_round2.pt", "masks.pt"):
        full = SubnetMasks.load(str(trained / "exp" / "pathways" / name))
        resumed = SubnetMasks.load(str(trained / "resumed" / "pathways" / name))
        assert resumed.fingerprint == full.fingerprint, name
        assert resumed.meta["source_fingerprint"] == full.meta["source_fingerprint"], name  # the same weights


def test_language_without_data_stops_before_training(tmp_path):
    result = train_asr(tmp_path, CTC.format(pathways=PATHWAYS.replace("[es, fr]", "[es, fr, it]")))
    assert result.returncode != 0
    assert "ValueError: pathway language(s) it have no training data" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "exp" / "checkpoint.pth").exists()


@pytest.mark.parametrize("pathways,message", [
    ({"target_sparsity": 1.0, "languages": ["es"]}, r"target_sparsity must be in \[0, 1\), got 1.0"),
    ({"target_sparsity": -0.2, "languages": ["es"]}, r"target_sparsity must be in \[0, 1\), got -0.2"),
    ({"target_sparsity": 0.5}, "pathways without mask_file start every language's pathway dense: list"),
])
def test_bad_pathways_config(pathways, message):
    with pytest.raises(ValueError, match=message):
        S3NetFrontend(xlsr_conf={"name": "xlsr_tiny"}, pathways=pathways)


class _Batches:
    """A train iterator factory whose epochs have ``n`` batches."""

    def __init__(self, n):
        self.n = n

    def build_iter(self, epoch):
        return range(self.n)


def _options(tmp: Path, **kwargs):
    data = lang_data(tmp / "data")
    return SimpleNamespace(**{"num_iters_per_epoch": None, "max_epoch": 2, "accum_grad": 2, "output_dir": str(tmp),
                              "train_data_path_and_name_and_type": [(f"{data}/utt2lang", "lang", "text")],
                              **kwargs})


def test_start_pathways_checks_the_run_and_sets_up_ranks(tmp_path):
    frontend = S3NetFrontend(xlsr_conf={"name": "xlsr_tiny"}, pathways={
        "target_sparsity": 0.5, "rounds": 2, "updates_per_round": 3, "regrow_every": 2, "languages": list(LANGS)})
    schedule = frontend.xlsr.pathway_schedule
    rank0, rank1 = SimpleNamespace(distributed=True, dist_rank=0), SimpleNamespace(distributed=True, dist_rank=1)
    # 2 epochs × (7 batches // accum_grad 2) = 6 updates: enough; 5 per epoch, 4 updates: not
    start_pathways(frontend, schedule, _Batches(7), _options(tmp_path / "a"), rank1)
    assert schedule.save_dir is None  # rank 1 writes no mask files
    ignored = set(frontend._ddp_params_and_buffers_to_ignore)
    assert {"xlsr.pathway_schedule.bits", "xlsr.pathway_schedule.grow", "xlsr.pathway_schedule.sink"} <= ignored
    start_pathways(frontend, schedule, _Batches(7), _options(tmp_path / "b"), rank0)
    assert schedule.save_dir == str(tmp_path / "b" / "pathways") and Path(schedule.save_dir).is_dir()
    with pytest.raises(ValueError, match="2 × 3 = 6 updates, but training has 4"):
        start_pathways(frontend, schedule, _Batches(5), _options(tmp_path / "c"), rank0)
    with pytest.raises(ValueError, match="2 × 3 = 6 updates, but training has 2"):  # num_iters_per_epoch first
        start_pathways(frontend, schedule, _Batches(7), _options(tmp_path / "d", num_iters_per_epoch=2), rank0)
    with pytest.raises(ValueError, match="pathways are learned per language: add --train_data_path_and_name"):
        start_pathways(frontend, schedule, _Batches(7), _options(tmp_path / "e", train_data_path_and_name_and_type=[]),
                       rank0)


def test_start_pathways_takes_the_rewind_point(tmp_path):
    """With rewind, the weights at the start of training (e.g. after --init_param), not at
    construction; the copy stays out of DDP's buffer broadcast."""
    frontend = S3NetFrontend(xlsr_conf={"name": "xlsr_tiny"}, pathways={
        "target_sparsity": 0.5, "rounds": 2, "updates_per_round": 2, "rewind": True, "languages": list(LANGS)})
    schedule = frontend.xlsr.pathway_schedule
    params = schedule.masker.params
    with torch.no_grad():
        params[0].add_(1.0)
    assert not torch.equal(schedule.rewind_point[:params[0].numel()], params[0].reshape(-1))  # construction's
    start_pathways(frontend, schedule, _Batches(7), _options(tmp_path), SimpleNamespace(distributed=True, dist_rank=0))
    assert torch.equal(schedule.rewind_point, torch.cat([p.detach().reshape(-1) for p in params]))
    assert "xlsr.pathway_schedule.rewind_point" in frontend._ddp_params_and_buffers_to_ignore
