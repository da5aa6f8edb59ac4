#pragma once

#include <ATen/ATen.h>

namespace vlengine {

// [N, H, W] uint8 plane, 1 where some box of that image covers the cell under
// VL-BERT's inclusive floor rule (see masked_cell_range). `boxes` is a
// contiguous double [M, 5] CPU tensor whose values were checked. The plane is
// 1/C the size of the feature map: the fused kernels read it instead of
// writing a masked copy of the input.
at::Tensor build_cell_mask_cpu(const at::Tensor& boxes, int64_t batch, int64_t height, int64_t width,
                               double scale);

}  // namespace vlengine
