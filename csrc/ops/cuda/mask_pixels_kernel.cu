// CUDA pixel masking: one block per (box, channel) writes the box's pixels.
// Only box pixels are touched (the out-of-place form clones first). Where
// boxes overlap, blocks store the same fill value, so the result does not
// depend on their order. Boxes with an out-of-range batch index write nothing.
// Where the rows are contiguous (stride 1 along W, the usual NCHW layout) each
// warp fills whole box rows with 16-byte vector stores between a scalar head
// (up to the first 16-byte boundary) and a scalar tail; other layouts
// (channels-last) store element by element. Unmeasured: measure when a GPU is
// lent (the vector path also drops a 64-bit division per pixel).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "vlengine/box_checks.h"
#include "vlengine/roi_geometry.h"

namespace vlengine {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

// 16 bytes holding copies of v, for vector stores.
template <typename scalar_t>
__device__ __forceinline__ uint4 splat16(scalar_t v) {
  constexpr int kPerVector = sizeof(uint4) / sizeof(scalar_t);
  union {
    uint4 vector;
    unsigned char bytes[sizeof(uint4)];
  } packed;
  for (int j = 0; j < kPerVector; ++j) memcpy(packed.bytes + j * sizeof(scalar_t), &v, sizeof(scalar_t));
  return packed.vector;
}

// One warp stores v into row[0, len): scalar head up to a 16-byte boundary, vectors, scalar tail.
template <typename scalar_t>
__device__ __forceinline__ void fill_contiguous_row(scalar_t* row, int64_t len, scalar_t v, uint4 v16, int lane) {
  constexpr int64_t kPerVector = sizeof(uint4) / sizeof(scalar_t);
  const auto misalignment = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) % sizeof(uint4));
  // An element address is a multiple of sizeof(scalar_t), and so is the distance to the boundary.
  const int64_t head = std::min<int64_t>(len, misalignment == 0 ? 0 : (sizeof(uint4) - misalignment) / sizeof(scalar_t));
  const int64_t vectors = (len - head) / kPerVector;
  for (int64_t i = lane; i < head; i += kWarp) row[i] = v;
  uint4* body = reinterpret_cast<uint4*>(row + head);
  for (int64_t i = lane; i < vectors; i += kWarp) body[i] = v16;
  for (int64_t i = head + vectors * kPerVector + lane; i < len; i += kWarp) row[i] = v;
}

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
  const int64_t w = x1 - x0 + 1;
  if (sW == 1) {  // contiguous rows: a warp per row, vector stores
    const uint4 v16 = splat16(v);
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, warps = blockDim.x / kWarp;
    for (int64_t y = y0 + warp; y <= y1; y += warps) fill_contiguous_row(plane + y * sH + x0, w, v, v16, lane);
    return;
  }
  const int64_t cells = (y1 - y0 + 1) * w;
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
    mask_pixels_kernel<scalar_t><<<dim3(K, C), kThreads, 0, stream>>>(
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
