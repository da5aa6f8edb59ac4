// CPU kernels of the tiled contrastive-loss statistics (see contrastive_tiles.h).
//
// The logit tiles come from MKL/OpenBLAS GEMMs; the element-wise passes below
// split each tile into row (or column) blocks that fit in cache and run them
// with at::parallel_for. Inside a block the work is done with ATen tensor ops:
// they are vectorised with the CPU's best instruction set chosen at run time
// (AVX2/AVX-512), which this extension, compiled for the baseline x86-64,
// could not match with hand-written loops.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "vlengine/contrastive_tiles.h"
#include "vlengine/cpu_grain.h"

namespace vlengine {
namespace {

// Rows (columns) per parallel block at least: a block of a 4096-column tile stays in L2.
constexpr int64_t kRowGrain = 64;
constexpr int64_t kColGrain = 512;
// ~8 element operations per logit in a pass (subtract, exp, add, compare, ...)
constexpr int64_t kOpsPerLogit = 8;

// A block also holds at least kMinWorkPerThread (cpu_grain.h): small tiles run on the calling thread.
int64_t rows_grain(const at::Tensor& S) { return std::max(kRowGrain, grain_for(kOpsPerLogit * S.size(1))); }
int64_t cols_grain(const at::Tensor& S) { return std::max(kColGrain, grain_for(kOpsPerLogit * S.size(0))); }
// 512 x 4096 float32 logits = 8 MiB per tile: large GEMMs, small memory.
constexpr contrastive::TileSizes kCpuTiles{512, 4096};

// Online log-sum-exp merge of one block along `dim`: (run_max, run_sum) describe the
// values seen so far as run_sum * exp(run_max); the block's values join them.
void merge_block(const at::Tensor& block, int64_t dim, at::Tensor run_max, at::Tensor run_sum) {
  const double inf = std::numeric_limits<double>::infinity();
  auto new_max = at::maximum(run_max, block.amax(dim));
  // All -inf so far (every value excluded): shift by 0 so that no inf - inf appears.
  auto shift = new_max.masked_fill(new_max == -inf, 0);
  auto block_sum = (block - shift.unsqueeze(dim)).exp_().sum(dim);
  run_sum.mul_((run_max - shift).exp_()).add_(block_sum);
  run_max.copy_(new_max);
}

struct CpuHooks {
  static void merge_rows(const at::Tensor& S, at::Tensor row_max, at::Tensor row_sum) {
    at::parallel_for(0, S.size(0), rows_grain(S), [&](int64_t begin, int64_t end) {
      merge_block(S.narrow(0, begin, end - begin), 1, row_max.narrow(0, begin, end - begin),
                  row_sum.narrow(0, begin, end - begin));
    });
  }

  static void merge_cols(const at::Tensor& S, at::Tensor col_max, at::Tensor col_sum) {
    at::parallel_for(0, S.size(1), cols_grain(S), [&](int64_t begin, int64_t end) {
      merge_block(S.narrow(1, begin, end - begin), 0, col_max.narrow(0, begin, end - begin),
                  col_sum.narrow(0, begin, end - begin));
    });
  }

  static void softmax_grad(at::Tensor& S, const at::Tensor& row_lse, const at::Tensor& row_grad,
                           const at::Tensor& col_lse, const at::Tensor& col_grad) {
    at::parallel_for(0, S.size(0), rows_grain(S), [&](int64_t begin, int64_t end) {
      auto block = S.narrow(0, begin, end - begin);
      at::Tensor col_term;
      if (col_lse.defined()) col_term = (block - col_lse.unsqueeze(0)).exp_().mul_(col_grad.unsqueeze(0));
      block.sub_(row_lse.narrow(0, begin, end - begin).unsqueeze(1))
          .exp_()
          .mul_(row_grad.narrow(0, begin, end - begin).unsqueeze(1));
      if (col_term.defined()) block.add_(col_term);
    });
  }
};

void check_cpu(const at::Tensor& text, const at::Tensor& image, const at::Tensor& scale) {
  TORCH_CHECK(text.device().is_cpu() && image.device().is_cpu() && scale.device().is_cpu(),
              "contrastive_loss_stats (CPU): text, image and scale must be CPU tensors");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> stats_forward_cpu(const at::Tensor& text, const at::Tensor& image,
                                                                 const at::Tensor& scale, int64_t offset,
                                                                 bool normalize, bool exclude_diagonal,
                                                                 bool with_columns) {
  check_cpu(text, image, scale);
  return contrastive::stats_forward<CpuHooks>("contrastive_loss_stats", text, image, scale, offset, normalize,
                                              exclude_diagonal, with_columns, kCpuTiles);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> stats_backward_cpu(
    const at::Tensor& grad_row, const at::Tensor& grad_col, const at::Tensor& grad_diag, const at::Tensor& text,
    const at::Tensor& image, const at::Tensor& scale, const at::Tensor& row_lse, const at::Tensor& col_lse,
    int64_t offset, bool normalize, bool exclude_diagonal, bool with_columns) {
  check_cpu(text, image, scale);
  return contrastive::stats_backward<CpuHooks>("contrastive_loss_stats_backward", grad_row, grad_col, grad_diag,
                                               text, image, scale, row_lse, col_lse, offset, normalize,
                                               exclude_diagonal, with_columns, kCpuTiles);
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CPU, m) {
  m.impl("contrastive_loss_stats", &stats_forward_cpu);
  m.impl("contrastive_loss_stats_backward", &stats_backward_cpu);
}

}  // namespace vlengine
