// Launch sizes of the grid-stride CUDA kernels, from a device's shape (no CUDA
// headers: csrc/ops/cuda/launch.cuh reads the shape from the current device,
// and tests/cpp/test_launch_size.cpp checks the rules on the CPU).
//
// UNMEASURED: measure when a GPU is lent (benchmarks/README.md, "GPU tuning").
// The rules follow from the kernels' structure (one independent item per
// thread, a grid-stride loop over the rest), not from timings:
// - few items for the device (fewer than two blocks per SM at the largest
//   block size): blocks shrink, down to two warps, so that the work spreads
//   over every SM instead of leaving most of them idle (the deterministic RoI
//   backward has one thread per (image, channel) plane: 65,536 threads are 256
//   blocks of 256, fewer than an H100's 132 SMs hold at once);
// - many items: the grid is capped at kWaves waves of resident blocks and the
//   threads loop over the rest, instead of one block per 256 items.
#pragma once

#include <algorithm>
#include <cstdint>

namespace vlengine {

struct DeviceShape {
  int sms;                   // multiProcessorCount
  int max_threads_per_sm;    // maxThreadsPerMultiProcessor
  int max_threads_per_block; // maxThreadsPerBlock
};

struct Launch {
  int64_t blocks;
  int threads;
};

constexpr int kMinThreads = 64;  // two warps
constexpr int64_t kWaves = 8;    // unmeasured default

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks and threads per block for a grid-stride loop over n items, at most max_threads per block.
inline Launch grid_stride_launch(int64_t n, const DeviceShape& device, int max_threads = 256) {
  const int64_t sms = std::max(1, device.sms);
  int threads = std::min(max_threads, device.max_threads_per_block);
  while (threads > kMinThreads && ceil_div(n, threads) < 2 * sms) threads /= 2;
  const int64_t resident_blocks = sms * std::max(1, device.max_threads_per_sm / threads);
  const int64_t blocks = std::min(ceil_div(std::max<int64_t>(n, 1), threads), resident_blocks * kWaves);
  return {std::max<int64_t>(blocks, 1), threads};
}

}  // namespace vlengine
