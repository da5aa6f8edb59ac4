"""Where every token of a multi-part sequence sits: packing parts without padding between them.

A VL sequence is built from parts (text, regions, [END]) that each arrive padded
to their own width. ``SequenceLayout`` places the real entries of each part one
after another in every row (UNITER's gather-index packing), so a row of 12 words
and 30 regions is 43 positions long whatever the batch's widest text is. The
encoder then runs either on the padded [B, L, H] form or, with ``unpad``, on the
[N, H] rows of real tokens only (attention pads them back for its batched
matmuls): the dense layers, which hold ~97% of the FLOPs at these lengths, never
touch padding.
"""

from __future__ import annotations

import torch


class SequenceLayout:
    """The packed positions of a batch of multi-part sequences.

    Args:
        masks: one [B, n_i] bool tensor per part, True on real entries, in sequence order.
        compact: pack each row's real entries without gaps (True), or keep every part at
            a fixed offset with its padding in place (False: the plain padded layout).
        unpad: hidden states travel as [N, H] real-token rows instead of [B, L, H].
    """

    def __init__(self, masks: list[torch.Tensor], compact: bool = True, unpad: bool = False):
        if not masks:
            raise ValueError("SequenceLayout needs at least one part")
        batch = masks[0].shape[0]
        device = masks[0].device
        self.batch_size = batch
        self.unpad = unpad
        counts = [m.sum(1) for m in masks]
        if compact:
            offsets, total = [], torch.zeros(batch, dtype=torch.long, device=device)
            for c in counts:
                offsets.append(total)
                total = total + c
            self.length = int(total.max()) if batch else 0
        else:
            offsets, width = [], 0
            for m in masks:
                offsets.append(torch.full((batch,), width, dtype=torch.long, device=device))
                width += m.shape[1]
            self.length = width
        rows = torch.arange(batch, device=device).unsqueeze(1)
        flat = []
        for m, offset in zip(masks, offsets):
            within = (m.cumsum(1) - 1) if compact else torch.arange(m.shape[1], device=device).expand_as(m)
            flat.append(rows * self.length + offset.unsqueeze(1) + within)
        key_mask = torch.zeros(batch * self.length, dtype=torch.bool, device=device)
        for m, f in zip(masks, flat):
            key_mask[f[m]] = True
        self.key_mask = key_mask.view(batch, self.length)
        self.real_positions = key_mask.nonzero().squeeze(1)          # flat index of each real token
        self.num_tokens = self.real_positions.numel()
        self.has_padding = self.num_tokens != batch * self.length
        if unpad:   # hidden rows are numbered by the real tokens' order
            compact_index = key_mask.long().cumsum(0) - 1
            slots = [compact_index[f] for f in flat]
            pad_slot = self.num_tokens
        else:
            slots = flat
            pad_slot = batch * self.length
        self._masks = masks
        # index of every entry of every part in the hidden rows; padding reads an appended zero row
        self._gather = [torch.where(m, s, torch.full_like(s, pad_slot)) for m, s in zip(masks, slots)]
        self._scatter = [s[m] for m, s in zip(masks, slots)]

    # ---- parts <-> hidden states ----
    def pack(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Place the real entries of each [B, n_i, H] part: [N, H] if unpad else [B, L, H] (zeros at padding)."""
        if len(parts) != len(self._masks):
            raise ValueError(f"SequenceLayout.pack: expected {len(self._masks)} parts, got {len(parts)}")
        values = torch.cat([p[m] for p, m in zip(parts, self._masks)])
        index = torch.cat(self._scatter)
        rows = self.num_tokens if self.unpad else self.batch_size * self.length
        packed = values.new_zeros((rows, values.shape[-1])).index_copy(0, index, values)
        return packed if self.unpad else packed.view(self.batch_size, self.length, -1)

    def unpack(self, hidden: torch.Tensor, part: int) -> torch.Tensor:
        """Part ``part`` back in its own padded [B, n, H] layout (zeros where it was padding)."""
        rows = hidden.reshape(-1, hidden.shape[-1])
        rows = torch.cat((rows, rows.new_zeros((1, rows.shape[-1]))))
        return rows[self._gather[part]]

    # ---- what attention needs ----
    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C] real-token rows -> [B, L, C]; identity for the padded form."""
        if not self.unpad:
            return x
        if not self.has_padding:
            return x.view(self.batch_size, self.length, -1)
        padded = x.new_zeros((self.batch_size * self.length, x.shape[-1])).index_copy(0, self.real_positions, x)
        return padded.view(self.batch_size, self.length, -1)

    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, C] -> [N, C] real-token rows; identity for the padded form."""
        if not self.unpad:
            return x
        flat = x.reshape(self.batch_size * self.length, -1)
        return flat if not self.has_padding else flat[self.real_positions]

    @property
    def attention_mask(self) -> torch.Tensor | None:
        """[B, 1, 1, L] bool (True = attend) for scaled_dot_product_attention, or None without padding."""
        return self.key_mask[:, None, None, :] if self.has_padding else None
