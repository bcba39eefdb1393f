"""Experiment dirs scored as the recipe's stage 11 leaves them (``decode_test_<lang>/score_wer``),
for the tests of the RESULTS tables."""

import os
from typing import Dict, Sequence

from espnet_s3net.scoring import sclite


def reference(langs: Sequence[str]) -> Dict[str, str]:
    """Ten utterances of ten tokens per language (``<lang>_u<i>``): an error rate of r % is r errors."""
    return {f"{lang}_u{i}": " ".join(f"{lang[0]}{j}" for j in range(10)) for lang in langs for i in range(10)}


def scored_experiment(exp_dir, errors_by_lang: Dict[str, int], ref: Dict[str, str]) -> str:
    """``exp_dir`` with each language's hypotheses scored by sclite: ``errors_by_lang[lang]``
    deletions (the first tokens of the first utterances); returns the dir as a string."""
    for lang, errors in errors_by_lang.items():
        refs = {u: t for u, t in ref.items() if u.startswith(f"{lang}_")}
        hyps = {}
        for utt in sorted(refs):
            tokens = refs[utt].split()
            drop = min(errors, len(tokens))
            errors -= drop
            hyps[utt] = " ".join(tokens[drop:])
        sclite.score(refs, hyps, os.path.join(exp_dir, f"decode_test_{lang}", "score_wer"), "word")
    return str(exp_dir)
