// CPU IoU-neighbourhood masking. Images run in parallel; each first gathers
// its valid anchors (about 15% of its boxes) with their areas, then tests
// every valid non-anchor box against that short list, stopping at the first
// anchor that passes. Work is O(B * N * anchors) and memory O(B * N): the
// IoU matrix is never formed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "vlengine/box_iou.h"

namespace vlengine {
namespace {

void check_flags(const at::Tensor& flags, const at::Tensor& boxes, const char* name) {
  TORCH_CHECK(flags.scalar_type() == at::kBool, name, " must be a bool tensor, got ", flags.scalar_type());
  TORCH_CHECK(flags.dim() == 2 && flags.size(0) == boxes.size(0) && flags.size(1) == boxes.size(1), name,
              " must be [B, N] = [", boxes.size(0), ", ", boxes.size(1), "], got shape ", flags.sizes());
  TORCH_CHECK(flags.device().is_cpu(), "iou_neighbourhood_mask (CPU): ", name, " must be on the CPU");
}

at::Tensor iou_neighbourhood_mask_cpu(const at::Tensor& boxes, const at::Tensor& valid, const at::Tensor& anchors,
                                      double threshold, bool inclusive) {
  TORCH_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, "boxes must be [B, N, 4] (x1, y1, x2, y2), got shape ",
              boxes.sizes());
  TORCH_CHECK(at::isFloatingType(boxes.scalar_type()), "boxes must be a floating tensor, got ", boxes.scalar_type());
  TORCH_CHECK(boxes.device().is_cpu(), "iou_neighbourhood_mask (CPU): boxes must be on the CPU");
  check_flags(valid, boxes, "valid");
  check_flags(anchors, boxes, "anchors");
  const int64_t B = boxes.size(0), N = boxes.size(1);
  auto out = at::empty({B, N}, valid.options());
  if (out.numel() == 0) return out;
  const auto acc = boxes.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto box_c = boxes.to(acc).contiguous();
  const auto valid_c = valid.contiguous();
  const auto anchors_c = anchors.contiguous();

  AT_DISPATCH_FLOATING_TYPES(acc, "iou_neighbourhood_mask_cpu", [&] {
    const scalar_t* pb = box_c.data_ptr<scalar_t>();
    const bool* pv = valid_c.data_ptr<bool>();
    const bool* pa = anchors_c.data_ptr<bool>();
    bool* po = out.data_ptr<bool>();
    const scalar_t limit = static_cast<scalar_t>(threshold);
    const int64_t grain = std::max<int64_t>(1, 64 / std::max<int64_t>(N / 16, 1));
    at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> anchor_ids;
      std::vector<scalar_t> anchor_area;
      anchor_ids.reserve(N);
      anchor_area.reserve(N);
      for (int64_t img = begin; img < end; ++img) {
        const scalar_t* box = pb + 4 * img * N;
        const bool* v = pv + img * N;
        const bool* a = pa + img * N;
        bool* o = po + img * N;
        anchor_ids.clear();
        anchor_area.clear();
        for (int64_t j = 0; j < N; ++j)
          if (v[j] && a[j]) {
            anchor_ids.push_back(j);
            anchor_area.push_back(box_area(box + 4 * j));
          }
        const int64_t count = static_cast<int64_t>(anchor_ids.size());
        for (int64_t i = 0; i < N; ++i) {
          if (!v[i] || a[i]) {
            o[i] = v[i];  // padding is never masked; a valid anchor always is
            continue;
          }
          const scalar_t* bi = box + 4 * i;
          const scalar_t area = box_area(bi);
          bool hit = false;
          for (int64_t k = 0; k < count && !hit; ++k)
            hit = iou_passes(box_iou(bi, box + 4 * anchor_ids[k], area, anchor_area[k]), limit, inclusive);
          o[i] = hit;
        }
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CPU, m) {
  m.impl("iou_neighbourhood_mask", &iou_neighbourhood_mask_cpu);
}

}  // namespace vlengine
