// Builds the [N, H, W] uint8 plane of masked cells on the GPU (see
// build_cell_mask_cpu): one block per box, threads striding over its cells.
// Overlapping boxes store the same value 1, so their writes never conflict in
// effect. Boxes with a batch index out of range are skipped, never written.
#pragma once

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "vlengine/roi_geometry.h"

namespace vlengine {

template <typename box_t>
__global__ void fill_cell_mask_kernel(const box_t* __restrict__ boxes, int64_t num_boxes, int64_t batch,
                                      int64_t height, int64_t width, double scale, uint8_t* __restrict__ mask) {
  const int64_t k = blockIdx.x;
  if (k >= num_boxes) return;
  const box_t* r = boxes + 5 * k;
  const double n = static_cast<double>(r[0]);
  if (!(n >= 0 && n < batch)) return;
  int64_t x0, x1, y0, y1;
  if (!masked_cell_range(static_cast<double>(r[1]), static_cast<double>(r[3]), scale, width, x0, x1)) return;
  if (!masked_cell_range(static_cast<double>(r[2]), static_cast<double>(r[4]), scale, height, y0, y1)) return;
  uint8_t* plane = mask + static_cast<int64_t>(n) * height * width;
  const int64_t w = x1 - x0 + 1, cells = (y1 - y0 + 1) * w;
  for (int64_t i = threadIdx.x; i < cells; i += blockDim.x) plane[(y0 + i / w) * width + x0 + i % w] = 1;
}

inline at::Tensor build_cell_mask_cuda(const at::Tensor& boxes, int64_t batch, int64_t height, int64_t width,
                                       double scale) {
  auto mask = at::zeros({batch, height, width}, boxes.options().dtype(at::kByte));
  const int64_t m = boxes.size(0);
  if (m == 0 || mask.numel() == 0) return mask;
  const auto b = boxes.to(at::kDouble).contiguous();
  auto stream = at::cuda::getCurrentCUDAStream();
  fill_cell_mask_kernel<double><<<m, 256, 0, stream>>>(b.data_ptr<double>(), m, batch, height, width, scale,
                                                         mask.data_ptr<uint8_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return mask;
}

}  // namespace vlengine
