"""Training with the fused path follows the plain path's trajectory (Liger-style convergence check)."""

import torch

from vlengine.models import VLBert, VLConfig
from vlengine.models.heads import MaskedLMHead, RegionClassificationHead


def _train(config, fused_mlm, batches, steps=8):
    torch.manual_seed(0)
    model = VLBert(config).train()
    mlm = MaskedLMHead(config, model.embeddings.word_embeddings, fused=fused_mlm, chunk_size=7)
    mrc = RegionClassificationHead(config)
    params = list({id(p): p for m in (model, mlm, mrc) for p in m.parameters()}.values())
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        opt.zero_grad()
        out = model(batch)
        text_loss = mlm.loss(out.text, batch.mlm_labels) if fused_mlm else \
            mlm.full_vocabulary_loss(out.text, batch.mlm_labels)
        loss = text_loss + mrc.loss(out.regions, batch.region_masked, soft_targets=batch.region_soft_labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_fused_and_plain_paths_train_identically(make_batch):
    common = dict(hidden_dropout=0.0, attention_dropout=0.0, visual_dropout=0.0, visual_ln_init=1.0)
    fused = VLConfig.tiny(**common)
    plain = VLConfig.tiny(pack=False, unpad=False, attention="eager", **common)
    batches = [make_batch(fused, batch=4, text_len=12, regions=9) for _ in range(2)]
    a = _train(fused, True, batches)
    b = _train(plain, False, batches)
    assert a[-1] < a[0] - 0.1          # it learns
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=2e-4, rtol=2e-4)
