import math

import torch
import torch.nn.functional as F

from espnet_s3net.models.contrastive import contrastive_logits, contrastive_loss, sample_negatives
from espnet_s3net.models.quantizer import GumbelVectorQuantizer
from espnet_s3net.models.span_mask import span_mask


def test_span_mask_respects_lengths_and_span_length():
    lengths = torch.tensor([100, 40, 5])
    mask = span_mask(3, 100, 0.65, 10, min_masks=2, lengths=lengths, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 100) and mask.dtype == torch.bool
    assert not mask[1, 40:].any() and not mask[2, 5:].any()
    assert mask[2, :5].all()  # a span longer than the utterance covers it all
    frac = mask[0].float().mean().item()
    assert 0.3 < frac < 0.8  # 0.65 before overlaps
    # every run of masked frames is made of whole spans: runs are >= 10 long
    runs, current = [], 0
    for v in mask[0].tolist() + [False]:
        if v:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert min(runs) >= 10


def test_span_mask_deterministic_for_a_generator():
    a = span_mask(4, 50, 0.5, 5, generator=torch.Generator().manual_seed(3))
    b = span_mask(4, 50, 0.5, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_quantizer_temperature_schedule_and_state():
    torch.manual_seed(0)
    q = GumbelVectorQuantizer(8, 2, 4, 6, temperature=(2.0, 0.5, 0.9)).train()
    for _ in range(3):
        q(torch.randn(5, 8))  # forwards never advance the schedule
    assert int(q.num_updates) == 0 and q.temperature == 2.0
    for n in range(1, 4):
        q.count_update()
        assert math.isclose(q.temperature, 2.0 * 0.9 ** n)
    for _ in range(100):
        q.count_update()
    assert q.temperature == 0.5
    assert int(q.state_dict()["num_updates"]) == 103


def test_quantizer_eval_picks_argmax_codes():
    torch.manual_seed(0)
    q = GumbelVectorQuantizer(8, 2, 4, 6).eval()
    x = torch.randn(5, 8)
    out, code_ppl, prob_ppl = q(x)
    idx = q.weight_proj(x).view(5, 2, 4).argmax(-1)
    book = q.codevectors.view(2, 4, 3)
    expected = torch.cat([book[0][idx[:, 0]], book[1][idx[:, 1]]], dim=1)
    torch.testing.assert_close(out, expected)
    assert 1.0 <= code_ppl <= 8.0 and 1.0 <= prob_ppl <= 8.0


def test_negatives_come_from_the_same_utterance_and_skip_self():
    frame_utt = torch.tensor([0] * 5 + [1] * 3 + [2] * 1)
    neg = sample_negatives(frame_utt, 50, generator=torch.Generator().manual_seed(0))
    assert neg.shape == (9, 50)
    assert torch.equal(frame_utt[neg], frame_utt[:, None].expand(9, 50))
    own = torch.arange(9)[:, None]
    assert not (neg[:8] == own[:8]).any()  # never itself when others exist
    assert set(neg[0].tolist()) == {1, 2, 3, 4}


def test_contrastive_loss_matches_direct_computation():
    torch.manual_seed(0)
    context, targets = torch.randn(4, 3), torch.randn(4, 3)
    negatives = torch.tensor([[1, 2], [0, 0], [3, 1], [2, 2]])
    logits = contrastive_logits(context, targets, negatives, temperature=0.1)
    expected = torch.empty(4, 3)
    for i in range(4):
        cands = [targets[i], targets[negatives[i, 0]], targets[negatives[i, 1]]]
        for j, c in enumerate(cands):
            expected[i, j] = torch.dot(context[i], c) / (context[i].norm() * c.norm()) / 0.1
    torch.testing.assert_close(logits, expected)
    loss, acc = contrastive_loss(logits)
    manual = -sum(F.log_softmax(expected[i], 0)[0] for i in range(4)) / 4
    torch.testing.assert_close(loss, manual)
    assert acc == (expected.argmax(1) == 0).float().mean()


def test_distractor_equal_to_positive_is_excluded():
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    logits = contrastive_logits(torch.randn(3, 2), targets, torch.tensor([[1, 2], [0, 2], [0, 1]]), 0.1)
    assert logits[0, 1] == float("-inf") and logits[1, 1] == float("-inf")
    assert torch.isfinite(logits[2]).all()
