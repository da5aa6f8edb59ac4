// CPU pixel masking: fill every box of each image with a scalar or per-channel
// value, for a whole batch in one call. Boxes are turned into cell ranges once;
// (image, channel) planes are then filled in parallel, each plane by one
// thread, so overlapping boxes never race. Any strides are written in place.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "vlengine/box_checks.h"
#include "vlengine/cpu_grain.h"
#include "vlengine/roi_geometry.h"

namespace vlengine {
namespace {

struct CellRect {
  int64_t y0, y1, x0, x1;
};

void check_fill(const at::Tensor& images, const at::Tensor& fill) {
  TORCH_CHECK(fill.dim() == 0 || (fill.dim() == 1 && fill.size(0) == images.size(1)),
              "fill must be a scalar or have one value per channel (", images.size(1), "), got shape ",
              fill.sizes());
}

void fill_boxes_cpu(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& fill) {
  TORCH_CHECK(images.dim() == 4, "images must be [N, C, H, W], got shape ", images.sizes());
  TORCH_CHECK(images.device().is_cpu() && boxes.device().is_cpu(), "mask_pixels (CPU): images and boxes must be on the CPU");
  check_box_shape(boxes, "boxes");
  check_fill(images, fill);
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  const auto b = boxes.to(at::kDouble).contiguous();
  check_box_values_cpu(b, "boxes", N);
  if (b.size(0) == 0 || images.numel() == 0) return;

  std::vector<std::vector<CellRect>> rects(N);
  int64_t masked_pixels = 0;  // per channel, overlaps counted twice (the writes, not the area)
  const double* bd = b.data_ptr<double>();
  for (int64_t k = 0; k < b.size(0); ++k) {
    const double* r = bd + 5 * k;
    CellRect c;
    if (masked_cell_range(r[1], r[3], 1.0, W, c.x0, c.x1) && masked_cell_range(r[2], r[4], 1.0, H, c.y0, c.y1)) {
      rects[static_cast<int64_t>(r[0])].push_back(c);
      masked_pixels += (c.x1 - c.x0 + 1) * (c.y1 - c.y0 + 1);
    }
  }

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, images.scalar_type(), "mask_pixels_cpu", [&] {
    const auto fill_c = fill.to(images.scalar_type()).expand({C}).contiguous();
    const scalar_t* fv = fill_c.data_ptr<scalar_t>();
    scalar_t* data = images.data_ptr<scalar_t>();
    const int64_t sN = images.stride(0), sC = images.stride(1), sH = images.stride(2), sW = images.stride(3);
    // One plane writes its image's masked pixels: the average plane's share of them (cpu_grain.h).
    const int64_t grain = grain_for(masked_pixels / std::max<int64_t>(N, 1));
    at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t n = plane / C, c = plane % C;
        scalar_t* p = data + n * sN + c * sC;
        const scalar_t v = fv[c];
        for (const auto& r : rects[n])
          for (int64_t y = r.y0; y <= r.y1; ++y) {
            scalar_t* row = p + y * sH;
            if (sW == 1) {
              std::fill(row + r.x0, row + r.x1 + 1, v);
            } else {
              for (int64_t x = r.x0; x <= r.x1; ++x) row[x * sW] = v;
            }
          }
      }
    });
  });
}

at::Tensor mask_pixels_cpu(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& fill) {
  auto out = images.clone();  // keeps the memory format of `images`
  fill_boxes_cpu(out, boxes, fill);
  return out;
}

void mask_pixels_inplace_cpu(at::Tensor& images, const at::Tensor& boxes, const at::Tensor& fill) {
  fill_boxes_cpu(images, boxes, fill);
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CPU, m) {
  m.impl("mask_pixels", &mask_pixels_cpu);
  m.impl("mask_pixels_", &mask_pixels_inplace_cpu);
}

}  // namespace vlengine
