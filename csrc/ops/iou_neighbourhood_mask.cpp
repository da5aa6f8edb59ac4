// Schema of InterBERT's IoU-neighbourhood region masking: region i of image b
// is masked iff valid[b, i] and (anchors[b, i] or IoU(box i, anchor j) >
// threshold for some valid anchor j of image b; >= when inclusive). Returns a
// [B, N] bool tensor; kernels loop over each image's anchors and never
// materialise the B x N x N IoU tensor.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(vlengine, m) {
  m.def(
      "iou_neighbourhood_mask(Tensor boxes, Tensor valid, Tensor anchors, float threshold, bool inclusive) "
      "-> Tensor");
}
