// Schemas of the tiled contrastive-loss statistics.
//
// The op computes, for logits z[i, j] = scale * <t_i, v_j> of b rows (text)
// against B columns (image), the row and column log-sum-exps and the
// "diagonal" z[i, i + diagonal_offset] (the positive pairs), without ever
// holding the b x B matrix: tiles are recomputed in the backward. The losses
// (symmetric InfoNCE, CSS-BERT's PwCL) are O(B) functions of these statistics
// assembled in Python, which is also where the multi-rank collectives live:
// each rank passes its b rows and the all-gathered B columns, with
// diagonal_offset = its first row's global index.
//
// Forward outputs are float32 (float64 for float64 inputs). The backward takes
// the gradients of the three outputs and returns the gradients of text, image
// (in their dtypes) and scale (a 0-dim tensor in scale's dtype).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(vlengine, m) {
  m.def(
      "contrastive_loss_stats(Tensor text, Tensor image, Tensor scale, SymInt diagonal_offset, bool normalize, "
      "bool exclude_diagonal, bool with_columns) -> (Tensor row_lse, Tensor col_lse, Tensor diag)");
  m.def(
      "contrastive_loss_stats_backward(Tensor grad_row_lse, Tensor grad_col_lse, Tensor grad_diag, Tensor text, "
      "Tensor image, Tensor scale, Tensor row_lse, Tensor col_lse, SymInt diagonal_offset, bool normalize, "
      "bool exclude_diagonal, bool with_columns) -> (Tensor grad_text, Tensor grad_image, Tensor grad_scale)");
}
