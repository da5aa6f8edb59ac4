// CUDA IoU-neighbourhood masking: one block per image. The block sweeps its
// image's boxes kThreads at a time; each sweep gathers the valid anchors of
// the tile into shared memory (box and area), then every thread tests the
// boxes it owns (i = threadIdx.x, + blockDim.x, ...) against them. A thread
// always owns the same boxes, so it alone reads and writes their outputs: no
// atomics on the result, and memory stays O(B * N) (no IoU matrix). Only
// indices below N are ever read, whatever the values.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "vlengine/box_iou.h"

namespace vlengine {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void iou_neighbourhood_mask_kernel(const T* __restrict__ boxes, const bool* __restrict__ valid,
                                              const bool* __restrict__ anchors, bool* __restrict__ out, int64_t N,
                                              T threshold, bool inclusive) {
  __shared__ T tile_box[kThreads * 4];
  __shared__ T tile_area[kThreads];
  __shared__ int tile_count;
  const int64_t img = blockIdx.x;
  const T* box = boxes + img * N * 4;
  const bool* v = valid + img * N;
  const bool* a = anchors + img * N;
  bool* o = out + img * N;

  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) o[i] = v[i] && a[i];
  for (int64_t start = 0; start < N; start += kThreads) {
    if (threadIdx.x == 0) tile_count = 0;
    __syncthreads();
    const int64_t j = start + threadIdx.x;
    if (j < N && v[j] && a[j]) {
      const int slot = atomicAdd(&tile_count, 1);  // order within the tile does not matter: we test "any"
      for (int c = 0; c < 4; ++c) tile_box[4 * slot + c] = box[4 * j + c];
      tile_area[slot] = box_area(box + 4 * j);
    }
    __syncthreads();
    const int count = tile_count;
    if (count > 0) {
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        if (!v[i] || o[i]) continue;
        const T* bi = box + 4 * i;
        const T area = box_area(bi);
        bool hit = false;
        for (int k = 0; k < count && !hit; ++k)
          hit = iou_passes(box_iou(bi, tile_box + 4 * k, area, tile_area[k]), threshold, inclusive);
        if (hit) o[i] = true;
      }
    }
    __syncthreads();  // the next tile reuses the shared arrays
  }
}

void check_flags(const at::Tensor& flags, const at::Tensor& boxes, const char* name) {
  TORCH_CHECK(flags.scalar_type() == at::kBool, name, " must be a bool tensor, got ", flags.scalar_type());
  TORCH_CHECK(flags.dim() == 2 && flags.size(0) == boxes.size(0) && flags.size(1) == boxes.size(1), name,
              " must be [B, N] = [", boxes.size(0), ", ", boxes.size(1), "], got shape ", flags.sizes());
  TORCH_CHECK(flags.device() == boxes.device(), "iou_neighbourhood_mask (CUDA): ", name,
              " must be on the boxes' GPU");
}

at::Tensor iou_neighbourhood_mask_cuda(const at::Tensor& boxes, const at::Tensor& valid, const at::Tensor& anchors,
                                       double threshold, bool inclusive) {
  TORCH_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, "boxes must be [B, N, 4] (x1, y1, x2, y2), got shape ",
              boxes.sizes());
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "boxes must be a floating tensor, got ", boxes.scalar_type());
  TORCH_CHECK(boxes.is_cuda(), "iou_neighbourhood_mask (CUDA): boxes must be a CUDA tensor");
  check_flags(valid, boxes, "valid");
  check_flags(anchors, boxes, "anchors");
  TORCH_CHECK(boxes.size(0) <= 2147483647LL, "iou_neighbourhood_mask (CUDA): batch too large");
  c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t B = boxes.size(0), N = boxes.size(1);
  auto out = at::empty({B, N}, valid.options());
  if (out.numel() == 0) return out;
  const auto acc = boxes.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto box_c = boxes.to(acc).contiguous();
  const auto valid_c = valid.contiguous();
  const auto anchors_c = anchors.contiguous();
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "iou_neighbourhood_mask_cuda", [&] {
    iou_neighbourhood_mask_kernel<scalar_t><<<B, kThreads, 0, stream>>>(
        box_c.data_ptr<scalar_t>(), valid_c.data_ptr<bool>(), anchors_c.data_ptr<bool>(), out.data_ptr<bool>(), N,
        static_cast<scalar_t>(threshold), inclusive);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CUDA, m) {
  m.impl("iou_neighbourhood_mask", &iou_neighbourhood_mask_cuda);
}

}  // namespace vlengine
