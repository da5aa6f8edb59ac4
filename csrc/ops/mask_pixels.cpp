// Schemas of VL-BERT's pixel masking: fill every box of each image with a
// scalar or per-channel value. `fill` is a 0-d or [C] tensor. The in-place form
// returns nothing: torch.compile's functionalization rejects aliased outputs of
// custom ops.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(vlengine, m) {
  m.def("mask_pixels(Tensor images, Tensor boxes, Tensor fill) -> Tensor");
  m.def("mask_pixels_(Tensor(a!) images, Tensor boxes, Tensor fill) -> ()");
}
