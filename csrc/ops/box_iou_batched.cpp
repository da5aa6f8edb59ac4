// Schema of the batched IoU: [B, N, 4] x [B, M, 4] -> [B, N, M], computed in
// float32 (float64 for float64 boxes) and returned in the boxes' dtype. Its
// backward is closed-form PyTorch (vlengine/ops/reference/box_iou.py): IoU
// matrices feed masking decisions, not hot training paths.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(vlengine, m) {
  m.def("box_iou_batched(Tensor boxes1, Tensor boxes2) -> Tensor");
}
