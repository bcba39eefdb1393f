"""RESULTS.md's pathways table (make_results --pathways_table) from small fake experiment dirs:
rates as in the multi-seed tables, sparsity and overlap computed from each experiment's masks
(learned: ``pathways/masks.pt``; fixed: ``config.yaml``'s ``frontend_conf.mask_file``; none: dense)."""

import os

import pytest
import torch
import yaml
from scored_dirs import reference, scored_experiment

from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.scoring.results import experiment_masks, mask_statistics, multi_seed_report

LANGS = ["es", "sv-SE"]
# ten utterances of ten tokens per language: r errors are a rate of r %
REF = reference(LANGS)
SHAPES = {f"encoder.layers.{i}.fc1.weight": (2, 4) for i in range(2)}


def _scored(exp_dir, errors_by_lang, frontend_conf):
    """An experiment dir as stages 9-11 leave it: config.yaml and decode_test_<lang>/score_wer."""
    scored_experiment(exp_dir, errors_by_lang, REF)
    (exp_dir / "config.yaml").write_text(yaml.safe_dump({"frontend_conf": frontend_conf}))
    return str(exp_dir)


def _masks(path, kept, **meta):
    """A mask file whose language ``lang`` keeps the flat positions ``kept[lang]`` (0..7) of every tensor."""
    dense = {lang: {name: torch.isin(torch.arange(8), torch.tensor(list(keep))).view(shape)
                    for name, shape in SHAPES.items()} for lang, keep in kept.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    SubnetMasks.from_dense(dense, meta).save(str(path))
    return path


def _learned(exp_dir, kept, importance="taylor", regrow_every=0):
    _masks(exp_dir / "pathways" / "masks.pt", kept, method="dynamic_pathways" if regrow_every else "pathways",
           config={"importance": importance, "regrow_every": regrow_every})


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """The five arms of the recipe's pathways experiment; pathways with two seeds."""
    monkeypatch.chdir(tmp_path)  # the recipe dir: recorded paths are relative to it
    schedule = {"pathways": {"target_sparsity": 0.5}}
    arms = {"xlsr": [_scored(tmp_path / "dense", {"es": 40, "sv-SE": 20}, {})]}
    agnostic = tmp_path / "agnostic"
    _learned(agnostic, {"es": range(4), "sv-SE": range(4)}, importance="magnitude")
    arms["agnostic"] = [_scored(agnostic, {"es": 50, "sv-SE": 30}, schedule)]
    # S3Net masks fixed before fine-tuning: es keeps 0-5, sv-SE 2-7 (sparsity 0.25, IoU 4/8)
    _masks(tmp_path / "subnets_lth_sparsity0.25" / "masks.pt", {"es": range(6), "sv-SE": range(2, 8)},
           method="lth", scope="layerwise", sparsity=0.25)
    arms["fixed_lth"] = [_scored(tmp_path / "subnets_lth_sparsity0.25" / "asr", {"es": 30, "sv-SE": 20},
                                 {"mask_file": "subnets_lth_sparsity0.25/masks.pt"})]
    # seed 1: es 0-3, sv-SE 2-5 (IoU 2/6); seed 2: es 0-3, sv-SE 1-4 (IoU 3/5)
    arms["pathways"] = []
    for seed, (sv, es_errors) in enumerate(((range(2, 6), 20), (range(1, 5), 30)), 1):
        d = tmp_path / "pathways" / f"asr_seed{seed}"
        _learned(d, {"es": range(4), "sv-SE": sv})
        arms["pathways"].append(_scored(d, {"es": es_errors, "sv-SE": 10}, schedule))
    dynamic = tmp_path / "dynamic_pathways"
    _learned(dynamic, {"es": range(4), "sv-SE": range(4, 8)}, regrow_every=3)
    arms["dynamic_pathways"] = [_scored(dynamic, {"es": 20, "sv-SE": 20}, schedule)]
    return tmp_path, arms


def _pathways_rows(text):
    section = text.split("## Pathways")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| arm "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_pathways_table_from_the_experiment_dirs_and_their_masks(experiment):
    tmp_path, arms = experiment
    text = multi_seed_report(arms, "xlsr", LANGS, str(tmp_path / "RESULTS.md"), high=["es"], n_resamples=200,
                             params={name: 1000 for name in arms}, pathways_table=True)
    rows = _pathways_rows(text)
    assert list(rows) == ["xlsr", "agnostic", "fixed_lth", "pathways", "dynamic_pathways"]
    # seeds, masks, es, sv-SE, Avg, Avg vs xlsr, sparsity, overlap
    dense = rows["xlsr"]
    assert dense[:2] == ["1", "none (dense)"] and dense[-3:] == ["-", "0.00", "1.000"]
    assert [c.split(" [")[0] for c in dense[2:5]] == ["40.0", "20.0", "30.0"]
    assert rows["agnostic"][1] == "learned in fine-tuning: pathways, magnitude"
    assert rows["agnostic"][-3:] == ["+33.3%", "0.50", "1.000"]  # one mask for all languages
    assert rows["fixed_lth"][1] == "fixed before fine-tuning: lth (layerwise)"
    assert rows["fixed_lth"][-3:] == ["-16.7%", "0.25", "0.500"]
    pathways = rows["pathways"]
    assert pathways[0] == "2" and pathways[2].startswith("25.0 ± 7.1 [")  # es: seeds 20 % and 30 %
    # Avg 17.5 vs 30.0; overlap: mean and sd of 1/3 and 3/5
    assert pathways[-3:] == ["-41.7%", "0.50 ± 0.00", "0.467 ± 0.189"]
    assert rows["dynamic_pathways"][1] == "learned in fine-tuning: dynamic_pathways, taylor, regrow every 3"
    assert rows["dynamic_pathways"][-2:] == ["0.50", "0.000"]  # disjoint pathways
    assert (tmp_path / "RESULTS.md").read_text() == text


def test_without_the_option_no_pathways_table(experiment):
    tmp_path, arms = experiment
    text = multi_seed_report(arms, "xlsr", LANGS, str(tmp_path / "RESULTS.md"), n_resamples=50,
                             params={name: 1000 for name in arms})
    assert "## Pathways" not in text


def test_which_masks_an_experiment_used_and_refusals(experiment):
    tmp_path, arms = experiment
    assert experiment_masks(arms["xlsr"][0]) is None
    assert experiment_masks(arms["agnostic"][0]) == (os.path.join(arms["agnostic"][0], "pathways", "masks.pt"), True)
    assert experiment_masks(arms["fixed_lth"][0]) == (str(tmp_path / "subnets_lth_sparsity0.25" / "masks.pt"), False)
    os.remove(os.path.join(arms["agnostic"][0], "pathways", "masks.pt"))
    with pytest.raises(FileNotFoundError, match="trained with a pathway schedule but has no pathways/masks.pt"):
        experiment_masks(arms["agnostic"][0])
    with pytest.raises(FileNotFoundError, match="has no pathways/masks.pt"):
        multi_seed_report(arms, "xlsr", LANGS, str(tmp_path / "RESULTS.md"), n_resamples=50, pathways_table=True)
    os.remove(tmp_path / "subnets_lth_sparsity0.25" / "masks.pt")
    with pytest.raises(FileNotFoundError, match="the mask file subnets_lth_sparsity0.25/masks.pt of .* does not exist"):
        experiment_masks(arms["fixed_lth"][0])
    with pytest.raises(ValueError, match="has no mask for it"):
        mask_statistics(os.path.join(arms["pathways"][0], "pathways", "masks.pt"), ["es", "it"])
