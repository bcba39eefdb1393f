"""The trainer's language bookkeeping, mask checks and non-finite loss handling."""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from espnet.nets.pytorch_backend.nets_utils import pad_list

from espnet_s3net.masks.language_masker import attach_masker
from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
from espnet_s3net.train.language_data import encode_language
from espnet_s3net.train.masked_trainer import LanguageBatches, LanguageMaskTrainer


def _tally():
    return defaultdict(lambda: defaultdict(float))


def _batch(*langs):
    """An ESPnet batch carrying the language input of each utterance (as collated)."""
    codes = [torch.from_numpy(encode_language(lang)) for lang in langs]
    return {"speech": torch.zeros(len(langs), 4), "lang": pad_list(codes, -1),
            "lang_lengths": torch.tensor([len(c) for c in codes])}


def test_mixed_language_batch_names_the_languages():
    batches = LanguageBatches([(["u1", "u2"], _batch("es", "fr"))], [], _tally())
    with pytest.raises(ValueError, match="a batch mixes languages es, fr"):
        list(batches)


def test_masked_model_without_language_input_names_the_option():
    model = torch.nn.Linear(3, 3)
    masker = attach_masker(model, SubnetMasks.from_dense({"es": {"weight": torch.ones(3, 3, dtype=torch.bool)}}, {}))
    with pytest.raises(ValueError, match="utt2lang,lang,text"):
        list(LanguageBatches([(["u3"], {"speech": torch.zeros(1, 4)})], [masker], _tally()))


def test_batches_activate_the_language_and_count_steps():
    model = torch.nn.Linear(3, 3)
    names = ["weight"]
    masks = SubnetMasks.from_dense({lang: {"weight": torch.rand(3, 3) < 0.5} for lang in ("es", "fr")},
                                   {"source_fingerprint": parameter_fingerprint(model, names)})
    masker = attach_masker(model, masks)
    tally = _tally()
    seen = []
    batches = [(["a"], _batch("es")), (["b"], _batch("fr")), (["c", "d"], _batch("fr", "fr"))]
    for _, batch in LanguageBatches(batches, [masker], tally):
        seen.append(masker.active)
        assert set(batch) == {"speech"}  # the model never sees the language input
    assert seen == ["es", "fr", "fr"] and tally["fr"]["steps"] == 2 and tally["es"]["steps"] == 1


def _options(tmp_path, check=True):
    return SimpleNamespace(mask_source_check=check, output_dir=str(tmp_path))


def test_masks_from_other_weights_are_refused(tmp_path):
    model = torch.nn.Linear(3, 3)
    masks = SubnetMasks.from_dense({"es": {"weight": torch.ones(3, 3, dtype=torch.bool)}},
                                   {"source_fingerprint": "0" * 64})
    masker = attach_masker(model, masks)
    with pytest.raises(ValueError, match="not those the masks were extracted from"):
        LanguageMaskTrainer._check_masks([masker], _options(tmp_path))
    LanguageMaskTrainer._check_masks([masker], _options(tmp_path, check=False))  # fine-tuning
    assert (tmp_path / "masks.fingerprint").read_text().strip() == masks.fingerprint
    other = SubnetMasks.from_dense({"es": {"weight": torch.zeros(3, 3, dtype=torch.bool)}}, {})
    with pytest.raises(ValueError, match="refusing to resume this experiment with different masks"):
        LanguageMaskTrainer._check_masks([attach_masker(torch.nn.Linear(3, 3), other)], _options(tmp_path, check=False))



def test_only_the_writing_rank_records_the_masks(tmp_path):
    """A DDP rank other than 0 checks the record but never writes it (two ranks rewriting the
    file at once let one read it empty and refuse a correct resume)."""
    masks = SubnetMasks.from_dense({"es": {"weight": torch.ones(3, 3, dtype=torch.bool)}}, {})
    masker = attach_masker(torch.nn.Linear(3, 3), masks)
    LanguageMaskTrainer._check_masks([masker], _options(tmp_path, check=False), write_record=False)
    assert not (tmp_path / "masks.fingerprint").exists()
    LanguageMaskTrainer._check_masks([masker], _options(tmp_path, check=False))
    assert [p.name for p in tmp_path.iterdir()] == ["masks.fingerprint"]
    other = SubnetMasks.from_dense({"es": {"weight": torch.zeros(3, 3, dtype=torch.bool)}}, {})
    with pytest.raises(ValueError, match="different masks"):
        LanguageMaskTrainer._check_masks([attach_masker(torch.nn.Linear(3, 3), other)],
                                         _options(tmp_path, check=False), write_record=False)

def test_nonfinite_losses_are_counted_and_stop_training():
    model = torch.nn.Identity()
    batches = LanguageBatches([], [], _tally())
    batches.current = "es"
    counter = {"count": 0}
    handle = LanguageMaskTrainer._loss_hook(model, batches, 2, counter)
    stats = {}
    model((torch.tensor(1.5), stats, 1))
    assert float(stats["loss_es"]) == 1.5  # ESPnet's reporter gets the loss per language
    model((torch.tensor(float("nan")), {}, 1))
    model((torch.tensor(float("inf")), {}, 1))
    assert counter["count"] == 2
    with pytest.raises(RuntimeError, match="3 steps had a non-finite loss"):
        model((torch.tensor(float("nan")), {}, 1))
    handle.remove()


S3NET_STEPS = """
model_conf:
    xlsr_conf:
        name: xlsr_tiny
    mask_file: {masks}
batch_type: lang_numel
batch_bins: 32000
num_iters_per_epoch: 8
max_epoch: 1
num_workers: 0
num_att_plot: 0
optim: adam
optim_conf:
    lr: 1.0e-2
keep_nbest_models: 1
seed: 1
"""


@pytest.mark.parametrize("ngpu", ["0", pytest.param("1", marks=pytest.mark.gpu)])
def test_training_steps_touch_only_the_batch_language(tmp_path, monkeypatch, ngpu):
    """Through ESPnet's training loop (on CPU, or ``--ngpu 1``): every training batch activates
    its language, and a step of language l changes no weight outside m^l (Adam's momentum
    from the other language's steps included)."""
    from language_data_dirs import data_args, lang_data, start_model

    from espnet_s3net.bin import ssl_train
    from espnet_s3net.masks.language_masker import LanguageMasker

    masks = start_model(tmp_path)
    (tmp_path / "conf.yaml").write_text(S3NET_STEPS.format(masks=tmp_path / "masks.pt"))
    snapshots = []  # (language, prunable weights) before each training batch
    activate = LanguageMasker.activate

    def recording_activate(self, lang):
        if self.module.training:
            snapshots.append((lang, [p.detach().cpu().clone() for p in self.params]))
        activate(self, lang)

    monkeypatch.setattr(LanguageMasker, "activate", recording_activate)
    if ngpu == "1" and not torch.cuda.is_available():
        pytest.fail("no CUDA device: run the gpu tests on a machine with one")
    ssl_train.main(["--config", str(tmp_path / "conf.yaml"), "--output_dir", str(tmp_path / "exp"), "--ngpu", ngpu,
                    "--init_param", str(tmp_path / "init.pth"), *data_args(lang_data(tmp_path / "data"))])
    assert len(snapshots) == 8
    assert {lang for lang, _ in snapshots} == {"es", "fr"}
    # ESPnet's reporter summarises the loss per language (and writes it to TensorBoard)
    checkpoint = torch.load(tmp_path / "exp" / "checkpoint.pth", weights_only=False, map_location="cpu")
    epoch = checkpoint["reporter"]["stats"][1]
    assert {"loss_es", "loss_fr", "loss_contrastive", "temp", "code_ppl", "acc"} <= set(epoch["train"])
    assert {"loss_es", "loss_fr"} <= set(epoch["valid"])
    final = torch.load(tmp_path / "exp" / "1epoch.pth", weights_only=True, map_location="cpu")
    after = [(None, [final[f"xlsr.{n}"] for n in masks.names])]
    for (lang, before), (_, later) in zip(snapshots, snapshots[1:] + after):
        dense = masks.dense(lang)
        for name, old, new in zip(masks.names, before, later):
            assert torch.equal(new[~dense[name]], old[~dense[name]]), (lang, name)
            assert not torch.equal(new[dense[name]], old[dense[name]]), (lang, name)


def test_schedules_advance_once_per_optimizer_update(tmp_path):
    """accum_grad 4 over 8 training batches: 2 optimizer updates, so the Gumbel
    temperature decays exactly twice (validation forwards do not count)."""
    from language_data_dirs import data_args, lang_data

    from espnet_s3net.bin import ssl_train

    conf = S3NET_STEPS.replace("    mask_file: {masks}\n", "").replace("num_iters_per_epoch: 8",
                                                                        "num_iters_per_epoch: 8\naccum_grad: 4")
    (tmp_path / "conf.yaml").write_text(conf)
    ssl_train.main(["--config", str(tmp_path / "conf.yaml"), "--output_dir", str(tmp_path / "exp"), "--ngpu", "0",
                    *data_args(lang_data(tmp_path / "data"))])
    state = torch.load(tmp_path / "exp" / "1epoch.pth", weights_only=True)
    assert int(state["xlsr.quantizer.num_updates"]) == 2


def test_configs_without_s3net_parts_train_with_espnet_s_trainer():
    from espnet_s3net.asr.frontend.s3net import S3NetFrontend
    from espnet_s3net.train.masked_trainer import trains_languages

    plain = SimpleNamespace(train_data_path_and_name_and_type=[("wav.scp", "speech", "sound")])
    with_lang = SimpleNamespace(train_data_path_and_name_and_type=[("wav.scp", "speech", "sound"),
                                                                   ("utt2lang", "lang", "text")])
    assert not trains_languages(torch.nn.Linear(2, 2), plain)  # e.g. any ESPnet ASR recipe
    assert trains_languages(torch.nn.Linear(2, 2), with_lang)  # the language sampler / loss per language
    assert trains_languages(S3NetFrontend(xlsr_conf={"name": "xlsr_tiny"}), plain)  # schedules, DDP reasons


@pytest.mark.parametrize("damage", ["truncated", "missing", "none"])
def test_resume_rewrites_an_epoch_file_a_kill_left_broken(tmp_path, damage):
    from espnet2.train.reporter import Reporter

    torch.manual_seed(0)
    model = torch.nn.Linear(40, 40)
    reporter = Reporter()
    reporter.set_epoch(2)
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"model": model.state_dict(), "reporter": reporter.state_dict(), "optimizers": [],
                "schedulers": [], "scaler": None}, checkpoint)
    epoch_file = tmp_path / "2epoch.pth"
    torch.save(model.state_dict(), epoch_file)
    (tmp_path / "latest.pth").symlink_to("1epoch.pth")  # not yet moved on when the kill came
    if damage == "truncated":
        epoch_file.write_bytes(epoch_file.read_bytes()[:3000])
    elif damage == "missing":
        epoch_file.unlink()
    mtime = epoch_file.stat().st_mtime_ns if epoch_file.exists() else None
    resumed, resumed_reporter = torch.nn.Linear(40, 40), Reporter()
    LanguageMaskTrainer.resume(checkpoint, resumed, resumed_reporter, [], [], None)
    assert resumed_reporter.get_epoch() == 2
    state = torch.load(epoch_file, weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    if damage == "none":
        assert epoch_file.stat().st_mtime_ns == mtime
        assert str((tmp_path / "latest.pth").readlink()) == "1epoch.pth"
    else:
        assert str((tmp_path / "latest.pth").readlink()) == "2epoch.pth"
