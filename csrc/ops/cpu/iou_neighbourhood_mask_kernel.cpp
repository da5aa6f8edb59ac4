// CPU IoU-neighbourhood masking. Images run in parallel; each first gathers
// its valid anchors (about 15% of its boxes) into structure-of-arrays
// scratch (x1, y1, x2, y2, area), then tests every valid non-anchor box
// against all of them in a branch-free loop the compiler vectorises (the
// IoU expression is the shared one of box_iou.h, so results stay identical
// to the other backends). Work is O(B * N * anchors) and memory O(B * N):
// the IoU matrix is never formed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

// Before box_iou.h, so its inline IoU gets the same setting as the loop it is inlined into.
// Comparisons and selects on floats count as control flow that "may trap" for
// GCC's vectoriser; with no-trapping-math it vectorises the anchor loop.
// This changes no arithmetic result (IEEE rounding is untouched); it only
// stops GCC from assuming floating-point exceptions are observed.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "vlengine/box_iou.h"
#include "vlengine/cpu_grain.h"

namespace vlengine {
namespace {

// 1 if box `b` (area `area_b`) passes the threshold against any of the `count`
// anchors held as separate coordinate arrays; branch-free so it vectorises.
template <typename T, bool Inclusive>
int passes_any_anchor(const T* b, T area_b, const T* x1, const T* y1, const T* x2, const T* y2, const T* area,
                      int64_t count, T limit) {
  int hit = 0;
  for (int64_t k = 0; k < count; ++k) {
    const T anchor[4] = {x1[k], y1[k], x2[k], y2[k]};
    hit |= static_cast<int>(iou_passes(box_iou(b, anchor, area_b, area[k]), limit, Inclusive));
  }
  return hit;
}

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
    // One image tests its N boxes against its valid anchors, ~16 operations a pair (cpu_grain.h);
    // anchors are a small share of the boxes (InterBERT: 15%), so count them instead of assuming N.
    int64_t valid_anchors = 0;
    for (int64_t i = 0; i < B * N; ++i) valid_anchors += pv[i] && pa[i];
    const int64_t grain = grain_for(16 * N * std::max<int64_t>(1, valid_anchors / std::max<int64_t>(B, 1)));
    at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
      // Anchor scratch, one array per coordinate so the inner loop is unit-stride.
      std::vector<scalar_t> ax1(N), ay1(N), ax2(N), ay2(N), area(N);
      for (int64_t img = begin; img < end; ++img) {
        const scalar_t* box = pb + 4 * img * N;
        const bool* v = pv + img * N;
        const bool* a = pa + img * N;
        bool* o = po + img * N;
        int64_t count = 0;
        for (int64_t j = 0; j < N; ++j)
          if (v[j] && a[j]) {
            const scalar_t* bj = box + 4 * j;
            ax1[count] = bj[0];
            ay1[count] = bj[1];
            ax2[count] = bj[2];
            ay2[count] = bj[3];
            area[count] = box_area(bj);
            ++count;
          }
        for (int64_t i = 0; i < N; ++i) {
          if (!v[i] || a[i] || count == 0) {
            o[i] = v[i] && a[i];  // padding is never masked; a valid anchor always is
            continue;
          }
          const scalar_t* bi = box + 4 * i;
          const scalar_t area_i = box_area(bi);
          const auto test = inclusive ? &passes_any_anchor<scalar_t, true> : &passes_any_anchor<scalar_t, false>;
          o[i] = test(bi, area_i, ax1.data(), ay1.data(), ax2.data(), ay2.data(), area.data(), count, limit) != 0;
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
