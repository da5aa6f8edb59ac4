// C++ test of the op library through the dispatcher (no Python): the fused op
// equals "mask the map, then RoIAlign", a hand-computed bilinear value, and
// bad input throws c10::Error instead of crashing.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdio>
#include <functional>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
  if (!ok) ++failures;
}

at::Tensor roi_align_masked(const at::Tensor& input, const at::Tensor& rois, const at::Tensor& masked, double scale,
                            int64_t ph, int64_t pw, int64_t sampling, bool aligned) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("vlengine::roi_align_masked", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double, c10::SymInt,
                                         c10::SymInt, int64_t, bool)>();
  return op.call(input, rois, masked, scale, ph, pw, sampling, aligned);
}

at::Tensor mask_pixels(const at::Tensor& images, const at::Tensor& boxes, const at::Tensor& fill) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("vlengine::mask_pixels", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(images, boxes, fill);
}

bool throws(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const c10::Error&) {
    return true;
  }
  return false;
}

}  // namespace

int main() {
  at::manual_seed(0);
  const auto input = at::randn({2, 7, 19, 23});
  const auto rois = at::tensor({0.0, 3.0, 2.5, 40.0, 30.0, 1.0, -8.0, 4.0, 20.0, 36.0, 0.0, 10.0, 10.0, 10.5, 11.0})
                        .reshape({3, 5})
                        .to(at::kFloat);
  const auto masked = at::tensor({0.0, 8.0, 8.0, 24.0, 20.0, 1.0, 0.0, 0.0, 12.0, 50.0}).reshape({2, 5}).to(at::kFloat);
  const double scale = 0.5;

  // Fused == composition (masked boxes scaled to the map, then plain RoIAlign).
  for (bool aligned : {false, true}) {
    for (int64_t sampling : {-1, 1, 2}) {
      auto scaled = masked.clone();
      scaled.narrow(1, 1, 4).mul_(scale);
      const auto composed = roi_align_masked(mask_pixels(input, scaled, at::zeros({})), rois, masked.narrow(0, 0, 0),
                                             scale, 5, 4, sampling, aligned);
      const auto fused = roi_align_masked(input, rois, masked, scale, 5, 4, sampling, aligned);
      expect(at::allclose(fused, composed, 1e-5, 1e-6), "fused equals mask-then-align");
    }
  }

  // One RoI, one bin, one sample at (y, x) = (1.5, 1.5): the mean of four cells.
  const auto grid = at::arange(16, at::kFloat).reshape({1, 1, 4, 4});
  const auto one = at::tensor({0.0, 1.0, 1.0, 2.0, 2.0}).reshape({1, 5}).to(at::kFloat);
  const auto value = roi_align_masked(grid, one, one.narrow(0, 0, 0), 1.0, 1, 1, 1, false).item<float>();
  expect(std::fabs(value - (5 + 6 + 9 + 10) / 4.0f) < 1e-6, "bilinear value by hand");
  // Masking cell (1, 1) (value 5) removes its share.
  const auto cell = at::tensor({0.0, 1.0, 1.0, 1.0, 1.0}).reshape({1, 5}).to(at::kFloat);
  const auto masked_value = roi_align_masked(grid, one, cell, 1.0, 1, 1, 1, false).item<float>();
  expect(std::fabs(masked_value - (6 + 9 + 10) / 4.0f) < 1e-6, "masked cell contributes zero");

  // Bad input is an error, never a crash.
  const auto bad_index = at::tensor({5.0, 0.0, 0.0, 1.0, 1.0}).reshape({1, 5}).to(at::kFloat);
  expect(throws([&] { roi_align_masked(input, bad_index, masked, 1.0, 2, 2, 1, false); }), "batch index out of range");
  const auto inverted = at::tensor({0.0, 5.0, 0.0, 1.0, 1.0}).reshape({1, 5}).to(at::kFloat);
  expect(throws([&] { roi_align_masked(input, inverted, masked, 1.0, 2, 2, 1, false); }), "x2 < x1");
  expect(throws([&] { roi_align_masked(input, rois.narrow(1, 0, 4), masked, 1.0, 2, 2, 1, false); }), "rois not [K, 5]");
  const auto nan_box = at::tensor({0.0, NAN, 0.0, 1.0, 1.0}).reshape({1, 5}).to(at::kFloat);
  expect(throws([&] { roi_align_masked(input, nan_box, masked, 1.0, 2, 2, 1, false); }), "NaN coordinate");

  std::printf("%d failed\n", failures);
  return failures == 0 ? 0 : 1;
}
