// CUDA pixel masking: one block per (box, channel) writes the box's pixels.
// Only box pixels are touched (the out-of-place form clones first). Where
// boxes overlap, blocks store the same fill value, so the result does not
// depend on their order. Boxes with an out-of-range batch index write nothing.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "vlengine/box_checks.h"
#include "vlengine/roi_geometry.h"

namespace vlengine {
namespace {

template <typename scalar_t>
__global__ void mask_pixels_kernel(scalar_t* __restrict__ images, const double* __restrict__ boxes,
                                   const scalar_t* __restrict__ fill, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t sN, int64_t sC, int64_t sH, int64_t sW) {
  const int64_t k = blockIdx.x, c = blockIdx.y;
  const double* r = boxes + 5 * k;
  if (!(r[0] >= 0 && r[0] < N)) return;
  int64_t x0, x1, y0, y1;
  if (!masked_cell_range(r[1], r[3], 1.0, W, x0, x1) || !masked_cell_range(r[2], r[4], 1.0, H, y0, y1)) return;
  scalar_t* plane = images + static_cast<int64_t>(r[0]) * sN + c * sC;
  const scalar_t v = fill[c];
  const int64_t w = x1 - x0 + 1, cells = (y1 - y0 + 1) * w;
  for (int64_t i = threadIdx.x; i < cells; i += blockDim.x) plane[(y0 + i / w) * sH + (x0 + i % w) * sW] = v;
}

void fill_boxes_cuda(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& fill) {
  TORCH_CHECK(images.dim() == 4, "images must be [N, C, H, W], got shape ", images.sizes());
  TORCH_CHECK(images.is_cuda() && boxes.is_cuda() && images.device() == boxes.device(),
              "mask_pixels (CUDA): images and boxes must be on one GPU");
  check_box_shape(boxes, "boxes");
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3), K = boxes.size(0);
  TORCH_CHECK(fill.dim() == 0 || (fill.dim() == 1 && fill.size(0) == C),
              "fill must be a scalar or have one value per channel (", C, "), got shape ", fill.sizes());
  TORCH_CHECK(C <= 65535, "mask_pixels (CUDA): at most 65535 channels, got ", C);
  if (K == 0 || images.numel() == 0) return;
  c10::cuda::CUDAGuard guard(images.device());
  const auto b = boxes.to(at::kDouble).contiguous();
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, images.scalar_type(), "mask_pixels_cuda", [&] {
    const auto fill_c = fill.to(images.options()).expand({C}).contiguous();
    mask_pixels_kernel<scalar_t><<<dim3(K, C), 256, 0, stream>>>(
        images.data_ptr<scalar_t>(), b.data_ptr<double>(), fill_c.data_ptr<scalar_t>(), N, C, H, W,
        images.stride(0), images.stride(1), images.stride(2), images.stride(3));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor mask_pixels_cuda(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& fill) {
  auto out = images.clone();
  fill_boxes_cuda(out, boxes, fill);
  return out;
}

void mask_pixels_inplace_cuda(at::Tensor& images, const at::Tensor& boxes, const at::Tensor& fill) {
  fill_boxes_cuda(images, boxes, fill);
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CUDA, m) {
  m.impl("mask_pixels", &mask_pixels_cuda);
  m.impl("mask_pixels_", &mask_pixels_inplace_cuda);
}

}  // namespace vlengine
