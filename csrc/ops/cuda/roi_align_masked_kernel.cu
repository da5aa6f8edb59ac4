// CUDA RoIAlign with pixel masking.
//
// Forward: one thread per output element (RoI, channel, bin), as torchvision's;
// taps on masked cells get weight zero by looking up a [N, H, W] byte plane
// (1/C the size of the input), so no masked copy of the input is written.
// Backward: by default one thread per output element scattering with atomics
// (fast, order of float additions varies run to run). Under
// torch.use_deterministic_algorithms(True) one thread per (image, channel)
// plane walks all RoIs in order and owns its plane: no atomics, the same bits
// every run. Half types accumulate in float32. A RoI whose batch index is out
// of range yields zeros and no gradient instead of reading out of bounds.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cell_mask.cuh"
#include "launch.cuh"
#include "vlengine/box_checks.h"
#include "vlengine/roi_geometry.h"

namespace vlengine {
namespace {

template <typename scalar_t, typename acc_t>
__global__ void roi_align_masked_forward_kernel(const scalar_t* __restrict__ input, const acc_t* __restrict__ rois,
                                                const uint8_t* __restrict__ cell_mask, scalar_t* __restrict__ output,
                                                int64_t total, int64_t N, int64_t C, int64_t H, int64_t W,
                                                int64_t sN, int64_t sC, int64_t sH, int64_t sW, acc_t scale,
                                                int pooled_h, int pooled_w, int sampling_ratio, bool aligned) {
  for (int64_t index = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; index < total;
       index += (int64_t)blockDim.x * gridDim.x) {
    const int pw = index % pooled_w;
    const int ph = (index / pooled_w) % pooled_h;
    const int64_t c = (index / pooled_w / pooled_h) % C;
    const int64_t k = index / pooled_w / pooled_h / C;
    const acc_t* roi = rois + 5 * k;
    const int64_t n = static_cast<int64_t>(roi[0]);
    if (n < 0 || n >= N) {
      output[index] = static_cast<scalar_t>(0);
      continue;
    }
    const auto g = roi_geometry<acc_t>(roi + 1, scale, pooled_h, pooled_w, sampling_ratio, aligned);
    const scalar_t* plane = input + n * sN + c * sC;
    const uint8_t* mask = cell_mask ? cell_mask + n * H * W : nullptr;
    acc_t sum = 0;
    for (int iy = 0; iy < g.grid_h; ++iy) {
      const acc_t y = sample_y(g, ph, iy);
      for (int ix = 0; ix < g.grid_w; ++ix) {
        auto t = bilinear_taps(y, sample_x(g, pw, ix), H, W);
        drop_masked_taps(t, mask, W);
        sum += t.w00 * static_cast<acc_t>(plane[t.y0 * sH + t.x0 * sW]) +
               t.w01 * static_cast<acc_t>(plane[t.y0 * sH + t.x1 * sW]) +
               t.w10 * static_cast<acc_t>(plane[t.y1 * sH + t.x0 * sW]) +
               t.w11 * static_cast<acc_t>(plane[t.y1 * sH + t.x1 * sW]);
      }
    }
    output[index] = static_cast<scalar_t>(sum / g.count);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void roi_align_masked_backward_atomic_kernel(const scalar_t* __restrict__ grad,
                                                        const acc_t* __restrict__ rois,
                                                        const uint8_t* __restrict__ cell_mask,
                                                        acc_t* __restrict__ grad_input, int64_t total, int64_t N,
                                                        int64_t C, int64_t H, int64_t W, acc_t scale, int pooled_h,
                                                        int pooled_w, int sampling_ratio, bool aligned) {
  for (int64_t index = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; index < total;
       index += (int64_t)blockDim.x * gridDim.x) {
    const int pw = index % pooled_w;
    const int ph = (index / pooled_w) % pooled_h;
    const int64_t c = (index / pooled_w / pooled_h) % C;
    const int64_t k = index / pooled_w / pooled_h / C;
    const acc_t* roi = rois + 5 * k;
    const int64_t n = static_cast<int64_t>(roi[0]);
    if (n < 0 || n >= N) continue;
    const auto g = roi_geometry<acc_t>(roi + 1, scale, pooled_h, pooled_w, sampling_ratio, aligned);
    acc_t* plane = grad_input + (n * C + c) * H * W;
    const uint8_t* mask = cell_mask ? cell_mask + n * H * W : nullptr;
    const acc_t gb = static_cast<acc_t>(grad[index]) / g.count;
    for (int iy = 0; iy < g.grid_h; ++iy) {
      const acc_t y = sample_y(g, ph, iy);
      for (int ix = 0; ix < g.grid_w; ++ix) {
        auto t = bilinear_taps(y, sample_x(g, pw, ix), H, W);
        drop_masked_taps(t, mask, W);
        if (t.w00 != 0) gpuAtomicAdd(plane + t.y0 * W + t.x0, gb * t.w00);
        if (t.w01 != 0) gpuAtomicAdd(plane + t.y0 * W + t.x1, gb * t.w01);
        if (t.w10 != 0) gpuAtomicAdd(plane + t.y1 * W + t.x0, gb * t.w10);
        if (t.w11 != 0) gpuAtomicAdd(plane + t.y1 * W + t.x1, gb * t.w11);
      }
    }
  }
}

// Deterministic: thread (n, c) owns grad_input[n, c] and visits RoIs, bins and
// samples in a fixed order. Adjacent threads are adjacent channels and follow
// the same control flow, so warps do not diverge.
template <typename scalar_t, typename acc_t>
__global__ void roi_align_masked_backward_plane_kernel(const scalar_t* __restrict__ grad,
                                                       const acc_t* __restrict__ rois,
                                                       const uint8_t* __restrict__ cell_mask,
                                                       acc_t* __restrict__ grad_input, int64_t K, int64_t N,
                                                       int64_t C, int64_t H, int64_t W, acc_t scale, int pooled_h,
                                                       int pooled_w, int sampling_ratio, bool aligned) {
  const int64_t planes = N * C;
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < planes; p += (int64_t)blockDim.x * gridDim.x) {
    const int64_t n = p / C, c = p % C;
    acc_t* plane = grad_input + p * H * W;
    const uint8_t* mask = cell_mask ? cell_mask + n * H * W : nullptr;
    for (int64_t k = 0; k < K; ++k) {
      const acc_t* roi = rois + 5 * k;
      if (static_cast<int64_t>(roi[0]) != n) continue;
      const auto g = roi_geometry<acc_t>(roi + 1, scale, pooled_h, pooled_w, sampling_ratio, aligned);
      const scalar_t* go = grad + (k * C + c) * pooled_h * pooled_w;
      for (int ph = 0; ph < pooled_h; ++ph)
        for (int pw = 0; pw < pooled_w; ++pw) {
          const acc_t gb = static_cast<acc_t>(go[ph * pooled_w + pw]) / g.count;
          for (int iy = 0; iy < g.grid_h; ++iy) {
            const acc_t y = sample_y(g, ph, iy);
            for (int ix = 0; ix < g.grid_w; ++ix) {
              auto t = bilinear_taps(y, sample_x(g, pw, ix), H, W);
              drop_masked_taps(t, mask, W);
              plane[t.y0 * W + t.x0] += gb * t.w00;
              plane[t.y0 * W + t.x1] += gb * t.w01;
              plane[t.y1 * W + t.x0] += gb * t.w10;
              plane[t.y1 * W + t.x1] += gb * t.w11;
            }
          }
        }
    }
  }
}

void check_cuda_args(const at::Tensor& a, const at::Tensor& rois, const at::Tensor& masked, const char* what) {
  TORCH_CHECK(a.is_cuda() && rois.is_cuda() && masked.is_cuda(), "roi_align_masked (CUDA): ", what,
              ", rois and masked_boxes must all be CUDA tensors");
  TORCH_CHECK(a.device() == rois.device() && a.device() == masked.device(),
              "roi_align_masked (CUDA): all tensors must be on one GPU");
  check_box_shape(rois, "rois");
  check_box_shape(masked, "masked_boxes");
}

at::Tensor roi_align_masked_forward_cuda(const at::Tensor& input, const at::Tensor& rois,
                                         const at::Tensor& masked_boxes, double spatial_scale, int64_t pooled_h,
                                         int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  TORCH_CHECK(input.dim() == 4, "input must be [N, C, H, W], got shape ", input.sizes());
  check_cuda_args(input, rois, masked_boxes, "input");
  TORCH_CHECK(pooled_h > 0 && pooled_w > 0, "output_size must be positive");
  c10::cuda::CUDAGuard guard(input.device());
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3), K = rois.size(0);
  auto output = at::empty({K, C, pooled_h, pooled_w}, input.options());
  const int64_t total = output.numel();
  if (total == 0) return output;
  if (H == 0 || W == 0) return output.zero_();
  const auto cell_mask = masked_boxes.size(0) > 0 ? build_cell_mask_cuda(masked_boxes, N, H, W, spatial_scale)
                                                  : at::Tensor();
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_masked_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto rois_acc = rois.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const Launch launch = grid_stride_launch(total);  // per device; unmeasured: measure when a GPU is lent
    roi_align_masked_forward_kernel<scalar_t, acc_t><<<launch.blocks, launch.threads, 0, stream>>>(
        input.data_ptr<scalar_t>(), rois_acc.data_ptr<acc_t>(),
        cell_mask.defined() ? cell_mask.data_ptr<uint8_t>() : nullptr, output.data_ptr<scalar_t>(), total, N, C, H,
        W, input.stride(0), input.stride(1), input.stride(2), input.stride(3), static_cast<acc_t>(spatial_scale),
        pooled_h, pooled_w, sampling_ratio, aligned);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor roi_align_masked_backward_cuda(const at::Tensor& grad, const at::Tensor& rois,
                                          const at::Tensor& masked_boxes, double spatial_scale, int64_t pooled_h,
                                          int64_t pooled_w, int64_t N, int64_t C, int64_t H, int64_t W,
                                          int64_t sampling_ratio, bool aligned) {
  check_cuda_args(grad, rois, masked_boxes, "grad");
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == rois.size(0) && grad.size(1) == C && grad.size(2) == pooled_h &&
                  grad.size(3) == pooled_w,
              "grad must be [K, C, pooled_height, pooled_width], got shape ", grad.sizes());
  c10::cuda::CUDAGuard guard(grad.device());
  const bool low_precision = grad.scalar_type() == at::kHalf || grad.scalar_type() == at::kBFloat16;
  auto grad_input = at::zeros({N, C, H, W}, grad.options().dtype(low_precision ? at::kFloat : grad.scalar_type()));
  const int64_t K = rois.size(0);
  if (K == 0 || grad_input.numel() == 0) return grad_input.to(grad.scalar_type());
  const auto cell_mask = masked_boxes.size(0) > 0 ? build_cell_mask_cuda(masked_boxes, N, H, W, spatial_scale)
                                                  : at::Tensor();
  const auto grad_c = grad.contiguous();
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_masked_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto rois_acc = rois.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const uint8_t* mask = cell_mask.defined() ? cell_mask.data_ptr<uint8_t>() : nullptr;
    if (deterministic) {
      const Launch launch = grid_stride_launch(N * C);  // per device; unmeasured: measure when a GPU is lent
      roi_align_masked_backward_plane_kernel<scalar_t, acc_t><<<launch.blocks, launch.threads, 0, stream>>>(
          grad_c.data_ptr<scalar_t>(), rois_acc.data_ptr<acc_t>(), mask, grad_input.data_ptr<acc_t>(), K, N, C, H, W,
          static_cast<acc_t>(spatial_scale), pooled_h, pooled_w, sampling_ratio, aligned);
    } else {
      const int64_t total = grad_c.numel();
      const Launch launch = grid_stride_launch(total);  // per device; unmeasured: measure when a GPU is lent
      roi_align_masked_backward_atomic_kernel<scalar_t, acc_t><<<launch.blocks, launch.threads, 0, stream>>>(
          grad_c.data_ptr<scalar_t>(), rois_acc.data_ptr<acc_t>(), mask, grad_input.data_ptr<acc_t>(), total, N, C,
          H, W, static_cast<acc_t>(spatial_scale), pooled_h, pooled_w, sampling_ratio, aligned);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return low_precision ? grad_input.to(grad.scalar_type()) : grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CUDA, m) {
  m.impl("roi_align_masked", &roi_align_masked_forward_cuda);
  m.impl("roi_align_masked_backward", &roi_align_masked_backward_cuda);
}

}  // namespace vlengine
