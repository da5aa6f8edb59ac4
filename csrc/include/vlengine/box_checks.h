// Argument checks shared by the ops that take (batch_index, x1, y1, x2, y2) boxes.
// The Python entry points check the same things first, with friendlier
// messages; these checks keep C++ callers (and libtorch users) from reading
// out of bounds when they skip Python.
#pragma once

#include <ATen/ATen.h>
#include <cmath>

namespace vlengine {

inline void check_box_shape(const at::Tensor& boxes, const char* name) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 5, name,
              " must be a [K, 5] tensor of (batch_index, x1, y1, x2, y2), got shape ", boxes.sizes());
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), name, " must be a floating tensor, got ",
              boxes.scalar_type());
}

// Value checks for boxes on the CPU: finite, x2 >= x1, y2 >= y1, integral batch
// index in [0, batch_size). `boxes` must already be a contiguous double tensor.
inline void check_box_values_cpu(const at::Tensor& boxes, const char* name, int64_t batch_size) {
  const double* b = boxes.data_ptr<double>();
  for (int64_t k = 0; k < boxes.size(0); ++k) {
    const double* r = b + 5 * k;
    for (int j = 0; j < 5; ++j)
      TORCH_CHECK(std::isfinite(r[j]), name, "[", k, "] has a non-finite value");
    TORCH_CHECK(r[0] == std::floor(r[0]) && r[0] >= 0 && r[0] < batch_size, name, "[", k,
                "] has batch index ", r[0], ", expected an integer in [0, ", batch_size, ")");
    TORCH_CHECK(r[3] >= r[1] && r[4] >= r[2], name, "[", k, "] has x2 < x1 or y2 < y1: (", r[1], ", ", r[2],
                ", ", r[3], ", ", r[4], ")");
  }
}

}  // namespace vlengine
