"""Every pretraining head: values against plain computations, gradients, empty selections, bad labels."""

import pytest
import torch
import torch.nn.functional as F

from vlengine.batch import IGNORE_INDEX
from vlengine.models import VLConfig
from vlengine.models.heads import (ContrastiveProjection, ImageQAHead, InterBertITMHead, ITMHead, MaskedLMHead,
                                   NSPHead, RegionClassificationHead, RegionFeatureRegressionHead,
                                   fused_linear_cross_entropy)

CFG = VLConfig.tiny()


def _mlm(gen):
    torch.manual_seed(int(torch.randint(0, 10**6, (1,), generator=gen)))
    return MaskedLMHead(CFG, torch.nn.Embedding(CFG.vocab_size, CFG.hidden_size))


def _labels(gen, b, t, classes, p=0.3):
    labels = torch.randint(0, classes, (b, t), generator=gen)
    return labels.masked_fill(torch.rand(b, t, generator=gen) > p, IGNORE_INDEX)


def test_masked_row_logits_equal_full_logits_at_those_rows(rng):
    head = _mlm(rng)
    hidden = torch.randn(3, 11, CFG.hidden_size, generator=rng)
    labels = _labels(rng, 3, 11, CFG.vocab_size)
    logits, picked = head.masked_logits(hidden, labels)
    keep = labels != IGNORE_INDEX
    torch.testing.assert_close(logits, head(hidden)[keep])
    assert torch.equal(picked, labels[keep])


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_fused_mlm_loss_and_gradients_equal_full_vocabulary(rng, chunk):
    head = _mlm(rng)
    head.chunk_size = chunk
    hidden = torch.randn(4, 13, CFG.hidden_size, generator=rng, requires_grad=True)
    labels = _labels(rng, 4, 13, CFG.vocab_size)
    results = []
    for loss_fn in (lambda: head.loss(hidden, labels, fused=True), lambda: head.loss(hidden, labels, fused=False),
                    lambda: head.full_vocabulary_loss(hidden, labels)):
        head.zero_grad()
        hidden.grad = None
        loss = loss_fn()
        loss.backward()
        results.append((loss.detach(), hidden.grad.clone(), head.word_embeddings.weight.grad.clone(),
                        head.bias.grad.clone(), head.transform.dense.weight.grad.clone()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fused_linear_cross_entropy_gradcheck(rng):
    h = torch.randn(7, 5, dtype=torch.float64, generator=rng, requires_grad=True)
    w = torch.randn(11, 5, dtype=torch.float64, generator=rng, requires_grad=True)
    b = torch.randn(11, dtype=torch.float64, generator=rng, requires_grad=True)
    y = torch.randint(0, 11, (7,), generator=rng)
    assert torch.autograd.gradcheck(lambda h, w, b: fused_linear_cross_entropy(h, w, b, y, chunk_size=3), (h, w, b))
    torch.testing.assert_close(fused_linear_cross_entropy(h, w, b, y, 3), F.cross_entropy(h @ w.t() + b, y))


def test_fused_linear_cross_entropy_bad_input(rng):
    h, w = torch.randn(4, 5), torch.randn(9, 5)
    with pytest.raises(ValueError, match="labels must be"):
        fused_linear_cross_entropy(h, w, None, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="must agree"):
        fused_linear_cross_entropy(h, torch.randn(9, 6), None, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="no rows"):
        fused_linear_cross_entropy(h[:0], w, None, torch.zeros(0, dtype=torch.long))


def test_mlm_bad_and_empty_labels(rng):
    head = _mlm(rng)
    hidden = torch.randn(2, 5, CFG.hidden_size, generator=rng, requires_grad=True)
    with pytest.raises(ValueError, match="mlm_labels must be in"):
        head.loss(hidden, torch.full((2, 5), CFG.vocab_size))
    with pytest.raises(ValueError, match="mlm_labels must have shape"):
        head.loss(hidden, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        head.loss(hidden, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="no mlm_labels"):
        head.loss(hidden, None)
    loss = head.loss(hidden, torch.full((2, 5), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0 and head.bias.grad is not None and hidden.grad.abs().max() == 0


def test_region_classification_soft_and_hard(rng):
    head = RegionClassificationHead(CFG)
    hidden = torch.randn(3, 6, CFG.hidden_size, generator=rng)
    masked = torch.rand(3, 6, generator=rng) < 0.5
    masked[0, 0] = True
    soft = torch.rand(3, 6, CFG.num_region_classes, generator=rng)
    logits = head(hidden)[masked]
    p = soft[masked] / soft[masked].sum(-1, keepdim=True)
    expected = -(p * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(head.loss(hidden, masked, soft_targets=soft), expected)
    hard = torch.randint(0, CFG.num_region_classes, (3, 6), generator=rng)
    torch.testing.assert_close(head.loss(hidden, masked, hard), F.cross_entropy(logits, hard[masked]))
    # a one-hot soft target is the hard loss
    onehot = F.one_hot(hard, CFG.num_region_classes).float()
    torch.testing.assert_close(head.loss(hidden, masked, soft_targets=onehot), F.cross_entropy(logits, hard[masked]))
    with pytest.raises(ValueError, match="region_targets must be in"):
        head.loss(hidden, masked, torch.full((3, 6), CFG.num_region_classes))
    with pytest.raises(ValueError, match="non-negative"):
        head.loss(hidden, masked, soft_targets=-soft)
    with pytest.raises(ValueError, match="region_soft_labels must be"):
        head.loss(hidden, masked, soft_targets=soft[..., :3])
    assert head.loss(hidden, torch.zeros_like(masked), hard).item() == 0


def test_region_feature_regression(rng):
    for kind, fn in (("mse", F.mse_loss), ("smooth_l1", F.smooth_l1_loss)):
        head = RegionFeatureRegressionHead(CFG, kind)
        hidden = torch.randn(2, 5, CFG.hidden_size, generator=rng)
        target = torch.randn(2, 5, CFG.region_feature_size, generator=rng)
        masked = torch.tensor([[True, False, True, False, False], [False, False, False, False, True]])
        torch.testing.assert_close(head.loss(hidden, masked, target), fn(head(hidden)[masked], target[masked]))
    with pytest.raises(ValueError, match="region_feature_targets must be"):
        head.loss(hidden, masked, target[..., :3])
    with pytest.raises(ValueError, match="kind"):
        RegionFeatureRegressionHead(CFG, "l3")


def test_pair_heads(rng):
    pooled = torch.randn(4, CFG.hidden_size, generator=rng)
    labels = torch.tensor([0, 1, 1, 0])
    for head in (ITMHead(CFG), NSPHead(CFG)):
        torch.testing.assert_close(head.loss(pooled, labels), F.cross_entropy(head(pooled), labels))
        with pytest.raises(ValueError, match="in \\[0, 2\\)"):
            head.loss(pooled, torch.tensor([0, 1, 2, 0]))
        with pytest.raises(ValueError, match="shape \\[4\\]"):
            head.loss(pooled, labels[:3])
    inter = InterBertITMHead(CFG)
    image = torch.randn(4, CFG.hidden_size, generator=rng)
    assert inter(pooled, image).shape == (4, 2)
    torch.testing.assert_close(inter.loss(pooled, image, labels), F.cross_entropy(inter(pooled, image), labels))


def test_image_qa_soft_score_bce(rng):
    head = ImageQAHead(CFG)
    pooled = torch.randn(3, CFG.hidden_size, generator=rng)
    scores = torch.rand(3, CFG.num_answers, generator=rng)
    expected = F.binary_cross_entropy_with_logits(head(pooled), scores, reduction="sum") / 3
    torch.testing.assert_close(head.loss(pooled, scores), expected)
    rows = torch.tensor([True, False, True])
    torch.testing.assert_close(head.loss(pooled, scores, rows), F.binary_cross_entropy_with_logits(
        head(pooled)[rows], scores[rows], reduction="sum") / 2)
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        head.loss(pooled, scores + 1)
    with pytest.raises(ValueError, match="answer scores must be"):
        head.loss(pooled, scores[:, :3])


def test_contrastive_projection(rng):
    proj = ContrastiveProjection(CFG)
    e, f = proj(torch.randn(5, CFG.hidden_size, generator=rng), torch.randn(5, CFG.hidden_size, generator=rng))
    assert e.shape == f.shape == (5, CFG.contrastive_dim)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(5))


def test_fused_linear_cross_entropy_scales_by_upstream_gradient(rng):
    h = torch.randn(9, 6, generator=rng, requires_grad=True)
    w = torch.randn(13, 6, generator=rng, requires_grad=True)
    y = torch.randint(0, 13, (9,), generator=rng)
    (2.5 * fused_linear_cross_entropy(h, w, None, y, chunk_size=4)).backward()
    h2, w2 = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    (2.5 * F.cross_entropy(h2 @ w2.t(), y)).backward()
    torch.testing.assert_close(h.grad, h2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_mlm_auto_policy_chunks_only_large_blocks(rng, monkeypatch):
    import vlengine.models.heads.mlm as mlm_module
    calls = []
    real = mlm_module.fused_linear_cross_entropy
    monkeypatch.setattr(mlm_module, "fused_linear_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))
    head = _mlm(rng)
    hidden = torch.randn(2, 6, CFG.hidden_size, generator=rng)
    labels = torch.randint(0, CFG.vocab_size, (2, 6), generator=rng)
    head.loss(hidden, labels)                  # 12 x 1000 logits: below the threshold, one matmul
    assert calls == []
    head.fused_threshold = 100
    head.loss(hidden, labels)
    assert calls == [1]
