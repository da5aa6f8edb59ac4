// Schemas of RoIAlign with pixel masking. One op serves plain RoIAlign too
// (no masked boxes), so vlengine.ops.roi_align and roi_align_masked share kernels.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(vlengine, m) {
  m.def(
      "roi_align_masked(Tensor input, Tensor rois, Tensor masked_boxes, float spatial_scale, "
      "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor");
  m.def(
      "roi_align_masked_backward(Tensor grad, Tensor rois, Tensor masked_boxes, float spatial_scale, "
      "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, "
      "SymInt width, int sampling_ratio, bool aligned) -> Tensor");
}
