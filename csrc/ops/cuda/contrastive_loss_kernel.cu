// CUDA kernels of the tiled contrastive-loss statistics (see contrastive_tiles.h).
//
// The logit tiles come from cuBLAS GEMMs (the bulk of the work, at the GPU's
// GEMM speed: float32 tiles, so fp16/bf16 inputs are accumulated in float32);
// the three element-wise passes over each tile are the kernels below, each one
// read of the tile:
//   row_merge_kernel   one block per row: per-thread online (max, sum-exp), block merge
//   col_partial_kernel one thread per column and row chunk: online (max, sum-exp) down the chunk,
//   col_merge_kernel   then the chunks merged into the running column statistics
//   softmax_grad_kernel element-wise dL/dz
// No atomics anywhere: the results are deterministic.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cuda_runtime.h>

#include <limits>

#include "launch.cuh"
#include "vlengine/contrastive_tiles.h"

namespace vlengine {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kColRowChunks = 32;  // row chunks per column pass: parallelism for narrow tiles
// 4096 x 16384 float32 logits = 256 MiB per tile: GEMMs large enough for full speed.
constexpr contrastive::TileSizes kCudaTiles{4096, 16384};

template <typename T>
struct MaxSum {
  T max;
  T sum;  // sum of exp(value - max)
};

template <typename T>
__device__ __forceinline__ MaxSum<T> merge(MaxSum<T> a, MaxSum<T> b) {
  const T m = a.max > b.max ? a.max : b.max;
  if (m == -std::numeric_limits<T>::infinity()) return {m, T(0)};
  return {m, a.sum * exp(a.max - m) + b.sum * exp(b.max - m)};
}

template <typename T>
__device__ __forceinline__ MaxSum<T> push(MaxSum<T> a, T x) {
  if (x == -std::numeric_limits<T>::infinity()) return a;
  if (x > a.max) return {x, a.sum * exp(a.max - x) + T(1)};
  return {a.max, a.sum + exp(x - a.max)};
}

template <typename T>
__device__ MaxSum<T> block_merge(MaxSum<T> v) {
  __shared__ T maxes[kThreads / 32];
  __shared__ T sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) {
    MaxSum<T> other{__shfl_down_sync(0xffffffff, v.max, offset), __shfl_down_sync(0xffffffff, v.sum, offset)};
    v = merge(v, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    maxes[warp] = v.max;
    sums[warp] = v.sum;
  }
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? MaxSum<T>{maxes[lane], sums[lane]}
                             : MaxSum<T>{-std::numeric_limits<T>::infinity(), T(0)};
    for (int offset = 16; offset > 0; offset /= 2) {
      MaxSum<T> other{__shfl_down_sync(0xffffffff, v.max, offset), __shfl_down_sync(0xffffffff, v.sum, offset)};
      v = merge(v, other);
    }
  }
  return v;  // valid in thread 0
}

template <typename T>
__global__ void row_merge_kernel(const T* __restrict__ S, int64_t cols, T* __restrict__ row_max,
                                 T* __restrict__ row_sum) {
  const int64_t row = blockIdx.x;
  const T* s = S + row * cols;
  MaxSum<T> v{-std::numeric_limits<T>::infinity(), T(0)};
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) v = push(v, s[j]);
  v = block_merge(v);
  if (threadIdx.x == 0) {
    const auto merged = merge(MaxSum<T>{row_max[row], row_sum[row]}, v);
    row_max[row] = merged.max;
    row_sum[row] = merged.sum;
  }
}

template <typename T>
__global__ void col_partial_kernel(const T* __restrict__ S, int64_t rows, int64_t cols, int64_t rows_per_chunk,
                                   T* __restrict__ part_max, T* __restrict__ part_sum) {
  const int64_t col = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (col >= cols) return;
  const int64_t chunk = blockIdx.y;
  const int64_t begin = chunk * rows_per_chunk;
  const int64_t end = begin + rows_per_chunk < rows ? begin + rows_per_chunk : rows;
  MaxSum<T> v{-std::numeric_limits<T>::infinity(), T(0)};
  for (int64_t i = begin; i < end; ++i) v = push(v, S[i * cols + col]);
  part_max[chunk * cols + col] = v.max;
  part_sum[chunk * cols + col] = v.sum;
}

template <typename T>
__global__ void col_merge_kernel(const T* __restrict__ part_max, const T* __restrict__ part_sum, int64_t chunks,
                                 int64_t cols, T* __restrict__ col_max, T* __restrict__ col_sum) {
  const int64_t col = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (col >= cols) return;
  MaxSum<T> v{col_max[col], col_sum[col]};
  for (int64_t c = 0; c < chunks; ++c) v = merge(v, MaxSum<T>{part_max[c * cols + col], part_sum[c * cols + col]});
  col_max[col] = v.max;
  col_sum[col] = v.sum;
}

template <typename T>
__global__ void softmax_grad_kernel(T* __restrict__ S, int64_t rows, int64_t cols, const T* __restrict__ row_lse,
                                    const T* __restrict__ row_grad, const T* __restrict__ col_lse,
                                    const T* __restrict__ col_grad) {
  const int64_t n = rows * cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / cols, j = idx - i * cols;
    const T z = S[idx];
    T g = row_grad[i] * exp(z - row_lse[i]);
    if (col_lse != nullptr) g += col_grad[j] * exp(z - col_lse[j]);
    S[idx] = g;
  }
}

struct CudaHooks {
  static void merge_rows(const at::Tensor& S, at::Tensor row_max, at::Tensor row_sum) {
    if (S.size(0) == 0 || S.size(1) == 0) return;
    auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(S.scalar_type(), "contrastive_merge_rows", [&] {
      row_merge_kernel<scalar_t><<<S.size(0), kThreads, 0, stream>>>(S.data_ptr<scalar_t>(), S.size(1),
                                                                      row_max.data_ptr<scalar_t>(),
                                                                      row_sum.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  static void merge_cols(const at::Tensor& S, at::Tensor col_max, at::Tensor col_sum) {
    const int64_t rows = S.size(0), cols = S.size(1);
    if (rows == 0 || cols == 0) return;
    const int64_t chunks = rows < kColRowChunks ? rows : kColRowChunks;
    const int64_t per_chunk = (rows + chunks - 1) / chunks;
    auto part_max = at::empty({chunks, cols}, S.options()), part_sum = at::empty({chunks, cols}, S.options());
    auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(S.scalar_type(), "contrastive_merge_cols", [&] {
      const dim3 grid((cols + kThreads - 1) / kThreads, chunks);
      col_partial_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(S.data_ptr<scalar_t>(), rows, cols, per_chunk,
                                                                  part_max.data_ptr<scalar_t>(),
                                                                  part_sum.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      col_merge_kernel<scalar_t><<<(cols + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
          part_max.data_ptr<scalar_t>(), part_sum.data_ptr<scalar_t>(), chunks, cols, col_max.data_ptr<scalar_t>(),
          col_sum.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  static void softmax_grad(at::Tensor& S, const at::Tensor& row_lse, const at::Tensor& row_grad,
                           const at::Tensor& col_lse, const at::Tensor& col_grad) {
    const int64_t rows = S.size(0), cols = S.size(1);
    if (rows == 0 || cols == 0) return;
    auto stream = at::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(S.scalar_type(), "contrastive_softmax_grad", [&] {
      const Launch launch = grid_stride_launch(rows * cols);  // per device; unmeasured: measure when a GPU is lent
      softmax_grad_kernel<scalar_t><<<launch.blocks, launch.threads, 0, stream>>>(
          S.data_ptr<scalar_t>(), rows, cols, row_lse.data_ptr<scalar_t>(), row_grad.data_ptr<scalar_t>(),
          col_lse.defined() ? col_lse.data_ptr<scalar_t>() : nullptr,
          col_grad.defined() ? col_grad.data_ptr<scalar_t>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
};

void check_cuda(const at::Tensor& text, const at::Tensor& image, const at::Tensor& scale) {
  TORCH_CHECK(text.is_cuda() && image.is_cuda() && scale.is_cuda(),
              "contrastive_loss_stats (CUDA): text, image and scale must be CUDA tensors");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> stats_forward_cuda(const at::Tensor& text, const at::Tensor& image,
                                                                  const at::Tensor& scale, int64_t offset,
                                                                  bool normalize, bool exclude_diagonal,
                                                                  bool with_columns) {
  check_cuda(text, image, scale);
  const at::cuda::OptionalCUDAGuard guard(text.device());
  return contrastive::stats_forward<CudaHooks>("contrastive_loss_stats", text, image, scale, offset, normalize,
                                               exclude_diagonal, with_columns, kCudaTiles);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> stats_backward_cuda(
    const at::Tensor& grad_row, const at::Tensor& grad_col, const at::Tensor& grad_diag, const at::Tensor& text,
    const at::Tensor& image, const at::Tensor& scale, const at::Tensor& row_lse, const at::Tensor& col_lse,
    int64_t offset, bool normalize, bool exclude_diagonal, bool with_columns) {
  check_cuda(text, image, scale);
  const at::cuda::OptionalCUDAGuard guard(text.device());
  return contrastive::stats_backward<CudaHooks>("contrastive_loss_stats_backward", grad_row, grad_col, grad_diag,
                                                text, image, scale, row_lse, col_lse, offset, normalize,
                                                exclude_diagonal, with_columns, kCudaTiles);
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CUDA, m) {
  m.impl("contrastive_loss_stats", &stats_forward_cuda);
  m.impl("contrastive_loss_stats_backward", &stats_backward_cuda);
}

}  // namespace vlengine
