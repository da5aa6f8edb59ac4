#include "vlengine/cell_mask_cpu.h"

#include <cstring>

#include "vlengine/roi_geometry.h"

namespace vlengine {

at::Tensor build_cell_mask_cpu(const at::Tensor& boxes, int64_t batch, int64_t height, int64_t width,
                               double scale) {
  auto mask = at::zeros({batch, height, width}, at::TensorOptions().dtype(at::kByte));
  uint8_t* m = mask.data_ptr<uint8_t>();
  const double* b = boxes.data_ptr<double>();
  for (int64_t k = 0; k < boxes.size(0); ++k) {
    const double* r = b + 5 * k;
    int64_t x0, x1, y0, y1;
    if (!masked_cell_range(r[1], r[3], scale, width, x0, x1)) continue;
    if (!masked_cell_range(r[2], r[4], scale, height, y0, y1)) continue;
    uint8_t* plane = m + static_cast<int64_t>(r[0]) * height * width;
    for (int64_t y = y0; y <= y1; ++y) std::memset(plane + y * width + x0, 1, x1 - x0 + 1);
  }
  return mask;
}

}  // namespace vlengine
