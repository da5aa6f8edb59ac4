// CPU batched IoU. Boxes are converted once to the accumulation type
// (float32, or float64 for float64 boxes) so every dtype and stride takes the
// same inner loop; rows (b, i) run in parallel, each writing its own M outputs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "vlengine/box_iou.h"
#include "vlengine/cpu_grain.h"

namespace vlengine {
namespace {

void check_boxes(const at::Tensor& boxes, const char* name) {
  TORCH_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, name, " must be [B, N, 4] (x1, y1, x2, y2), got shape ",
              boxes.sizes());
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), name, " must be a floating tensor, got ", boxes.scalar_type());
  TORCH_CHECK(boxes.device().is_cpu(), "box_iou_batched (CPU): ", name, " must be on the CPU");
}

at::Tensor box_iou_batched_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_boxes(boxes1, "boxes1");
  check_boxes(boxes2, "boxes2");
  TORCH_CHECK(boxes1.size(0) == boxes2.size(0), "boxes1 and boxes2 must have the same batch size, got ",
              boxes1.size(0), " and ", boxes2.size(0));
  TORCH_CHECK(boxes1.scalar_type() == boxes2.scalar_type(), "boxes1 and boxes2 must have the same dtype, got ",
              boxes1.scalar_type(), " and ", boxes2.scalar_type());
  const int64_t B = boxes1.size(0), N = boxes1.size(1), M = boxes2.size(1);
  const auto acc = boxes1.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto out = at::empty({B, N, M}, boxes1.options().dtype(acc));
  if (out.numel() == 0) return out.to(boxes1.scalar_type());
  const auto a = boxes1.to(acc).contiguous();
  const auto b = boxes2.to(acc).contiguous();

  AT_DISPATCH_FLOATING_TYPES(acc, "box_iou_batched_cpu", [&] {
    const scalar_t* pa = a.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    // One row is M box pairs, ~16 operations each (cpu_grain.h).
    const int64_t grain = grain_for(16 * M);
    at::parallel_for(0, B * N, grain, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t img = row / N;
        const scalar_t* box = pa + 4 * row;
        const scalar_t area = box_area(box);
        const scalar_t* others = pb + 4 * img * M;
        scalar_t* o = po + row * M;
        for (int64_t j = 0; j < M; ++j) {
          const scalar_t* other = others + 4 * j;
          o[j] = box_iou(box, other, area, box_area(other));
        }
      }
    });
  });
  return out.to(boxes1.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CPU, m) {
  m.impl("box_iou_batched", &box_iou_batched_cpu);
}

}  // namespace vlengine
