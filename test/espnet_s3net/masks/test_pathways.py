"""Pathway schedule: exact sparsity per round, pruning within the pathway, drop-and-regrow,
masked steps under a changing mask, resume mid-schedule, bad input."""

import io

import pytest
import torch

from espnet_s3net.masks import pathways
from espnet_s3net.masks.language_masker import attach_masker
from espnet_s3net.masks.mask_file import SubnetMasks, parameter_fingerprint
from espnet_s3net.masks.pathways import (
    PathwayConfig,
    PathwaySchedule,
    check_schedule,
    drop_and_regrow,
    kept_after_round,
    prune_pathway,
)
from espnet_s3net.masks.pruning import masks_from_scores, prunable_parameters
from espnet_s3net.masks.report import write_report
from espnet_s3net.train.schedules import update_counter_hook

LANGS = ("es", "fr")


class Net(torch.nn.Module):
    """Two transformer-named feed-forward blocks (prunable) and an unmasked head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = torch.nn.Module()
        self.encoder.transformer = torch.nn.Module()
        self.encoder.transformer.layers = torch.nn.ModuleList()
        for _ in range(2):
            layer = torch.nn.Module()
            layer.feed_forward = torch.nn.Module()
            layer.feed_forward.intermediate_dense = torch.nn.Linear(6, 10)
            layer.feed_forward.output_dense = torch.nn.Linear(10, 6)
            self.encoder.transformer.layers.append(layer)
        self.head = torch.nn.Linear(6, 1)

    def forward(self, x):
        for layer in self.encoder.transformer.layers:
            x = x + layer.feed_forward.output_dense(torch.tanh(layer.feed_forward.intermediate_dense(x)))
        return self.head(x)


def _build(config):
    """Model with all-ones pathways, masker, schedule (``model.pathway_schedule``), Adam."""
    model = Net()
    params = prunable_parameters(model)
    ones = SubnetMasks.from_dense({lang: {n: torch.ones(p.shape, dtype=torch.bool) for n, p in params.items()}
                                   for lang in LANGS},
                                  {"source_fingerprint": parameter_fingerprint(model, list(params))})
    masker = attach_masker(model, ones)
    model.pathway_schedule = PathwaySchedule(masker, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    masker.attach_optimizer(optimizer)
    optimizer.register_step_post_hook(update_counter_hook(model))
    return model, masker, optimizer


def _lang(step):
    return LANGS[step % 3 != 0]  # es, fr, fr, es, ...: unequal shares


def _train(model, masker, optimizer, start, stop, check=None):
    """Updates ``start..stop-1``, each on its own fixed batch; ``check(lang, before)`` after each
    step with the masks and weights from before it."""
    for step in range(start, stop):
        lang = _lang(step)
        masker.activate(lang)
        before = (masker.masks.dense(lang), {n: p.detach().clone() for n, p in model.named_parameters()})
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
        model(x).pow(2).mean().backward()
        optimizer.step()
        if check is not None:
            check(lang, before)
        optimizer.zero_grad()


def _kept(masks, lang, scope):
    dense = masks.dense(lang)
    return [int(m.sum()) for m in dense.values()] if scope == "layerwise" else [sum(int(m.sum()) for m in
                                                                                  dense.values())]


def test_kept_after_round_ends_at_the_target_of_masks_from_scores():
    for n in (1, 5, 7, 60, 1001):
        for s in (0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 0.99):
            target = int(masks_from_scores({"w": torch.rand(n)}, s, "layerwise")["w"].sum())
            for rounds in (1, 3, 7):
                kept = [kept_after_round(n, s, r, rounds) for r in range(rounds + 1)]
                assert kept[0] == n and kept[-1] == target, (n, s, rounds)
                assert all(a >= b for a, b in zip(kept, kept[1:])), kept


def test_prune_pathway_prunes_the_lowest_inside_the_pathway():
    mask = torch.tensor([1, 1, 0, 1, 1, 0], dtype=torch.bool)
    scores = torch.tensor([3.0, 1.0, 0.0, 2.0, 1.0, 0.0])
    assert prune_pathway(mask, scores, 2).tolist() == [True, False, False, True, False, False]  # tie: earlier first
    with pytest.raises(ValueError, match="cannot grow a pathway: it keeps 4 weights, asked to keep 5"):
        prune_pathway(mask, scores, 5)


def test_drop_and_regrow_keeps_the_count_and_never_regrows_what_it_dropped():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(40, 30, generator=gen) < 0.3
    drop, grow = torch.rand(40, 30, generator=gen), torch.rand(40, 30, generator=gen)
    grow[mask] = 10.0  # weights in the pathway score highest for regrowth: must still not come back
    new = drop_and_regrow(mask, drop, grow, 0.2)
    k = round(0.2 * int(mask.sum()))
    dropped, regrown = mask & ~new, new & ~mask
    assert int(new.sum()) == int(mask.sum()) and int(dropped.sum()) == int(regrown.sum()) == k
    assert drop[dropped].max() <= drop[mask & new].min()  # the lowest of the pathway dropped
    assert grow[regrown].min() >= grow[~mask & ~new].max()  # the highest outside regrown


@pytest.mark.parametrize("scope", ["layerwise", "global"])
@pytest.mark.parametrize("rounds,importance", [(1, "magnitude"), (3, "magnitude"), (4, "taylor")])
def test_schedule_reaches_the_target_exactly_pruning_within_pathways(scope, rounds, importance):
    config = PathwayConfig(target_sparsity=0.7, rounds=rounds, updates_per_round=5, scope=scope,
                           importance=importance)
    model, masker, optimizer = _build(config)
    sizes = _kept(masker.masks, "es", scope)
    previous = {lang: masker.masks.dense(lang) for lang in LANGS}
    for r in range(1, rounds + 2):  # one round more: nothing changes after the last
        _train(model, masker, optimizer, (r - 1) * 5, r * 5)
        for lang in LANGS:
            expected = [kept_after_round(n, 0.7, min(r, rounds), rounds) for n in sizes]
            assert _kept(masker.masks, lang, scope) == expected, (lang, r)
            current = masker.masks.dense(lang)
            for name, mask in current.items():
                assert not (mask & ~previous[lang][name]).any(), (lang, r, name)  # never returns
            previous[lang] = current
    assert [round(0.7 * n) for n in sizes] == [n - k for n, k in zip(sizes, _kept(masker.masks, "es", scope))]
    masker.activate("fr")  # the layers use the schedule's masks
    for layer, mask in zip(masker.layers, masker.masks.dense("fr").values()):
        assert torch.equal(layer.lang_mask.unpacked().bool(), mask)
    if importance == "taylor":  # per-language scores: the pathways differ
        assert masker.masks.flat("es").ne(masker.masks.flat("fr")).any()


def test_grad_sinks_collect_the_unmasked_gradient():
    config = PathwayConfig(target_sparsity=0.5, rounds=1, updates_per_round=2, regrow_every=5)
    model, masker, optimizer = _build(config)
    _train(model, masker, optimizer, 0, 2)  # pruned to 50%
    masker.activate("es")
    reference = Net()
    reference.load_state_dict(model.state_dict(), strict=False)
    ref_params = dict(reference.named_parameters())
    with torch.no_grad():
        for name, mask in masker.masks.dense("es").items():
            ref_params[name].mul_(mask)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(9))
    model(x).pow(2).mean().backward()
    reference(x).pow(2).mean().backward()
    schedule = model.pathway_schedule
    for sink, name in zip(schedule.masker.masks.split(schedule.sink).values(), masker.masks.names):
        torch.testing.assert_close(sink, ref_params[name].grad.square(), rtol=1e-5, atol=1e-8)
    optimizer.step()
    assert schedule.grow[0].gt(0).any() and not schedule.sink.any()  # moved to es's scores
    optimizer.zero_grad()


@pytest.mark.parametrize("criterion,importance", [("gradient", "magnitude"), ("taylor", "taylor")])
def test_dynamic_pathways_keep_sparsity_and_weights_outside_bit_identical(criterion, importance):
    config = PathwayConfig(target_sparsity=0.6, rounds=2, updates_per_round=6, importance=importance,
                           regrow_every=4, regrow_fraction=0.25, regrow_criterion=criterion)
    model, masker, optimizer = _build(config)
    changes = []

    def check(lang, before):
        mask, weights = before
        params = dict(model.named_parameters())
        for name, keep in mask.items():
            assert torch.equal(params[name].detach()[~keep], weights[name][~keep]), (lang, name)
        changes.append({lg: masker.masks.flat(lg) for lg in LANGS})

    _train(model, masker, optimizer, 0, 24, check)
    schedule = model.pathway_schedule
    assert schedule.current_masks().meta["method"] == "dynamic_pathways"
    final = [kept_after_round(p.numel(), 0.6, 2, 2) for p in masker.params]
    for t in range(13, 25):  # masks after update t: regrows at 16, 20, 24 after the rounds, sparsity constant
        for lang in LANGS:
            sizes = [int(m.sum()) for m in masker.masks.split(changes[t - 1][lang]).values()]
            assert sizes == final, (t, lang)
            moved = changes[t - 1][lang] != changes[t - 2][lang]
            assert bool(moved.any()) == (t in (16, 20, 24)), (t, lang)


@pytest.mark.parametrize("window,rounds,regrow,scored", [
    # changes after 4 (regrow), 6 (round 1), 8 (regrow), 12 (round 2, which takes precedence)
    (2, 2, 4, {3, 4, 5, 6, 7, 8, 11, 12}),
    # no window: every update up to the last change; none after it (no change ahead)
    (None, 1, 0, {1, 2, 3, 4, 5, 6}),
])
def test_scores_accumulate_only_within_the_window_before_a_change(monkeypatch, window, rounds, regrow, scored):
    config = PathwayConfig(target_sparsity=0.5, rounds=rounds, updates_per_round=6, importance="taylor",
                           regrow_every=regrow, score_window=window)
    model, masker, optimizer = _build(config)
    schedule = model.pathway_schedule
    taylor, sinks = set(), set()
    accumulate = pathways.accumulate_taylor_
    monkeypatch.setattr(pathways, "accumulate_taylor_",
                        lambda *a: (taylor.add(int(schedule.updates) + 1), accumulate(*a)))
    for step in range(12):
        masker.activate(_lang(step))
        if masker.layers[0].grad_sink is not None:
            sinks.add(step + 1)
        model(torch.randn(8, 6, generator=torch.Generator().manual_seed(step))).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert taylor == scored
    assert sinks == (scored if regrow else set())


@pytest.mark.parametrize("stop", [7, 14])
def test_resume_mid_schedule_gives_the_same_masks_and_weights(stop):
    """Rounds end at 4, 8, 12, regrows at 5, 10, 15, 20: stopped at 7, the Taylor importance of
    6-7 decides round 2; stopped at 14, the gradients of 13-14 decide the regrow at 15."""
    config = PathwayConfig(target_sparsity=0.8, rounds=3, updates_per_round=4, scope="global",
                           importance="taylor", regrow_every=5)
    model, masker, optimizer = _build(config)
    _train(model, masker, optimizer, 0, 20)

    stopped, stopped_masker, stopped_optimizer = _build(config)
    _train(stopped, stopped_masker, stopped_optimizer, 0, stop)
    checkpoint = io.BytesIO()
    # as the trainer saves: the state dict (without the weight-sized score accumulators) and,
    # beside it, the schedule's accumulator state
    torch.save({"model": stopped.state_dict(), "optim": stopped_optimizer.state_dict(),
                "scores": stopped.pathway_schedule.accumulator_state()}, checkpoint)
    assert not {f"pathway_schedule.{name}" for name in ("sink", "importance", "grow")} & set(stopped.state_dict())
    checkpoint.seek(0)
    states = torch.load(checkpoint, weights_only=True)
    resumed, resumed_masker, resumed_optimizer = _build(config)
    resumed.load_state_dict(states["model"])
    resumed.pathway_schedule.load_accumulator_state(states["scores"], "the checkpoint")
    resumed_optimizer.load_state_dict(states["optim"])
    assert resumed_masker.masks.fingerprint == stopped_masker.masks.fingerprint
    _train(resumed, resumed_masker, resumed_optimizer, stop, 20)

    assert resumed_masker.masks.fingerprint == masker.masks.fingerprint
    assert int(resumed.pathway_schedule.updates) == 20
    for (name, p), q in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_rewind_resets_every_prunable_weight_to_the_start_after_each_round():
    """Rounds end at 3 and 6: right after each, every prunable weight (inside and outside the
    new pathways) is its start value; the unmasked head is not rewound."""
    config = PathwayConfig(target_sparsity=0.6, rounds=2, updates_per_round=3, importance="taylor", rewind=True)
    model, masker, optimizer = _build(config)
    start = _snapshot(model)
    after = {}
    _train(model, masker, optimizer, 0, 8, lambda lang, before: after.setdefault(len(after) + 1, _snapshot(model)))
    for t in (3, 6):
        for name in masker.masks.names:
            assert torch.equal(after[t][name], start[name]), (t, name)
        assert not torch.equal(after[t]["head.weight"], after[t - 1]["head.weight"]), t  # trained on
    for t in (2, 5, 7):
        assert any(not torch.equal(after[t][n], start[n]) for n in masker.masks.names), t
    assert _kept(masker.masks, "es", "layerwise") == [kept_after_round(p.numel(), 0.6, 2, 2) for p in masker.params]
    plain = _build(PathwayConfig(target_sparsity=0.6))[0]
    assert "pathway_schedule.rewind_point" not in plain.state_dict()  # without rewind: no copy


def test_rewind_point_is_taken_again_and_resumed():
    """``record_rewind_point`` (the trainer, at the start) takes the current weights; a resumed
    run rewinds to its checkpoint's, not to those of the rebuilt model."""
    config = PathwayConfig(target_sparsity=0.8, rounds=3, updates_per_round=4, importance="taylor", rewind=True,
                           regrow_every=3)
    model, masker, optimizer = _build(config)
    with torch.no_grad():
        masker.params[0].add_(1.0)
    model.pathway_schedule.record_rewind_point()
    start = _snapshot(model)
    _train(model, masker, optimizer, 0, 14)

    stopped, stopped_masker, stopped_optimizer = _build(config)
    with torch.no_grad():
        stopped_masker.params[0].add_(1.0)
    stopped.pathway_schedule.record_rewind_point()
    _train(stopped, stopped_masker, stopped_optimizer, 0, 6)  # mid-round 2, after round 1's rewind
    checkpoint = io.BytesIO()
    torch.save({"model": stopped.state_dict(), "optim": stopped_optimizer.state_dict()}, checkpoint)
    checkpoint.seek(0)
    states = torch.load(checkpoint, weights_only=True)
    resumed, resumed_masker, resumed_optimizer = _build(config)  # its own start: not shifted
    resumed.load_state_dict(states["model"])
    resumed_optimizer.load_state_dict(states["optim"])
    _train(resumed, resumed_masker, resumed_optimizer, 6, 12)
    rewound = _snapshot(resumed)
    for name in masker.masks.names:  # rewound at 12 to the shifted start
        assert torch.equal(rewound[name], start[name]), name
    _train(resumed, resumed_masker, resumed_optimizer, 12, 14)

    assert resumed_masker.masks.fingerprint == masker.masks.fingerprint
    for (name, p), q in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def test_save_masks_is_a_mask_file(tmp_path):
    config = PathwayConfig(target_sparsity=0.5, rounds=2, updates_per_round=3)
    model, masker, optimizer = _build(config)
    assert masker.source_fingerprint_matches(model)  # the trainer's check: the weights training starts from
    _train(model, masker, optimizer, 0, 6)
    path = str(tmp_path / "round2.pt")
    model.pathway_schedule.save_masks(path)
    loaded = SubnetMasks.load(path)
    assert loaded.fingerprint == masker.masks.fingerprint
    assert {k: loaded.meta[k] for k in ("method", "scope", "sparsity", "round")} == {
        "method": "pathways", "scope": "layerwise", "sparsity": 0.5, "round": 2}
    assert loaded.meta["source_fingerprint"] == parameter_fingerprint(model, loaded.names)  # the weights now
    with open(write_report(path), encoding="utf-8") as f:
        assert "method pathways, scope layerwise" in f.read()


@pytest.mark.parametrize("kwargs,message", [
    ({"target_sparsity": 1.0}, r"target_sparsity must be in \[0, 1\), got 1.0"),
    ({"target_sparsity": -0.1}, r"target_sparsity must be in \[0, 1\), got -0.1"),
    ({"target_sparsity": 0.5, "rounds": 0}, "rounds must be at least 1, got 0"),
    ({"target_sparsity": 0.5, "regrow_fraction": 1.0}, r"regrow_fraction must be in \(0, 1\)"),
    ({"target_sparsity": 0.5, "scope": "per_row"}, "scope must be one of"),
    ({"target_sparsity": 0.5, "regrow_criterion": "random"}, "regrow_criterion must be one of"),
    ({"target_sparsity": 0.5, "score_window": 0}, "score_window must be at least 1"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PathwayConfig(**kwargs)


def test_bad_schedule_and_languages():
    config = PathwayConfig(target_sparsity=0.7, rounds=4, updates_per_round=100)
    check_schedule(config, 400)
    with pytest.raises(ValueError, match="4 × 100 = 400 updates, but training has 399"):
        check_schedule(config, 399)
    config.rewind = True
    check_schedule(config, 401)
    with pytest.raises(ValueError, match="with rewind, the last round .update 400. resets the weights"):
        check_schedule(config, 400)
    config.rewind = False
    schedule = _build(config)[0].pathway_schedule
    schedule.check_languages(("fr", "es"))
    with pytest.raises(ValueError, match="no pathway for language\\(s\\) it of the training data; the pathways "
                                         "\\(initial masks or pathways.languages\\) are: es, fr"):
        schedule.check_languages(("es", "fr", "it"))
    with pytest.raises(ValueError, match="pathway language\\(s\\) fr have no training data"):
        schedule.check_languages(("es",))


def test_masks_change_only_between_a_step_and_the_next_backward():
    model, masker, optimizer = _build(PathwayConfig(target_sparsity=0.5))
    masker.activate("es")
    model(torch.randn(2, 6)).sum().backward()
    with pytest.raises(RuntimeError, match="masks changed while gradients are pending"):
        masker.set_masks(masker.masks)
    optimizer.step()  # the gradients are used (still there until zero_grad): a change is allowed
    masker.set_masks(masker.masks)
    model(torch.randn(2, 6)).sum().backward()  # accumulated in place into the used gradients
    with pytest.raises(RuntimeError, match="masks changed while gradients are pending"):
        masker.set_masks(masker.masks)
    optimizer.zero_grad()
    masker.deactivate()
    with pytest.raises(RuntimeError, match="an update of the dense model: the pathway schedule trains es, fr only"):
        model.pathway_schedule.count_update()


def test_moving_the_model_hands_the_masker_the_moved_sinks():
    model, masker, _ = _build(PathwayConfig(target_sparsity=0.5, regrow_every=3))
    old = model.pathway_schedule.sink
    model._apply(lambda t: t.clone())  # as .to(device): buffers become new tensors
    sink = model.pathway_schedule.sink
    assert sink is not old and masker.layers[0].grad_sink.data_ptr() == sink.data_ptr()


def test_scores_of_another_update_are_refused(caplog):
    config = PathwayConfig(target_sparsity=0.5, rounds=2, updates_per_round=4, importance="taylor")
    model, masker, optimizer = _build(config)
    _train(model, masker, optimizer, 0, 3)
    state = {k: v.clone() for k, v in model.pathway_schedule.accumulator_state().items()}
    assert int(state["updates"]) == 3 and state["importance"].any()
    other, _, _ = _build(config)
    with caplog.at_level("WARNING"):
        other.pathway_schedule.load_accumulator_state(state, "scores.rank0.pth")
    assert "holds the scores of update 3, the checkpoint is at update 0" in caplog.text
    assert not other.pathway_schedule.importance.any()
    other.pathway_schedule.updates.fill_(3)
    other.pathway_schedule.load_accumulator_state(state, "scores.rank0.pth")
    assert torch.equal(other.pathway_schedule.importance, state["importance"])
