"""VL-BERT (Su et al., ICLR 2020): one stream over [CLS] text [SEP] regions [END]."""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch

from . import validation
from .config import VLConfig
from .embeddings import SEGMENT_C, TextEmbeddings
from .encoder import Encoder
from .init import init_bert_weights
from .outputs import VLOutput
from .packing import SequenceLayout
from .pooler import Pooler, masked_mean
from .region_embedding import RegionFeatureProjection, whole_image_boxes


class VLBert(nn.Module):
    """VL-BERT in the layout of its released code (jackroos/VL-BERT).

    Sequence per row: [CLS] text [SEP] (segment A/B, positions 0..t-1), then the
    row's regions (segment C, all at position t), then [END] (segment C,
    position t + 1), packed without padding between the parts. Every text token
    carries the whole-image visual feature; every region token carries a learned
    "region" token embedding plus its visual feature embedding
    (appearance ++ sin/cos geometry -> Linear -> ReLU). Both visual terms enter
    through LayerNorms whose weight starts at ``config.visual_ln_init`` (0 in the
    released code, so the untrained model equals its text BERT). Masked regions
    (``batch.region_masked``) get a learned appearance vector (or, with
    ``config.masked_region_embedding="visual"``, the paper's form: a learned vector
    in place of their whole visual feature embedding; with ``"computed"``, end to end only,
    nothing: the front-end's features of the masked input); text-only rows get
    a learned visual embedding and no regions and no [END].

    Args:
        config: sizes and settings.
        visual: optional end-to-end front-end (``vlengine.models.visual.VisualFrontEnd``)
            used when a batch carries ``images`` instead of ``region_features``.
    """

    def __init__(self, config: VLConfig, visual: nn.Module | None = None):
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.embeddings = TextEmbeddings(config)
        self.region_projection = RegionFeatureProjection(config)
        self.visual_ln_text = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.visual_ln_region = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.region_token = nn.Parameter(torch.empty(h))              # "object linguistic embedding"
        self.end_token = nn.Parameter(torch.empty(h))
        # A masked RoI: the released code replaces its 2048-d appearance (geometry kept); the paper
        # (sec. 3.3) its whole visual feature embedding. Only the vector in use exists, so a
        # released-form checkpoint keeps its keys and no parameter goes without a gradient.
        if config.masked_region_embedding == "visual":
            self.mask_region_embedding = nn.Parameter(torch.empty(h))
        elif config.masked_region_embedding == "appearance":
            self.mask_region_feature = nn.Parameter(torch.empty(config.region_feature_size))
        elif visual is None:
            # Precomputed features were computed from the unmasked image: kept, they would hand the
            # masked RoI's content to the model.
            raise ValueError("VLConfig.masked_region_embedding 'computed' keeps a masked RoI's features as the "
                             "end-to-end front-end computed them from the masked input; this model has no front-end "
                             "(use 'appearance' or 'visual' with precomputed region features)")
        self.text_only_visual = nn.Parameter(torch.empty(h))
        self.encoder = Encoder(config, config.num_layers)
        self.pooler = Pooler(h)
        self.visual = visual
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT init (N(0, 0.02)) everywhere; visual LayerNorm weights start at ``visual_ln_init``."""
        std = self.config.initializer_range
        init_bert_weights(self.embeddings, std)
        init_bert_weights(self.region_projection, std)
        init_bert_weights(self.encoder, std)
        init_bert_weights(self.pooler, std)
        for p in (self.region_token, self.end_token, self._mask_vector(), self.text_only_visual):
            if p is not None:
                nn.init.normal_(p, 0.0, std)
        for ln in (self.visual_ln_text, self.visual_ln_region):
            nn.init.constant_(ln.weight, self.config.visual_ln_init)
            nn.init.zeros_(ln.bias)

    def _mask_vector(self) -> nn.Parameter | None:
        """The learned vector a masked RoI gets (its appearance, or its whole visual feature embedding; None: none)."""
        if self.config.masked_region_embedding == "visual":
            return self.mask_region_embedding
        if self.config.masked_region_embedding == "appearance":
            return self.mask_region_feature
        return None

    # ---- inputs ----
    def _region_features(self, batch: VLBatch):
        """(features [B, R, F], whole-image feature [B, F] or None) from the batch or the visual front-end."""
        shared = (batch.extras or {}).get("visual")
        if shared is not None:   # computed once per image by a caller whose rows share images (VCR's choices)
            return shared
        if batch.region_features is not None:
            return batch.region_features, None
        if batch.images is None:
            raise ValueError("VLBatch has region_boxes but neither region_features nor images")
        if self.visual is None:
            raise ValueError("VLBatch carries images but this model was built without a visual front-end "
                             "(pass visual=VisualFrontEnd(...) or precomputed region_features)")
        return self.visual(batch.images, batch.region_boxes, batch.valid_regions, batch.region_masked,
                           batch.image_size)

    def embed(self, batch: VLBatch) -> tuple[torch.Tensor, SequenceLayout, dict]:
        """Embedded, packed sequence (before the encoder), its layout, and the per-part masks."""
        cfg = self.config
        validation.check_text(batch, cfg)
        text_mask = batch.text_mask
        b = text_mask.shape[0]
        text_pos = self.embeddings.text_positions(text_mask)
        text_len = batch.text_lengths
        with_regions = batch.region_boxes is not None and batch.region_boxes.shape[1] > 0
        if with_regions:
            validation.check_regions(batch, cfg, need_features=batch.region_features is not None)
            region_mask, has_regions = batch.image_regions, batch.rows_with_regions
            # regions sit at position t, [END] at t + 1
            self.embeddings.check_positions(torch.where(has_regions, text_len + 1, text_len - 1))
        else:
            self.embeddings.check_positions(text_len - 1)
        text = self.embeddings.tokens(batch.input_ids, text_pos, batch.token_type_ids)
        device = text.device

        if with_regions:
            features, whole = self._region_features(batch)
            masked = batch.region_masked if batch.region_masked is not None else torch.zeros_like(region_mask)
            if whole is None:
                # Precomputed features: the whole image is the mean of the unmasked boxes (masked
                # boxes would leak their content to every word).
                whole = masked_mean(features.float(), region_mask & ~masked)
            image_size = batch.image_size
            text_visual = self.region_projection(whole.unsqueeze(1), whole_image_boxes(image_size), image_size)[:, 0]
            text_visual = torch.where(has_regions.unsqueeze(1), text_visual, self.text_only_visual)
            if cfg.masked_region_embedding == "visual":
                visual = self.region_projection(features, batch.region_boxes, image_size)
                visual = torch.where(masked.unsqueeze(-1), self.mask_region_embedding.to(visual.dtype), visual)
            elif cfg.masked_region_embedding == "appearance":
                appearance = torch.where(masked.unsqueeze(-1), self.mask_region_feature.to(features.dtype), features)
                visual = self.region_projection(appearance, batch.region_boxes, image_size)
            else:   # "computed": the front-end hid the masked RoI (its mask_mode) or, with mask_mode none, did not
                visual = self.region_projection(features, batch.region_boxes, image_size)
            regions = self.visual_ln_region(visual)
            region_pos = self.embeddings.position_embeddings(text_len).unsqueeze(1)   # one position for all
            segment_c = self.embeddings.token_type_embeddings.weight[SEGMENT_C]
            regions = regions + self.region_token + region_pos + segment_c
            end = (self.end_token + self.embeddings.position_embeddings(text_len + 1) + segment_c).unsqueeze(1)
            end_mask = has_regions.unsqueeze(1)
        else:
            has_regions = torch.zeros(b, dtype=torch.bool, device=device)
            region_mask = torch.zeros((b, 0), dtype=torch.bool, device=device)
            regions = text.new_zeros((b, 0, text.shape[-1]))
            text_visual = self.text_only_visual.expand(b, -1)
            end = text.new_zeros((b, 1, text.shape[-1]))
            end_mask = torch.zeros((b, 1), dtype=torch.bool, device=device)
        text_visual = self.visual_ln_text(text_visual).unsqueeze(1)
        grounded = (batch.extras or {}).get("text_regions")   # [B, T] region a token mentions, -1 none
        if grounded is not None and with_regions:
            # grounded text embedding (VL-BERT's VCR): a mention carries its region's visual feature
            index = grounded.clamp(min=0).unsqueeze(-1).expand(-1, -1, visual.shape[-1])
            mentioned = self.visual_ln_text(torch.gather(visual, 1, index))
            text_visual = torch.where((grounded >= 0).unsqueeze(-1), mentioned, text_visual)
        text = text + text_visual

        layout = SequenceLayout([text_mask, region_mask, end_mask], compact=cfg.pack, unpad=cfg.unpad)
        x = self.embeddings.normalize(layout.pack([text, regions.to(text.dtype), end.to(text.dtype)]))
        return x, layout, {"region_mask": region_mask, "has_regions": has_regions}

    def forward(self, batch: VLBatch) -> VLOutput:
        """Encode a batch; see ``VLOutput`` for the shapes. ``image`` is the mean of the region outputs."""
        x, layout, parts = self.embed(batch)
        x = self.encoder(x, layout)
        text = layout.unpack(x, 0)
        region_mask = parts["region_mask"]
        regions = layout.unpack(x, 1) if batch.region_boxes is not None else None
        cls = text[torch.arange(text.shape[0], device=text.device), batch.cls_index]
        image = masked_mean(regions, region_mask) if regions is not None else None
        return VLOutput(text=text, regions=regions, pooled=self.pooler(cls), image=image,
                        extras={"end": layout.unpack(x, 2)[:, 0], "region_mask": region_mask,
                                "has_regions": parts["has_regions"]})
