"""RESULTS.md: one row per model, one column per language, High / Low / Avg, #params.

High = the ``n_high`` evaluated languages with the most XLSR-10 pre-training hours, Low = the
others, Avg = all; each is the mean of the per-language rates (as the paper averages). By
default High has the paper's three languages (:data:`PAPER_N_HIGH`; es fr it among the ten:
their XLSR-10 base PERs average to its High column), in the single-seed table
(:func:`results_table`) and the multi-seed report (:func:`multi_seed_report`).
"""

import json
import math
import os
import re
from statistics import mean
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from espnet_s3net.languages import high_resource
from espnet_s3net.masks.mask_file import SubnetMasks
from espnet_s3net.scoring.sclite import read_error_rate
from espnet_s3net.scoring.statistics import LanguageScores, mean_sd

#: the paper's High: the three languages with the most XLSR-10 pre-training hours (es fr it)
PAPER_N_HIGH = 3


def count_parameters(model_file: str) -> int:
    """Floating-point parameters of a checkpoint (buffers such as counters excluded)."""
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    return sum(v.numel() for k, v in state.items() if v.is_floating_point() and not k.endswith("num_updates"))


def collect(exp_dir: str, langs: Sequence[str], score_name: str) -> Dict[str, float]:
    """Per-language error rates of one experiment (``decode_test_<lang>/<score_name>/result.txt``)."""
    rates = {}
    for lang in langs:
        path = os.path.join(exp_dir, f"decode_test_{lang}", score_name, "result.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist (run decoding and scoring first)")
        rates[lang] = read_error_rate(path)
    return rates


def results_table(rows: Dict[str, Dict[str, float]], params: Dict[str, int], langs: Sequence[str],
                  high: Optional[List[str]] = None, metric: str = "PER", n_high: int = PAPER_N_HIGH) -> str:
    """Markdown table of ``rows`` (model -> language -> %); High: ``high``, or the ``n_high``
    languages with the most XLSR-10 hours."""
    high = list(high) if high else high_resource(langs, n_high)
    low = [lang for lang in langs if lang not in high]
    header = ["model", "#params", *langs, "High", "Low", "Avg"]
    lines = [f"{metric} (%) per language; High: {' '.join(high)}; Low: {' '.join(low)}", "",
             "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for model, rates in rows.items():
        groups = [f"{mean(rates[x] for x in ls):.1f}" if ls else "-" for ls in (high, low, list(langs))]
        cells = [model, f"{params[model] / 1e6:.2f}M", *(f"{rates[x]:.1f}" for x in langs), *groups]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Several arms with several seeds each: statistics over test utterances and seeds.


def parse_assignments(values: Optional[Sequence[str]], option: str) -> Dict[str, str]:
    """``NAME=VALUE`` options (``--params``, ``--masks``) as a dict; ``ValueError`` for a
    malformed one or a name given twice."""
    out: Dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--{option} takes NAME=VALUE, got {value!r}")
        if "|" in name or "`" in name:
            raise ValueError(f"--{option} {name}: a name cannot hold '|' or '`' (it becomes a table cell)")
        if name in out:
            raise ValueError(f"--{option}: {name} given twice")
        out[name] = rest.strip()
    return out


def parse_arms(values: Optional[Sequence[str]]) -> Dict[str, List[str]]:
    """``--arm NAME=DIR1,DIR2,...`` options: arm -> experiment dirs (one per seed)."""
    arms = {}
    seen: Dict[str, str] = {}
    for name, rest in parse_assignments(values, "arm").items():
        dirs = [d.strip() for d in rest.split(",")]
        if not rest.strip():
            raise ValueError(f"arm {name} has no experiment dirs (an empty seed list)")
        if any(not d for d in dirs):
            raise ValueError(f"arm {name}: empty experiment dir in {rest!r}")
        for d in dirs:
            key = os.path.realpath(d)
            if key in seen:
                where = "twice" if seen[key] == name else f"also in arm {seen[key]}"
                raise ValueError(f"arm {name}: experiment dir {d} is listed {where}")
            seen[key] = name
        arms[name] = dirs
    return arms


def read_params_file(path: str) -> Dict[str, int]:
    """``#params`` per arm from a file: lines ``NAME INT`` (``#`` starts a comment)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"params file {path} does not exist")
    out: Dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'NAME NUMBER_OF_PARAMETERS', got {line.strip()!r}")
            if fields[0] in out:
                raise ValueError(f"{path}:{lineno}: {fields[0]} given twice")
            out[fields[0]] = parse_count(fields[1], f"{path}:{lineno}")
    return out


def parse_count(text: str, where: str) -> int:
    """A parameter count given as text (``where`` names it in errors): a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{where}: number of parameters must be an integer, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{where}: number of parameters must not be negative, got {value}")
    return value


def collect_arm(arm: str, dirs: Sequence[str], langs: Sequence[str], score_name: str
                ) -> Tuple[Dict[str, LanguageScores], Dict[str, str]]:
    """An arm's per-utterance counts (``decode_test_<lang>/<score_name>/utt_errors`` of each seed
    dir) per language, and the scoring tool of each result.txt read (path -> sclite / jiwer)."""
    from espnet_s3net.scoring.provenance import scoring_tool
    from espnet_s3net.scoring.sclite import UTT_ERRORS, read_utt_errors
    from espnet_s3net.scoring.statistics import check_same_utterance_set

    if not dirs:
        raise ValueError(f"arm {arm} has no experiment dirs (an empty seed list)")
    for d in dirs:
        if not os.path.isdir(d):
            raise FileNotFoundError(f"arm {arm}: experiment dir {d} does not exist")
    out, tools = {}, {}
    for lang in langs:
        per_seed = []
        for d in dirs:
            score_dir = os.path.join(d, f"decode_test_{lang}", score_name)
            path = os.path.join(score_dir, UTT_ERRORS)
            result = os.path.join(score_dir, "result.txt")
            if not os.path.isfile(path):
                why = ("scored without per-utterance counts: score it again (stage 11)" if os.path.isfile(result)
                       else "run decoding and scoring first")
                raise FileNotFoundError(f"arm {arm}: {path} does not exist ({why})")
            if os.path.isfile(result):
                tools[result] = scoring_tool(result)
            per_seed.append(read_utt_errors(path))
        utts, _, ref_len = per_seed[0]
        for d, (other_utts, _, other_len) in zip(dirs[1:], per_seed[1:]):
            check_same_utterance_set(f"the seeds {dirs[0]} and {d} of arm {arm}", lang,
                                     (dirs[0], utts, ref_len), (d, other_utts, other_len))
        out[lang] = LanguageScores(utts, ref_len, np.stack([errors for _, errors, _ in per_seed]))
    return out, tools


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _num(x: float, digits: int = 1) -> str:
    if math.isnan(x):
        return "-"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0"


def _mean_sd(mean_sd: Tuple[float, float]) -> str:
    mean, sd = mean_sd
    return _num(mean) if math.isnan(sd) else f"{_num(mean)} ± {_num(sd)}"


def _rate_cell(table, name: str, column: str) -> str:
    """``mean ± sd [lo, hi]``: an arm's rate in a column, over seeds, with its bootstrap interval."""
    lo, hi = table.ci(name, column)
    return _mean_sd(table.mean_sd(name, column)) + ("" if math.isnan(lo) else f" [{_num(lo)}, {_num(hi)}]")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def multi_seed_report(arms: Mapping[str, Sequence[str]], control: str, langs: Sequence[str], output: str,
                      score_name: str = "score_wer", high: Optional[Sequence[str]] = None,
                      n_high: int = PAPER_N_HIGH, params: Optional[Mapping[str, int]] = None,
                      masks: Optional[Mapping[str, str]] = None, configs: Sequence[str] = (),
                      n_resamples: int = 10_000, seed: int = 0, level: float = 0.95,
                      model_file: str = "valid.loss.ave.pth", pathways_table: bool = False,
                      distill_l2s_table: bool = False, distilxlsr_table: bool = False,
                      rtf: Optional[Mapping[str, Tuple[float, float]]] = None, rtf_note: str = "",
                      l2s_step: Optional[Mapping] = None) -> str:
    """Write RESULTS.md for arms with several seeds each (``arms``: name -> experiment dirs) and
    its pictures next to it (``<output stem>_rates.png``, ``<output stem>_masks_<name>.png``);
    return the markdown. See ``espnet_s3net.bin.make_results`` for what it holds.
    ``pathways_table``: add the pathways table (:func:`pathways_section`) over every arm.
    ``distill_l2s_table``: add the Distill-L2S table (:func:`distill_l2s_section`), with the
    step-time cost of the loss when ``l2s_step`` (``benchmark l2s_step``'s result) is given.
    ``distilxlsr_table``: add the DistilXLSR table (:func:`distilxlsr_section`) with ``rtf``
    (arm -> (RTF, ratio to the control), measured in one run; ``rtf_note`` says how). ``high``:
    None for the default High, ``[]`` for none (every language Low)."""
    from espnet_s3net.scoring.figures import plot_rates
    from espnet_s3net.scoring.provenance import check_starting_models, duplicate_seeds, environment
    from espnet_s3net.scoring.statistics import TableBootstrap, high_low_avg

    arms = {name: list(dirs) for name, dirs in arms.items()}
    langs = list(langs)
    if not arms:
        raise ValueError("no arms given")
    for name, dirs in arms.items():
        if not dirs:
            raise ValueError(f"arm {name} has no experiment dirs (an empty seed list)")
    if control not in arms:
        raise ValueError(f"the control {control} is not an arm; arms: {', '.join(arms)}")
    if not langs:
        raise ValueError("no languages given")
    if len(set(langs)) != len(langs):
        raise ValueError(f"a language is given twice: {' '.join(langs)}")
    params = dict(params or {})
    unknown = [name for name in params if name not in arms]
    if unknown:
        raise ValueError(f"#params given for {', '.join(unknown)}, which is not an arm; arms: {', '.join(arms)}")
    for path in configs:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file {path} does not exist")
    for name, path in (masks or {}).items():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"mask file {path} (--masks {name}) does not exist")
    high = list(high) if high is not None else high_resource(langs, n_high)
    groups = high_low_avg(langs, high)
    metric = "PER" if score_name == "score_wer" else "CER"

    # the masks each arm's models used, read before any scoring work: a missing file stops here
    arm_masks = {name: [experiment_masks(d) for d in arms[name]] for name in arms} if pathways_table else {}
    # DistilXLSR's students are smaller than their teacher by design (each still starts from it)
    starts, unchecked = check_starting_models(arms, architectures_may_differ=distilxlsr_table)
    scores, tools = {}, {}
    for name, dirs in arms.items():
        scores[name], arm_tools = collect_arm(name, dirs, langs, score_name)
        tools.update(arm_tools)
    if len(set(tools.values())) > 1:
        jiwer = sorted(path for path, tool in tools.items() if tool == "jiwer")
        raise ValueError(f"the scores were computed by different tools (sclite and jiwer, whose alignments can "
                         f"differ): score every experiment with the same one; {len(jiwer)} result.txt by jiwer, "
                         f"e.g. {jiwer[0]}")
    order = [control] + [name for name in arms if name != control]
    table = TableBootstrap({name: scores[name] for name in order}, langs, groups, n_resamples, seed, level)
    counted, uncounted = [], []
    for name in order:
        if name not in params:
            params[name] = _count_arm_parameters(name, arms[name], model_file)
            (counted if params[name] is not None else uncounted).append(name)

    stem = os.path.splitext(output)[0]
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    rates_png = f"{stem}_rates.png"
    plot_rates(table, order, metric, rates_png)

    pct = f"{level:.0%}"
    lines = ["<!-- Generated by espnet_s3net.bin.make_results -->", "# RESULTS", "", environment(configs)]
    lines += [f"## {metric} per language", "",
              f"{metric} (%) of each arm: mean ± sd over its seeds, and in brackets the {pct} bootstrap interval "
              f"of that mean (the test utterances of each language resampled {n_resamples} times, seed {seed}; "
              "the same resamples for every arm and seed). With every seed scored on the same utterances, the "
              "mean over seeds is also the rate of the errors pooled over seeds. "
              f"High: {' '.join(groups['High']) or '-'}; Low: {' '.join(groups['Low']) or '-'}; Avg: all "
              "(each the mean of its languages' rates).", "",
              _row(["arm", "seeds", *table.columns]), "|---|---:|" + "---:|" * len(table.columns)]
    for name in order:
        lines.append(_row([name, str(len(arms[name])), *(_rate_cell(table, name, c) for c in table.columns)]))
    sizes = [f"{lang} {len(scores[control][lang].utts)} ({int(scores[control][lang].ref_len.sum())} tokens)"
             for lang in langs]
    lines += ["", f"Test utterances: {', '.join(sizes)}.", "",
              f"![{metric} per language]({os.path.basename(rates_png)})", ""]

    from espnet_s3net.models.parameter_count import format_millions

    loaded_masks = {name: SubnetMasks.load(path) for name, path in (masks or {}).items()}
    mask_meta = {name: loaded.meta for name, loaded in loaded_masks.items() if name in arms}
    # the paper's second table: the adaptation methods and the layerwise sub-networks; the
    # global ones are ablations (third table)
    compared = [name for name in order if mask_meta.get(name, {}).get("scope", "layerwise") == "layerwise"]
    lines += ["## Comparison of methods", "",
              f"{metric} (%), mean ± sd over seeds; #params as given"
              + (f" (counted from {model_file} for {', '.join(counted)})" if counted else "")
              + ". Arms with global sub-networks are in the ablation below.", "",
              _row(["model", "#params", "High", "Low", "Avg"]), "|---|---:|---:|---:|---:|"]
    for name in compared:
        label = f"{name} (control)" if name == control else name
        lines.append(_row([label, "-" if params[name] is None else format_millions(params[name]),
                           *(_mean_sd(table.mean_sd(name, g)) for g in ("High", "Low", "Avg"))]))
    lines.append("")
    if mask_meta:
        lines += _ablation_section(table, control, mask_meta, metric)
    if pathways_table:
        lines += pathways_section(table, order, arms, arm_masks, control, metric)
    if distill_l2s_table:
        lines += distill_l2s_section(table, order, control, metric, pct, l2s_step)
    if distilxlsr_table:
        lines += distilxlsr_section(table, order, control, metric, params, rtf or {}, rtf_note)

    others = [name for name in order if name != control]
    tested = [c for c in table.columns if table.groups.get(c, [c])]  # not an empty group
    lines += [f"## Paired tests against the control ({control})", ""]
    if others:
        n_tests = len(others) * len(tested)
        lines += [f"Δ = arm − control ({metric} points, means over seeds). Interval: {pct} paired bootstrap "
                  "interval of Δ. p (bootstrap): two-sided, from the resampled differences centred on Δ. Sign test: "
                  "test utterances with fewer / more errors (mean over seeds) than the control, ties dropped, "
                  "two-sided exact binomial test; a group column pools its languages' utterances. The p-values "
                  "measure test-set sampling of the seed-averaged systems, not variation between training runs "
                  f"(the sd above); they are not corrected for the {n_tests} tests of this section.", ""]
        for name in others:
            lines += [f"### {name} vs {control}", "",
                      _row(["column", name, control, "Δ", f"{pct} interval of Δ", "p (bootstrap)",
                            "fewer / more errors", "p (sign test)"]),
                      "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for column in tested:
                test = table.paired(name, control, column)
                lines.append(_row([column, _num(test.rate_a), _num(test.rate_b), _num(test.difference, 2),
                                   f"[{_num(test.ci[0], 2)}, {_num(test.ci[1], 2)}]", _p(test.p_bootstrap),
                                   f"{test.sign.better} / {test.sign.worse}", _p(test.sign.p)]))
            lines.append("")
    else:
        lines += ["(no arm besides the control)", ""]

    if masks:
        lines += _mask_sections(masks, loaded_masks, stem)

    lines += ["## Experiments", "", _row(["arm", "seed", "experiment", "starting model"]), "|---|---:|---|---|"]
    for name in order:
        for k, d in enumerate(arms[name], 1):
            lines.append(_row([name, str(k), d, starts[d].describe()]))
    tool = next(iter(tools.values()), "sclite")
    lines += ["", f"Scored by {tool} ({score_name}, per-utterance counts in utt_errors)."]
    notes = unchecked + duplicate_seeds(arms)
    if uncounted:
        notes.append(f"#params of {', '.join(uncounted)} neither given (--params, --params_file) nor countable "
                     f"(no {model_file} in every experiment dir)")
    if notes:
        lines += ["", "Warnings:", ""] + [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    return text


def _ablation_section(table, control: str, mask_meta: Mapping[str, dict], metric: str) -> List[str]:
    """The paper's ablation: the control without sub-networks ("none"), then the sub-network arms,
    global before layerwise, as the paper orders them."""
    lines = ["## Ablation: how the sub-networks are found", "",
             f"{metric} (%), mean ± sd over seeds. none: the control ({control}), the same training without "
             "sub-networks; the other rows differ only in their mask file (method, scope, N:M pattern and "
             "sparsity from it).", "",
             _row(["sub-network", "arm", "sparsity", "High", "Low", "Avg"]), "|---|---|---:|---:|---:|---:|"]
    rows = [("none", control, "-")]
    for name, meta in sorted(mask_meta.items(), key=lambda item: (item[1].get("scope") != "global", item[0])):
        label = f"{meta.get('scope', '?')} {str(meta.get('method', '?')).upper()}"
        if meta.get("pattern", "unstructured") != "unstructured":
            label += f" {meta['pattern']}"
        sparsity = meta.get("sparsity")
        rows.append((label, name, "-" if sparsity is None else f"{float(sparsity):.2f}"))
    for label, name, sparsity in rows:
        lines.append(_row([label, name, sparsity, *(_mean_sd(table.mean_sd(name, g)) for g in ("High", "Low", "Avg"))]))
    return lines + [""]


def _count_arm_parameters(arm: str, dirs: Sequence[str], model_file: str) -> Optional[int]:
    """Parameters of the seeds' ``model_file`` (they must agree); None when a seed has none."""
    counts = {}
    for d in dirs:
        path = os.path.join(d, model_file)
        if not os.path.isfile(path):
            return None
        counts[d] = count_parameters(path)
    if len(set(counts.values())) > 1:
        raise ValueError(f"arm {arm}: the seeds' models have different numbers of parameters: "
                         + ", ".join(f"{d} {n}" for d, n in counts.items()))
    return next(iter(counts.values()))


def _mask_sections(masks: Mapping[str, str], loaded_masks: Mapping[str, SubnetMasks], stem: str) -> List[str]:
    """The mask-sharing table and pictures of the mask files ``masks`` (name -> path), loaded."""
    from espnet_s3net.masks.report import iou_by_layer, plot_iou_grid

    lines = ["## Mask sharing", "",
             "Overlap of two languages' sub-networks in a layer: |m_a ∧ m_b| / |m_a ∨ m_b| (intersection over "
             "union of the kept weights); the table gives the mean over language pairs.", ""]
    results = {}
    for name, path in masks.items():
        loaded = loaded_masks[name]
        groups, langs, iou = iou_by_layer(loaded)
        png = f"{stem}_masks_{_safe_name(name)}.png"
        meta = loaded.meta
        plot_iou_grid(groups, langs, iou, f"{name}: IoU of kept weights per layer", png)
        results[name] = (groups, langs, iou, png, meta, path)
    names = list(results)
    all_groups: List[str] = []
    for groups, *_ in results.values():
        all_groups += [g for g in groups if g not in all_groups]
    lines += [_row(["layer", *names]), "|---|" + "---:|" * len(names)]
    for group in all_groups:
        cells = []
        for name in names:
            groups, langs, iou = results[name][:3]
            if group in groups and len(langs) > 1:
                cells.append(f"{iou[groups.index(group)][np.triu_indices(len(langs), 1)].mean():.3f}")
            else:
                cells.append("-")
        lines.append(_row([group, *cells]))
    lines.append("")
    for name, (_, langs, _, png, meta, path) in results.items():
        lines += [f"### {name}", "",
                  f"`{path}`: method {meta.get('method')}, scope {meta.get('scope')}, sparsity {meta.get('sparsity')}, "
                  f"languages {' '.join(langs)}", "", f"![{name} mask sharing]({os.path.basename(png)})", ""]
    return lines


# ---------------------------------------------------------------------------------------------
# The pathways experiment: sparsity and overlap of each arm's masks next to its error rates.

#: where a fine-tuning with a pathway schedule writes its final masks (the trainer's save_dir)
PATHWAY_MASKS = os.path.join("pathways", "masks.pt")


class ExperimentMasks(NamedTuple):
    """The mask file of an experiment's model, and whether the fine-tuning learned it."""

    path: str
    learned: bool


def experiment_masks(exp_dir: str) -> Optional[ExperimentMasks]:
    """The mask file of the model an experiment decodes with: ``<exp_dir>/pathways/masks.pt``
    (masks learned in fine-tuning, the final ones), else ``config.yaml``'s
    ``frontend_conf.mask_file`` (masks fixed before fine-tuning; resolved as the recipe records
    paths), else None (a dense model)."""
    import yaml

    from espnet_s3net.scoring.provenance import resolve_recorded_path

    learned = os.path.join(exp_dir, PATHWAY_MASKS)
    config_path = os.path.join(exp_dir, "config.yaml")
    if os.path.isfile(learned):
        return ExperimentMasks(learned, True)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} does not exist: cannot tell which masks {exp_dir} used")
    with open(config_path, encoding="utf-8") as f:
        frontend_conf = (yaml.safe_load(f) or {}).get("frontend_conf") or {}
    if frontend_conf.get("pathways"):
        raise FileNotFoundError(f"{exp_dir} trained with a pathway schedule but has no {PATHWAY_MASKS} "
                                "(unfinished training?)")
    recorded = frontend_conf.get("mask_file")
    if recorded is None:
        return None
    path = resolve_recorded_path(recorded, exp_dir)
    if path is None:
        raise FileNotFoundError(f"the mask file {recorded} of {exp_dir} (its config.yaml) does not exist")
    return ExperimentMasks(path, False)


def mask_statistics(path: str, langs: Sequence[str]) -> Tuple[float, float]:
    """Sparsity (the fraction of prunable weights pruned, over the languages ``langs``) and the
    mean pairwise overlap of their pathways over all prunable weights (IoU of the kept weights,
    ``|m_a ∧ m_b| / |m_a ∨ m_b|``; nan for one language), computed from the mask bits."""
    from espnet_s3net.masks.report import iou_by_layer

    masks = SubnetMasks.load(path)
    missing = [lang for lang in langs if lang not in masks.languages]
    if missing:
        raise ValueError(f"{path} has no mask for {', '.join(missing)} (it has {' '.join(masks.languages)})")
    kept = sum(int(np.bitwise_count(masks.packed(lang).numpy()).sum()) for lang in langs)
    sparsity = 1.0 - kept / (masks.numel * len(langs))
    _, mask_langs, iou = iou_by_layer(masks)
    index = [mask_langs.index(lang) for lang in langs]
    overall = iou[-1][np.ix_(index, index)]
    overlap = float(overall[np.triu_indices(len(langs), 1)].mean()) if len(langs) > 1 else math.nan
    return sparsity, overlap


def _describe_masks(masks: Optional[ExperimentMasks]) -> str:
    """The mask column: dense, learned in fine-tuning (method, importance) or fixed (method)."""
    if masks is None:
        return "none (dense)"
    meta = SubnetMasks.load(masks.path).meta
    method = meta.get("method", "?")
    if masks.learned:
        config = meta.get("config") or {}
        regrow = f", regrow every {config['regrow_every']}" if config.get("regrow_every") else ""
        return f"learned in fine-tuning: {method}, {config.get('importance', '?')}{regrow}"
    return f"fixed before fine-tuning: {method} ({meta.get('scope', '?')})"


def pathways_section(table, order: Sequence[str], arms: Mapping[str, Sequence[str]],
                     arm_masks: Mapping[str, Sequence[Optional[ExperimentMasks]]], control: str,
                     metric: str) -> List[str]:
    """The pathways table: each arm's per-language and Avg rates (as the first table: mean ± sd
    over seeds [bootstrap interval]), Avg relative to the control, and the sparsity and mean
    pairwise overlap between the languages' pathways, from each seed's mask file
    (:func:`experiment_masks`, :func:`mask_statistics`; mean ± sd over seeds)."""
    langs = list(table.langs)
    columns = langs + ["Avg"]
    lines = ["## Pathways", "",
             f"{metric} (%) as in the first table (mean ± sd over seeds [bootstrap interval]); Avg vs {control}: "
             "relative change of the mean Avg. Sparsity: fraction of the prunable weights a language's pathway "
             "leaves out (over the languages); overlap: intersection over union of two languages' kept weights "
             "over all prunable weights, mean over language pairs (1: one mask for all languages). Both from the "
             "mask file each seed's model used (`pathways/masks.pt` of a fine-tuning that learned its masks, "
             "else its `frontend_conf.mask_file`; none: dense, sparsity 0 and overlap 1), mean ± sd over seeds.",
             "", _row(["arm", "seeds", "masks", *columns, f"Avg vs {control}", "sparsity", "overlap"]),
             "|---|---:|---|" + "---:|" * (len(columns) + 3)]
    control_avg = table.mean_sd(control, "Avg")[0]
    for name in order:
        cells = [_rate_cell(table, name, column) for column in columns]
        avg = table.mean_sd(name, "Avg")[0]
        relative = "-" if name == control or not control_avg else f"{100.0 * (avg - control_avg) / control_avg:+.1f}%"
        stats = [(0.0, 1.0) if masks is None else mask_statistics(masks.path, langs) for masks in arm_masks[name]]
        sparsity = _mean_sd_digits(mean_sd([s for s, _ in stats]), 2)
        overlap = _mean_sd_digits(mean_sd([o for _, o in stats]), 3)
        lines.append(_row([name, str(len(arms[name])), _describe_masks(arm_masks[name][0]), *cells, relative,
                           sparsity, overlap]))
    return lines + [""]


def _mean_sd_digits(mean_sd_value: Tuple[float, float], digits: int) -> str:
    value, sd = mean_sd_value
    return _num(value, digits) if math.isnan(sd) else f"{_num(value, digits)} ± {_num(sd, digits)}"


# ---------------------------------------------------------------------------------------------
# The Distill-L2S experiment: each language's rate without (the control) and with the loss.


def distill_l2s_section(table, order: Sequence[str], control: str, metric: str, pct: str = "95%",
                        step: Optional[Mapping] = None) -> List[str]:
    """The Distill-L2S table: per language (and the languages' mean, Avg) the control's rate
    (plain CTC) and each other arm's (CTC + the auxiliary loss, one arm per λ), as in the first
    table (mean ± sd over seeds [bootstrap interval]), with Δ = arm − control, its paired
    bootstrap interval and p-value (the same resamples as the paired tests below); then, with
    ``step`` (the JSON result of ``benchmark l2s_step``), the loss's step-time cost."""
    rows = list(table.langs) + ["Avg"]
    others = [name for name in order if name != control]
    header = ["language", f"{control} (no L2S loss)"]
    for name in others:
        header += [name, f"Δ {name}", f"{pct} interval", "p"]
    lines = ["## Distill-L2S", "",
             f"{metric} (%) of each low-resource language, fine-tuned alone (one model per language and seed), "
             f"without the Distill-L2S loss ({control}: plain CTC, λ = 0) and with it (one arm per λ): mean ± sd "
             f"over seeds [{pct} bootstrap interval]. Δ = arm − {control} ({metric} points; negative: the loss "
             "helps), its paired bootstrap interval and two-sided p-value. Avg: mean over the languages.", "",
             _row(header), "|---|" + "---:|" * (len(header) - 1)]
    for column in rows:
        cells = [column, _rate_cell(table, control, column)]
        for name in others:
            test = table.paired(name, control, column)
            cells += [_rate_cell(table, name, column), _num(test.difference, 2),
                      f"[{_num(test.ci[0], 2)}, {_num(test.ci[1], 2)}]", _p(test.p_bootstrap)]
        lines.append(_row(cells))
    lines.append("")
    if step is not None:
        lines += [l2s_step_sentence(step), ""]
    return lines


def read_l2s_step(path: str) -> Dict:
    """The result of ``benchmark l2s_step`` saved in ``path`` (its JSON line, the last line of
    the file); ValueError if it is not one."""
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict) or result.get("benchmark") != "l2s_step":
        raise ValueError(f"{path} does not end with the JSON line of benchmark l2s_step")
    return result


def l2s_step_sentence(step: Mapping) -> str:
    """One paragraph on the step-time cost of the auxiliary loss from ``benchmark l2s_step``'s
    JSON result (keys ``ratio``, ``target``, ``step_ms``, ``teacher_ms``, ``cache_read_ms``,
    ``repeats``, ``batch``, ``seconds``, ``device``, ``threads``); a missing key is a ValueError."""
    try:
        where = f"{step['device']}" + (f", {step['threads']} thread" if step.get("threads") else "")
        return (f"Step time with the loss: **{step['ratio']:.3f}** × the plain CTC step (median of the per-round "
                f"ratios over {step['repeats']} alternating rounds in one process; plain "
                f"{step['step_ms']['plain']:.0f} ms, with the loss {step['step_ms']['l2s']:.0f} ms, of which the "
                f"teacher's forward {step['teacher_ms']:.1f} ms; reading the same states from a cache "
                f"{step['cache_read_ms']:.1f} ms; batch {step['batch']} × {step['seconds']:g} s, {where}; "
                f"target ≤ {step['target']:g}; `benchmark l2s_step` with this experiment's starting model and "
                "teacher).")
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a result of benchmark l2s_step (missing {exc})") from None


# ---------------------------------------------------------------------------------------------
# The DistilXLSR experiment: teacher and students, PER, size and decoding speed.


def distilxlsr_section(table, order: Sequence[str], control: str, metric: str,
                       params: Mapping[str, Optional[int]], rtf: Mapping[str, Tuple[float, float]],
                       rtf_note: str = "") -> List[str]:
    """The DistilXLSR table: per arm (the control is the teacher) how its self-supervised model
    was made, its #params and their share of the control's, its per-language and Avg rates (as
    the first table: mean ± sd over seeds [bootstrap interval]), Avg relative to the control,
    and its decoding real-time factor with the ratio to the control's, both from one run
    (``rtf``: arm -> (RTF, ratio); ``-`` for an arm without)."""
    from espnet_s3net.recipe_distilxlsr import ARM_DESCRIPTIONS

    columns = list(table.langs) + ["Avg"]
    lines = ["## DistilXLSR", "",
             f"Teacher ({control}, the control) and students, each fine-tuned on the same languages with the same "
             f"config, updates and seeds. {metric} (%) as in the first table (mean ± sd over seeds [bootstrap "
             f"interval]); Avg vs {control}: relative change of the mean Avg. #params: the self-supervised model "
             "(teacher or student) as the comparison table counts it; share: of the control's. RTF: decoding "
             "seconds / audio seconds, and its ratio to the control's, measured in one run"
             + (f" ({rtf_note})" if rtf_note else "") + ".", "",
             _row(["arm", "self-supervised model", "#params", "share", *columns, f"Avg vs {control}", "RTF",
                   f"RTF vs {control}"]),
             "|---|---|---:|---:|" + "---:|" * (len(columns) + 3)]
    control_avg = table.mean_sd(control, "Avg")[0]
    control_params = params.get(control)
    for name in order:
        n = params.get(name)
        share = "-" if n is None or not control_params else f"{100.0 * n / control_params:.0f}%"
        avg = table.mean_sd(name, "Avg")[0]
        relative = "-" if name == control or not control_avg else f"{100.0 * (avg - control_avg) / control_avg:+.1f}%"
        speed = rtf.get(name)
        lines.append(_row([f"{name} (control)" if name == control else name, ARM_DESCRIPTIONS.get(name, "-"),
                           "-" if n is None else _count_text(n), share,
                           *(_rate_cell(table, name, column) for column in columns), relative,
                           "-" if speed is None else f"{speed[0]:.4f}",
                           "-" if speed is None else f"{speed[1]:.3f}"]))
    return lines + [""]


def _count_text(n: int) -> str:
    """A parameter count short but exact enough to compare a student with its teacher."""
    if n >= 100_000_000:
        return f"{round(n / 1e6)}M"
    return f"{n / 1e6:.1f}M" if n >= 1_000_000 else f"{n / 1e3:.1f}k"
