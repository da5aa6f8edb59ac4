// The tiled driver shared by the CPU and CUDA contrastive-loss kernels.
//
// Logits z[i, j] = scale * <t_i, v_j> are produced one [rows x cols] tile at a
// time by a matrix multiply (BLAS / cuBLAS: the work is a GEMM, and nothing
// hand-written beats the vendor's), in float32 (float64 for float64 inputs)
// whatever the input dtype. Each device supplies three fused element-wise
// passes over a tile (the Hooks):
//   merge_rows(S, row_max, row_sum)   online log-sum-exp update of each row
//   merge_cols(S, col_max, col_sum)   the same for each column
//   softmax_grad(S, row_lse, row_grad, col_lse, col_grad)
//       S <- row_grad[i] * exp(S - row_lse[i]) + col_grad[j] * exp(S - col_lse[j])
//       (col_lse undefined: no column term)
// The memory beyond inputs and gradients is a few tiles and O(B) statistics:
// the backward recomputes each tile instead of storing the B x B matrix.
// L2 normalisation happens on the tiles (and its gradient in row chunks at the
// end), so no normalised copy of the inputs exists either.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <tuple>

namespace vlengine {
namespace contrastive {

// torch.nn.functional.normalize's default eps: rows shorter than this are divided by it.
constexpr double kNormEps = 1e-12;

struct TileSizes {
  int64_t rows;
  int64_t cols;
};

inline at::ScalarType acc_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_inputs(const char* op, const at::Tensor& text, const at::Tensor& image, const at::Tensor& scale,
                         int64_t offset) {
  TORCH_CHECK(text.dim() == 2 && image.dim() == 2, op, ": text and image must be 2-D [n, d], got shapes ",
              text.sizes(), " and ", image.sizes());
  TORCH_CHECK(text.size(1) == image.size(1), op, ": text and image must have the same embedding size, got d = ",
              text.size(1), " and ", image.size(1));
  TORCH_CHECK(at::isFloatingType(text.scalar_type()) && text.scalar_type() == image.scalar_type(), op,
              ": text and image must be floating tensors of one dtype, got ", text.scalar_type(), " and ",
              image.scalar_type());
  TORCH_CHECK(scale.numel() == 1 && at::isFloatingType(scale.scalar_type()), op,
              ": scale must be a one-element floating tensor, got shape ", scale.sizes(), " of ", scale.scalar_type());
  TORCH_CHECK(text.device() == image.device() && text.device() == scale.device(), op,
              ": text, image and scale must be on one device, got ", text.device(), ", ", image.device(), ", ",
              scale.device());
  TORCH_CHECK(offset >= 0 && offset + text.size(0) <= image.size(0), op, ": diagonal_offset ", offset,
              " puts the diagonal of ", text.size(0), " rows outside ", image.size(0), " columns");
}

// 1 / max(||x_i||, eps) per row, as torch.nn.functional.normalize divides.
inline at::Tensor inverse_norms(const at::Tensor& x, at::ScalarType acc) {
  return at::linalg_vector_norm(x, 2, at::IntArrayRef{1}, false, acc).clamp_min_(kNormEps).reciprocal_();
}

// Rows [start, start + len) of x in the accumulation dtype, L2-normalised when
// inv_norm is defined and multiplied by factor when it is defined. Always a new
// tensor when it is scaled; otherwise possibly a view of x (never written).
inline at::Tensor tile_rows(const at::Tensor& x, int64_t start, int64_t len, const at::Tensor& inv_norm,
                            const at::Tensor& factor, at::ScalarType acc) {
  auto rows = x.narrow(0, start, len).to(acc);
  at::Tensor mult;
  if (inv_norm.defined()) mult = inv_norm.narrow(0, start, len).unsqueeze(1);
  if (factor.defined()) mult = mult.defined() ? mult * factor : factor;
  return mult.defined() ? rows * mult : rows;
}

// The tile diagonal holding z[i, i + offset] for this tile's rows, if any:
// (first global row, view). Empty view when the tile holds none.
inline std::pair<int64_t, at::Tensor> tile_diagonal(const at::Tensor& S, int64_t r0, int64_t c0, int64_t offset) {
  const int64_t k = r0 + offset - c0;
  if (k >= S.size(1) || -k >= S.size(0)) return {0, at::Tensor()};
  return {r0 + std::max<int64_t>(0, -k), S.diagonal(k)};
}

inline at::Tensor finish_lse(const at::Tensor& max, const at::Tensor& sum) {
  // max = -inf (nothing summed) gives -inf + log(0) = -inf, the log-sum-exp of nothing.
  return max + sum.log();
}

// lse with -inf (an empty sum) replaced by +inf, so that exp(z - lse) is 0 there.
inline at::Tensor safe_lse(const at::Tensor& lse, at::ScalarType acc) {
  auto l = lse.to(acc).contiguous();
  return l.masked_fill(l == -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity());
}

template <class Hooks>
std::tuple<at::Tensor, at::Tensor, at::Tensor> stats_forward(const char* op, const at::Tensor& text,
                                                             const at::Tensor& image, const at::Tensor& scale,
                                                             int64_t offset, bool normalize, bool exclude_diagonal,
                                                             bool with_columns, TileSizes tiles) {
  check_inputs(op, text, image, scale, offset);
  const auto acc = acc_type(text);
  const auto t = text.contiguous(), v = image.contiguous();
  const int64_t b = t.size(0), B = v.size(0);
  const auto opts = t.options().dtype(acc);
  const double inf = std::numeric_limits<double>::infinity();
  auto row_max = at::full({b}, -inf, opts), row_sum = at::zeros({b}, opts);
  auto col_max = at::full({with_columns ? B : 0}, -inf, opts), col_sum = at::zeros({with_columns ? B : 0}, opts);
  auto diag = at::zeros({b}, opts);
  const auto scale_acc = scale.to(acc).reshape({});
  const auto inv_t = normalize ? inverse_norms(t, acc) : at::Tensor();
  const auto inv_v = normalize ? inverse_norms(v, acc) : at::Tensor();

  for (int64_t c0 = 0; c0 < B; c0 += tiles.cols) {
    const int64_t tc = std::min(tiles.cols, B - c0);
    const auto vt = tile_rows(v, c0, tc, inv_v, at::Tensor(), acc);
    for (int64_t r0 = 0; r0 < b; r0 += tiles.rows) {
      const int64_t tr = std::min(tiles.rows, b - r0);
      auto S = at::mm(tile_rows(t, r0, tr, inv_t, scale_acc, acc), vt.t());
      auto [first, dv] = tile_diagonal(S, r0, c0, offset);
      if (dv.defined()) {
        diag.narrow(0, first, dv.numel()).copy_(dv);
        if (exclude_diagonal) dv.fill_(-inf);
      }
      Hooks::merge_rows(S, row_max.narrow(0, r0, tr), row_sum.narrow(0, r0, tr));
      if (with_columns) Hooks::merge_cols(S, col_max.narrow(0, c0, tc), col_sum.narrow(0, c0, tc));
    }
  }
  return {finish_lse(row_max, row_sum), finish_lse(col_max, col_sum), diag};
}

// g <- d normalize(x) / dx applied to g, in place, for rows xn = x * inv (F.normalize's gradient).
inline void normalize_backward_(at::Tensor g, const at::Tensor& xn, const at::Tensor& inv) {
  auto dot = (xn * g).sum(1, true);
  // Rows shorter than eps were divided by the constant eps: no projection term.
  dot.masked_fill_(inv.unsqueeze(1) >= 1.0 / kNormEps, 0);
  g.sub_(xn * dot).mul_(inv.unsqueeze(1));
}

template <class Hooks>
std::tuple<at::Tensor, at::Tensor, at::Tensor> stats_backward(
    const char* op, const at::Tensor& grad_row, const at::Tensor& grad_col, const at::Tensor& grad_diag,
    const at::Tensor& text, const at::Tensor& image, const at::Tensor& scale, const at::Tensor& row_lse,
    const at::Tensor& col_lse, int64_t offset, bool normalize, bool exclude_diagonal, bool with_columns,
    TileSizes tiles) {
  check_inputs(op, text, image, scale, offset);
  const auto acc = acc_type(text);
  const auto t = text.contiguous(), v = image.contiguous();
  const int64_t b = t.size(0), B = v.size(0), d = t.size(1);
  TORCH_CHECK(grad_row.numel() == b && row_lse.numel() == b && grad_diag.numel() == b, op,
              ": grad_row_lse, row_lse and grad_diag must have one value per row (", b, ")");
  TORCH_CHECK(!with_columns || (grad_col.numel() == B && col_lse.numel() == B), op,
              ": grad_col_lse and col_lse must have one value per column (", B, ")");
  const auto opts = t.options().dtype(acc);
  const double inf = std::numeric_limits<double>::infinity();
  auto grad_t = at::zeros({b, d}, opts), grad_v = at::zeros({B, d}, opts);
  const auto r_lse = safe_lse(row_lse, acc), r_grad = grad_row.to(acc).contiguous();
  const auto c_lse = with_columns ? safe_lse(col_lse, acc) : at::Tensor();
  const auto c_grad = with_columns ? grad_col.to(acc).contiguous() : at::Tensor();
  const auto d_grad = grad_diag.to(acc);
  const auto scale_acc = scale.to(acc).reshape({});
  const auto inv_t = normalize ? inverse_norms(t, acc) : at::Tensor();
  const auto inv_v = normalize ? inverse_norms(v, acc) : at::Tensor();

  for (int64_t c0 = 0; c0 < B; c0 += tiles.cols) {
    const int64_t tc = std::min(tiles.cols, B - c0);
    const auto vt = tile_rows(v, c0, tc, inv_v, at::Tensor(), acc);
    for (int64_t r0 = 0; r0 < b; r0 += tiles.rows) {
      const int64_t tr = std::min(tiles.rows, b - r0);
      const auto tt = tile_rows(t, r0, tr, inv_t, scale_acc, acc);
      auto S = at::mm(tt, vt.t());
      auto [first, dv] = tile_diagonal(S, r0, c0, offset);
      if (dv.defined() && exclude_diagonal) dv.fill_(-inf);
      Hooks::softmax_grad(S, r_lse.narrow(0, r0, tr), r_grad.narrow(0, r0, tr),
                          with_columns ? c_lse.narrow(0, c0, tc) : at::Tensor(),
                          with_columns ? c_grad.narrow(0, c0, tc) : at::Tensor());
      if (dv.defined()) dv.add_(d_grad.narrow(0, first, dv.numel()));
      // S is now dL/dz for the tile. grad_t collects sum_j dL/dz_ij * v_j (scale applied
      // below, after it serves the scale gradient); grad_v gets scale * sum_i dL/dz_ij * t_i.
      grad_t.narrow(0, r0, tr).addmm_(S, vt);
      grad_v.narrow(0, c0, tc).addmm_(S.t(), tt);
    }
  }

  // dL/dscale = sum_ij dL/dz_ij * <t_i, v_j> = sum_i <t_i, grad_t_i> before grad_t is scaled.
  auto grad_scale = at::zeros({}, opts);
  for (int64_t r0 = 0; r0 < b; r0 += tiles.rows) {
    const int64_t tr = std::min(tiles.rows, b - r0);
    auto g = grad_t.narrow(0, r0, tr);
    const auto tn = tile_rows(t, r0, tr, inv_t, at::Tensor(), acc);
    grad_scale.add_((tn * g).sum());
    g.mul_(scale_acc);
    if (normalize) normalize_backward_(g, tn, inv_t.narrow(0, r0, tr));
  }
  if (normalize) {
    for (int64_t c0 = 0; c0 < B; c0 += tiles.rows) {
      const int64_t tc = std::min(tiles.rows, B - c0);
      normalize_backward_(grad_v.narrow(0, c0, tc), tile_rows(v, c0, tc, inv_v, at::Tensor(), acc),
                          inv_v.narrow(0, c0, tc));
    }
  }
  return {grad_t.to(text.scalar_type()), grad_v.to(image.scalar_type()),
          grad_scale.to(scale.scalar_type()).reshape(scale.sizes())};
}

}  // namespace contrastive
}  // namespace vlengine
