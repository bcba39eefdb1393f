"""Each recipe arm's frontend_conf.pathways value (espnet_s3net.recipe_pathways, bin/pathway_options):
the schedule computed from the run's updates, one sparsity for every pruned arm, refusals."""

import json

import pytest
import yaml

from espnet_s3net.bin.pathway_options import main
from espnet_s3net.recipe_pathways import arm_pathways, run_updates

SCHEDULE = {"rounds": 4, "updates_per_round": "auto", "prune_share": 0.5, "importance": "taylor", "regrow_every": 250}
CONFIG = {"num_iters_per_epoch": 300, "max_epoch": 10, "frontend_conf": {"pathways": SCHEDULE}}


def test_run_updates_follow_the_config_and_the_extra_args():
    assert run_updates(CONFIG) == 3000
    assert run_updates(CONFIG, "--max_epoch 2 --accum_grad 4") == 2 * 75
    assert run_updates(CONFIG, "--num_iters_per_epoch=10 --max_epoch 1 --max_epoch 3") == 30  # the last one counts
    with pytest.raises(ValueError, match="has no num_iters_per_epoch"):
        run_updates({"max_epoch": 2})


def test_arms_share_the_schedule_and_the_sparsity():
    arms = {arm: arm_pathways(CONFIG, arm, 0.7, ["es", "fr"], 3000) for arm in ("agnostic", "pathways",
                                                                                "dynamic_pathways")}
    for conf in arms.values():
        assert (conf["target_sparsity"], conf["rounds"], conf["updates_per_round"]) == (0.7, 4, 375)
        assert conf["languages"] == ["es", "fr"] and "prune_share" not in conf
    assert (arms["agnostic"]["importance"], arms["agnostic"]["regrow_every"]) == ("magnitude", 0)
    assert (arms["pathways"]["importance"], arms["pathways"]["regrow_every"]) == ("taylor", 0)
    assert (arms["dynamic_pathways"]["importance"], arms["dynamic_pathways"]["regrow_every"]) == ("taylor", 250)
    assert arm_pathways(CONFIG, "xlsr", 0.7, ["es"], 3000) is None


@pytest.mark.parametrize("schedule,updates,message", [
    ({**SCHEDULE, "target_sparsity": 0.5}, 3000, "target_sparsity comes from the recipe"),
    ({**SCHEDULE, "updates_per_round": 100}, 3000, "prune_share goes with updates_per_round: auto"),
    (SCHEDULE, 7, "the run has 7 updates: prune_share 0.5 of them is too few for 4 pruning rounds"),
    ({**SCHEDULE, "prune_share": None, "updates_per_round": 1000}, 3000, r"4 × 1000 = 4000 updates, but training has"),
    ({**SCHEDULE, "regrow_every": 0}, 3000, "dynamic_pathways needs frontend_conf.pathways.regrow_every > 0"),
    # regrow steps at 375, 750, 1125, 1500 all end pruning rounds: the dynamic arm would never regrow
    ({**SCHEDULE, "prune_share": None, "updates_per_round": 375, "regrow_every": 375}, 1500,
     "no drop-and-regrow step in the run's 1500 updates"),
])
def test_schedules_that_cannot_run_are_refused(schedule, updates, message):
    config = {**CONFIG, "frontend_conf": {"pathways": {k: v for k, v in schedule.items() if v is not None}}}
    with pytest.raises(ValueError, match=message):
        arm_pathways(config, "dynamic_pathways", 0.5, ["es"], updates)


def test_entry_point(tmp_path, capsys):
    config = tmp_path / "asr.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    main(["--asr_config", str(config), "--asr_args", "--max_epoch 2", "--arms", "xlsr fixed_lth pathways",
          "--sparsity", "0.5", "--langs", "es fr"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["xlsr null", "fixed_lth null"]
    arm, value = lines[2].split(" ")
    assert arm == "pathways" and json.loads(value)["updates_per_round"] == 75  # 600 updates, half of them in 4 rounds
    with pytest.raises(SystemExit, match=r"pathway_sparsity must be in \[0, 1\), got 1.5"):
        main(["--asr_config", str(config), "--arms", "pathways", "--sparsity", "1.5", "--langs", "es"])
    config.write_text(yaml.safe_dump({"num_iters_per_epoch": 3}))
    main(["--asr_config", str(config), "--arms", "xlsr", "--sparsity", "0.5", "--langs", "es"])
    assert capsys.readouterr().out == "xlsr -\n"  # no schedule block: nothing to pass
