"""vlengine.metrics.retrieval_recall against a dense argsort ranking."""

import pytest
import torch
import torch.nn.functional as F

import vlengine.metrics as metrics


def dense_recall(text, image, owner, ks):
    """The textbook evaluation (VSE++ / UNITER style) on the full score matrix."""
    scores = F.normalize(text.double(), dim=1) @ F.normalize(image.double(), dim=1).T   # [captions, images]
    order = scores.argsort(dim=1, descending=True)
    caption_rank = (order == owner[:, None]).float().argmax(dim=1)
    order_t = scores.T.argsort(dim=1, descending=True)                                   # [images, captions]
    image_rank = []
    for j in range(image.shape[0]):
        mine = (owner[order_t[j]] == j).nonzero()
        if len(mine):
            image_rank.append(int(mine[0]))
    image_rank = torch.tensor(image_rank)
    return ({k: float((caption_rank < k).double().mean()) for k in ks},
            {k: float((image_rank < k).double().mean()) for k in ks})


def make_set(gen, n_image, per_image, d, noise=1.5):
    image = torch.randn(n_image, d, generator=gen, dtype=torch.float64)
    owner = torch.arange(n_image).repeat_interleave(per_image)
    text = image[owner] + noise * torch.randn(n_image * per_image, d, generator=gen, dtype=torch.float64)
    return text, image, owner


@pytest.mark.parametrize("n_image,per_image,d,tile", [(40, 5, 16, 7), (33, 1, 8, 5), (9, 3, 4, 2048)])
def test_matches_dense_ranking(n_image, per_image, d, tile, rng):
    text, image, owner = make_set(rng, n_image, per_image, d)
    ks = (1, 5, 10)
    got = metrics.retrieval_recall(text, image, ks, tile=tile)
    t2i, i2t = dense_recall(text, image, owner, ks)
    assert got["text_to_image"] == pytest.approx(t2i, abs=1e-12)
    assert got["image_to_text"] == pytest.approx(i2t, abs=1e-12)
    # The same set through an explicit, shuffled caption -> image index.
    perm = torch.randperm(text.shape[0], generator=rng)
    shuffled = metrics.retrieval_recall(text[perm], image, ks, text_to_image=owner[perm], tile=tile)
    assert shuffled == got


def test_images_without_captions_are_candidates_only(rng):
    text, image, owner = make_set(rng, 12, 2, 8)
    distractors = torch.randn(30, 8, generator=rng, dtype=torch.float64)
    pool = torch.cat([image, distractors])
    got = metrics.retrieval_recall(text, pool, (1, 3), text_to_image=owner, tile=9)
    t2i, i2t = dense_recall(text, pool, owner, (1, 3))
    assert got["text_to_image"] == pytest.approx(t2i, abs=1e-12)
    assert got["image_to_text"] == pytest.approx(i2t, abs=1e-12)


def test_flickr30k_size_float32():
    """1k images x 5k captions with well-separated pairs: every query finds its match first."""
    gen = torch.Generator().manual_seed(0)
    text, image, _ = make_set(gen, 1000, 5, 64, noise=0.2)
    got = metrics.retrieval_recall(text.float(), image.float(), (1, 5, 10))
    assert got["text_to_image"] == {1: 1.0, 5: 1.0, 10: 1.0}
    assert got["image_to_text"] == {1: 1.0, 5: 1.0, 10: 1.0}


def test_bad_input():
    t, v = torch.randn(6, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="embedding size"):
        metrics.retrieval_recall(t, torch.randn(3, 5))
    with pytest.raises(ValueError, match="m captions per image"):
        metrics.retrieval_recall(torch.randn(7, 4), v)
    with pytest.raises(ValueError, match=r"text_to_image\[1\] = 3"):
        metrics.retrieval_recall(t, v, text_to_image=torch.tensor([0, 3, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="one entry per caption"):
        metrics.retrieval_recall(t, v, text_to_image=torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        metrics.retrieval_recall(t, v, text_to_image=torch.zeros(6))
    with pytest.raises(ValueError, match="positive ints"):
        metrics.retrieval_recall(t, v, ks=(0, 5))
    with pytest.raises(ValueError, match="at least one"):
        metrics.retrieval_recall(t[:0], v)
    bad = t.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="text has a non-finite"):
        metrics.retrieval_recall(bad, v)
