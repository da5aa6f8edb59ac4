// CUDA batched IoU: one thread per output (b, i, j), grid-striding. Boxes are
// converted once to the accumulation type (float32, or float64 for float64
// boxes) and made contiguous, so every index is computed from the shape and
// stays in bounds. IoU uses the shared expression of box_iou.h (no FMA).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "launch.cuh"
#include "vlengine/box_iou.h"

namespace vlengine {
namespace {

template <typename T>
__global__ void box_iou_batched_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                                       int64_t total, int64_t N, int64_t M) {
  for (int64_t index = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; index < total;
       index += (int64_t)blockDim.x * gridDim.x) {
    const int64_t j = index % M;
    const int64_t row = index / M;  // b * N + i
    const int64_t img = row / N;
    const T* box = a + 4 * row;
    const T* other = b + 4 * (img * M + j);
    out[index] = box_iou(box, other, box_area(box), box_area(other));
  }
}

void check_boxes(const at::Tensor& boxes, const char* name) {
  TORCH_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, name, " must be [B, N, 4] (x1, y1, x2, y2), got shape ",
              boxes.sizes());
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), name, " must be a floating tensor, got ", boxes.scalar_type());
  TORCH_CHECK(boxes.is_cuda(), "box_iou_batched (CUDA): ", name, " must be a CUDA tensor");
}

at::Tensor box_iou_batched_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_boxes(boxes1, "boxes1");
  check_boxes(boxes2, "boxes2");
  TORCH_CHECK(boxes1.device() == boxes2.device(), "box_iou_batched (CUDA): boxes1 and boxes2 must be on one GPU");
  TORCH_CHECK(boxes1.size(0) == boxes2.size(0), "boxes1 and boxes2 must have the same batch size, got ",
              boxes1.size(0), " and ", boxes2.size(0));
  TORCH_CHECK(boxes1.scalar_type() == boxes2.scalar_type(), "boxes1 and boxes2 must have the same dtype, got ",
              boxes1.scalar_type(), " and ", boxes2.scalar_type());
  c10::cuda::CUDAGuard guard(boxes1.device());
  const int64_t B = boxes1.size(0), N = boxes1.size(1), M = boxes2.size(1);
  const auto acc = boxes1.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto out = at::empty({B, N, M}, boxes1.options().dtype(acc));
  const int64_t total = out.numel();
  if (total == 0) return out.to(boxes1.scalar_type());
  const auto a = boxes1.to(acc).contiguous();
  const auto b = boxes2.to(acc).contiguous();
  const Launch launch = grid_stride_launch(total);  // per device; unmeasured: measure when a GPU is lent
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(acc, "box_iou_batched_cuda", [&] {
    box_iou_batched_kernel<scalar_t><<<launch.blocks, launch.threads, 0, stream>>>(
        a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), total, N, M);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out.to(boxes1.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CUDA, m) {
  m.impl("box_iou_batched", &box_iou_batched_cuda);
}

}  // namespace vlengine
