// CPU RoIAlign with pixel masking.
//
// Per RoI, the bilinear taps and weights of every sample point are computed
// once (with the weights of masked cells set to zero) and reused for every
// channel: masking costs nothing per channel, and no masked copy of the input
// exists. The forward runs RoIs in parallel; the backward runs channel blocks
// in parallel (each thread owns its channels of grad_input, so no atomics and
// a deterministic result), rebuilding the small per-RoI table in each thread.
// Inputs of any strides (channels-last included) are read in place.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "vlengine/box_checks.h"
#include "vlengine/cell_mask_cpu.h"
#include "vlengine/cpu_grain.h"
#include "vlengine/roi_geometry.h"

namespace vlengine {
namespace {

// Sample points per bin for the work estimate: adaptive sampling (<= 0) takes ceil(roi / bins) per
// axis, ~2 x 2 for the usual RoIs on a C4 map.
int64_t samples_per_bin(int64_t sampling_ratio) {
  return sampling_ratio > 0 ? sampling_ratio * sampling_ratio : 4;
}

template <typename acc_t>
struct Tap {
  int64_t offset;  // y * stride_h + x * stride_w
  acc_t weight;
};

// Taps of every (bin, sample) of one RoI, in (ph, pw, iy, ix) order, four per sample.
template <typename acc_t>
RoiGeometry<acc_t> build_taps(const acc_t* box, acc_t scale, int pooled_h, int pooled_w, int sampling_ratio,
                              bool aligned, int64_t height, int64_t width, int64_t stride_h, int64_t stride_w,
                              const uint8_t* cell_mask, std::vector<Tap<acc_t>>& taps) {
  const auto g = roi_geometry<acc_t>(box, scale, pooled_h, pooled_w, sampling_ratio, aligned);
  taps.resize(static_cast<size_t>(pooled_h) * pooled_w * g.grid_h * g.grid_w * 4);
  size_t i = 0;
  for (int ph = 0; ph < pooled_h; ++ph)
    for (int pw = 0; pw < pooled_w; ++pw)
      for (int iy = 0; iy < g.grid_h; ++iy) {
        const acc_t y = sample_y(g, ph, iy);
        for (int ix = 0; ix < g.grid_w; ++ix) {
          auto t = bilinear_taps(y, sample_x(g, pw, ix), height, width);
          drop_masked_taps(t, cell_mask, width);
          taps[i++] = {t.y0 * stride_h + t.x0 * stride_w, t.w00};
          taps[i++] = {t.y0 * stride_h + t.x1 * stride_w, t.w01};
          taps[i++] = {t.y1 * stride_h + t.x0 * stride_w, t.w10};
          taps[i++] = {t.y1 * stride_h + t.x1 * stride_w, t.w11};
        }
      }
  return g;
}

// Boxes as a contiguous double tensor on the CPU, checked against the batch size.
at::Tensor checked_boxes(const at::Tensor& boxes, const char* name, int64_t batch) {
  check_box_shape(boxes, name);
  auto b = boxes.to(at::kDouble).contiguous();
  check_box_values_cpu(b, name, batch);
  return b;
}

void check_input(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& masked) {
  TORCH_CHECK(input.dim() == 4, "input must be [N, C, H, W], got shape ", input.sizes());
  TORCH_CHECK(at::isFloatingType(input.scalar_type()), "input must be floating point, got ", input.scalar_type());
  TORCH_CHECK(input.device().is_cpu() && rois.device().is_cpu() && masked.device().is_cpu(),
              "roi_align_masked (CPU): input, rois and masked_boxes must all be on the CPU");
}

at::Tensor roi_align_masked_forward_cpu(const at::Tensor& input, const at::Tensor& rois,
                                        const at::Tensor& masked_boxes, double spatial_scale, int64_t pooled_h,
                                        int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  check_input(input, rois, masked_boxes);
  TORCH_CHECK(pooled_h > 0 && pooled_w > 0, "output_size must be positive, got (", pooled_h, ", ", pooled_w, ")");
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const auto rois_d = checked_boxes(rois, "rois", N);
  const auto masked_d = checked_boxes(masked_boxes, "masked_boxes", N);
  const int64_t K = rois.size(0);
  if (K == 0 || C == 0 || H == 0 || W == 0) return at::zeros({K, C, pooled_h, pooled_w}, input.options());
  // Every element is written below: no zero fill, and the pages are first
  // touched by the worker threads that write them.
  auto output = at::empty({K, C, pooled_h, pooled_w}, input.options());
  const auto cell_mask = masked_d.size(0) > 0 ? build_cell_mask_cpu(masked_d, N, H, W, spatial_scale) : at::Tensor();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_masked_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto rois_acc = rois_d.to(c10::CppTypeToScalarType<acc_t>::value);
    const acc_t* roi_data = rois_acc.data_ptr<acc_t>();
    const scalar_t* in = input.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    const uint8_t* mask = cell_mask.defined() ? cell_mask.data_ptr<uint8_t>() : nullptr;
    const int64_t sN = input.stride(0), sC = input.stride(1), sH = input.stride(2), sW = input.stride(3);
    const int64_t bins = pooled_h * pooled_w;

    // One RoI: C x bins x samples x 4 bilinear taps (adaptive sampling: ~2 x 2 a bin) (cpu_grain.h).
    const int64_t grain = grain_for(C * bins * samples_per_bin(sampling_ratio) * 4);
    at::parallel_for(0, K, grain, [&](int64_t begin, int64_t end) {
      std::vector<Tap<acc_t>> taps;
      for (int64_t k = begin; k < end; ++k) {
        const acc_t* roi = roi_data + 5 * k;
        const int64_t n = static_cast<int64_t>(roi[0]);
        const auto g = build_taps<acc_t>(roi + 1, static_cast<acc_t>(spatial_scale), pooled_h, pooled_w,
                                         sampling_ratio, aligned, H, W, sH, sW, mask ? mask + n * H * W : nullptr,
                                         taps);
        const int64_t per_bin = 4 * static_cast<int64_t>(g.grid_h) * g.grid_w;
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* plane = in + n * sN + c * sC;
          scalar_t* o = out + (k * C + c) * bins;
          const Tap<acc_t>* t = taps.data();
          for (int64_t b = 0; b < bins; ++b) {
            acc_t sum = 0;
            for (int64_t s = 0; s < per_bin; s += 4, t += 4)
              sum += t[0].weight * static_cast<acc_t>(plane[t[0].offset]) +
                     t[1].weight * static_cast<acc_t>(plane[t[1].offset]) +
                     t[2].weight * static_cast<acc_t>(plane[t[2].offset]) +
                     t[3].weight * static_cast<acc_t>(plane[t[3].offset]);
            o[b] = static_cast<scalar_t>(sum / g.count);
          }
        }
      }
    });
  });
  return output;
}

at::Tensor roi_align_masked_backward_cpu(const at::Tensor& grad, const at::Tensor& rois,
                                         const at::Tensor& masked_boxes, double spatial_scale, int64_t pooled_h,
                                         int64_t pooled_w, int64_t N, int64_t C, int64_t H, int64_t W,
                                         int64_t sampling_ratio, bool aligned) {
  TORCH_CHECK(grad.dim() == 4 && grad.size(1) == C && grad.size(2) == pooled_h && grad.size(3) == pooled_w,
              "grad must be [K, C, pooled_height, pooled_width], got shape ", grad.sizes());
  const auto rois_d = checked_boxes(rois, "rois", N);
  const auto masked_d = checked_boxes(masked_boxes, "masked_boxes", N);
  TORCH_CHECK(grad.size(0) == rois.size(0), "grad has ", grad.size(0), " RoIs but rois has ", rois.size(0));
  const int64_t K = rois.size(0);
  const bool low_precision = grad.scalar_type() == at::kHalf || grad.scalar_type() == at::kBFloat16;
  // Half-precision gradients accumulate in a float32 buffer.
  auto grad_input = at::zeros({N, C, H, W}, grad.options().dtype(low_precision ? at::kFloat : grad.scalar_type()));
  if (K == 0 || C == 0 || H == 0 || W == 0) return grad_input.to(grad.scalar_type());
  const auto cell_mask = masked_d.size(0) > 0 ? build_cell_mask_cpu(masked_d, N, H, W, spatial_scale) : at::Tensor();
  const auto grad_c = grad.contiguous();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_masked_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto rois_acc = rois_d.to(c10::CppTypeToScalarType<acc_t>::value);
    const acc_t* roi_data = rois_acc.data_ptr<acc_t>();
    const scalar_t* g_out = grad_c.data_ptr<scalar_t>();
    acc_t* g_in = grad_input.data_ptr<acc_t>();
    const uint8_t* mask = cell_mask.defined() ? cell_mask.data_ptr<uint8_t>() : nullptr;
    const int64_t bins = pooled_h * pooled_w;

    // One channel: every RoI's bins x samples x 4 taps (cpu_grain.h).
    const int64_t grain = grain_for(K * bins * samples_per_bin(sampling_ratio) * 4);
    at::parallel_for(0, C, grain, [&](int64_t c_begin, int64_t c_end) {
      std::vector<Tap<acc_t>> taps;
      for (int64_t k = 0; k < K; ++k) {
        const acc_t* roi = roi_data + 5 * k;
        const int64_t n = static_cast<int64_t>(roi[0]);
        const auto g = build_taps<acc_t>(roi + 1, static_cast<acc_t>(spatial_scale), pooled_h, pooled_w,
                                         sampling_ratio, aligned, H, W, W, 1, mask ? mask + n * H * W : nullptr,
                                         taps);
        const int64_t per_bin = 4 * static_cast<int64_t>(g.grid_h) * g.grid_w;
        for (int64_t c = c_begin; c < c_end; ++c) {
          acc_t* plane = g_in + (n * C + c) * H * W;
          const scalar_t* go = g_out + (k * C + c) * bins;
          const Tap<acc_t>* t = taps.data();
          for (int64_t b = 0; b < bins; ++b) {
            const acc_t gb = static_cast<acc_t>(go[b]) / g.count;
            for (int64_t s = 0; s < per_bin; ++s, ++t) plane[t->offset] += gb * t->weight;
          }
        }
      }
    });
  });
  return low_precision ? grad_input.to(grad.scalar_type()) : grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(vlengine, CPU, m) {
  m.impl("roi_align_masked", &roi_align_masked_forward_cpu);
  m.impl("roi_align_masked_backward", &roi_align_masked_backward_cpu);
}

}  // namespace vlengine
