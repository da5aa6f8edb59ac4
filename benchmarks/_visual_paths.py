"""The visual front-ends bench_model_step's end-to-end mode compares.

pixels       vlengine's VisualFrontEnd, masked RoIs filled in one batched ``mask_pixels`` call
features     vlengine's VisualFrontEnd, masked RoIs zeroed on the C4 map inside ``roi_align_masked``
composition  the same model built from library parts: a masked copy of the input (a [B, H, W] box mask
             from broadcast comparisons, then ``torch.where``) and torchvision's ``roi_align``
             (legacy alignment, VL-BERT's setting): what one writes without the fused ops
"""

from __future__ import annotations

import torch

from vlengine.models.visual import VisualFrontEnd, resnet_c4_frontend, tiny_c4_frontend


class CompositionFrontEnd(VisualFrontEnd):
    """VisualFrontEnd's computation with a masked image copy and torchvision.ops.roi_align."""

    def __init__(self, trunk, head, **kwargs):
        super().__init__(trunk, head, mask_mode="none", **kwargs)

    def _forward(self, images, boxes, valid, masked, image_size):
        from torchvision.ops import roi_align

        b, _, height, width = images.shape
        upper = torch.tensor([width - 1, height - 1, width - 1, height - 1], dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp_min(0), upper)
        hide = (valid & masked) if masked is not None else torch.zeros_like(valid)
        # pixel (y, x) of row n is hidden when some masked box of row n covers it (inclusive integer bounds)
        x1, y1 = boxes[..., 0].floor(), boxes[..., 1].floor()
        x2, y2 = boxes[..., 2].floor(), boxes[..., 3].floor()
        xs = torch.arange(width, device=images.device, dtype=boxes.dtype)
        ys = torch.arange(height, device=images.device, dtype=boxes.dtype)
        in_x = (xs.view(1, 1, -1) >= x1.unsqueeze(-1)) & (xs.view(1, 1, -1) <= x2.unsqueeze(-1))   # [B, R, W]
        in_y = (ys.view(1, 1, -1) >= y1.unsqueeze(-1)) & (ys.view(1, 1, -1) <= y2.unsqueeze(-1))   # [B, R, H]
        covered = torch.einsum("brh,brw->bhw", (in_y & hide.unsqueeze(-1)).to(images.dtype), in_x.to(images.dtype))
        images = torch.where(covered.unsqueeze(1) > 0, torch.full_like(images, self.fill), images)
        feature_map = self.trunk(images)

        rows = torch.arange(b, device=boxes.device, dtype=boxes.dtype).view(b, 1, 1).expand(b, boxes.shape[1], 1)
        whole = torch.tensor([0.0, 0.0, width - 1, height - 1], dtype=boxes.dtype, device=boxes.device)
        whole_rois = torch.cat((rows[:, 0], whole.expand(b, 4)), dim=1)
        rois = torch.cat((torch.cat((rows, boxes), -1)[valid], whole_rois)).to(feature_map.dtype)
        pooled = roi_align(feature_map, rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                           aligned=self.aligned)
        features = self.head(pooled)
        num_regions = int(valid.sum())
        out = features.new_zeros((b, boxes.shape[1], features.shape[-1]))
        out[valid] = features[:num_regions]
        return out, features[num_regions:]


TRUNKS = {
    "resnet101": lambda mode: resnet_c4_frontend(101, mask_mode=mode),                      # VL-BERT's
    "tiny": lambda mode: tiny_c4_frontend(mask_mode=mode),                                  # stride 16
    # main_job_e2e.yaml's: stride 8, and a one-cell ring around the masked boxes on the C4 map
    "tiny8": lambda mode: tiny_c4_frontend(mask_mode=mode, stride=8, feature_mask_margin=1),
}


def build_frontend(trunk: str, mask_mode: str):
    """The front-end of one benchmark path, ``trunk`` one of ``TRUNKS``."""
    make = TRUNKS[trunk]
    if mask_mode != "composition":
        return make(mask_mode)
    fused = make("none")
    return CompositionFrontEnd(fused.trunk, fused.head, stride=round(1 / fused.spatial_scale),
                               output_size=fused.output_size, sampling_ratio=fused.sampling_ratio,
                               aligned=fused.aligned, fill=fused.fill)
