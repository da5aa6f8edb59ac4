// C++ test of the launch-size rules of the grid-stride CUDA kernels
// (vlengine/launch_size.h), on the CPU: device shapes of real GPUs, no GPU needed.
#include <cstdio>

#include "vlengine/launch_size.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
  if (!ok) ++failures;
}

constexpr vlengine::DeviceShape kH100{132, 2048, 1024};
constexpr vlengine::DeviceShape kT4{40, 1024, 1024};

}  // namespace

int main() {
  using vlengine::grid_stride_launch;
  const auto many = grid_stride_launch(int64_t(1) << 30, kH100);
  expect(many.threads == 256, "many items: full blocks");
  expect(many.blocks == 132 * (2048 / 256) * vlengine::kWaves, "many items: capped at kWaves waves of resident blocks");
  expect(many.blocks * many.threads < (int64_t(1) << 30), "many items: threads loop over the rest");

  const auto planes = grid_stride_launch(64 * 1024, kH100);  // the deterministic RoI backward: N x C threads
  expect(planes.threads < 256 && planes.blocks >= 2 * 132, "few items: smaller blocks reach every SM");
  expect(planes.blocks * planes.threads >= 64 * 1024, "few items: one thread per item, no loop");

  const auto same = grid_stride_launch(64 * 1024, kT4);  // 40 SMs: 256 blocks of 256 already fill it
  expect(same.threads == 256 && same.blocks == 256, "a smaller GPU keeps full blocks for the same work");

  const auto tiny = grid_stride_launch(5, kH100);
  expect(tiny.threads == vlengine::kMinThreads && tiny.blocks == 1, "tiny work: one block of two warps");
  const auto none = grid_stride_launch(0, kT4);
  expect(none.blocks == 1 && none.threads >= vlengine::kMinThreads, "no work: still a valid launch");
  const auto capped = grid_stride_launch(1 << 20, vlengine::DeviceShape{80, 2048, 128});
  expect(capped.threads == 128, "never more threads than the device allows per block");

  std::printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
