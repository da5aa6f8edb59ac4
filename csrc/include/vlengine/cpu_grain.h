// How much work a CPU kernel hands to one thread of at::parallel_for.
//
// A parallel region is as slow as its slowest thread. On a quiet machine a woken
// OpenMP worker starts within microseconds; beside another busy process (a second
// rank, a loader, another job) it may wait for a whole scheduler time slice first,
// and every parallel region then waits with it: iou_neighbourhood_mask at B = 256,
// N = 100 went from 0.45 ms to 202 ms beside a 2-thread matmul process on the 2-core
// development machine. So a range is split only when each thread gets enough work to
// be worth that risk: kMinWorkPerThread "element operations" (one multiply-add, or
// one element read or written, ~0.3-1 ns each on one core), i.e. several milliseconds
// of one thread's time. A smaller problem runs entirely on the calling thread
// (at::parallel_for runs the body inline when the range is within one grain), which
// no other process can stall.
#pragma once

#include <algorithm>
#include <cstdint>

namespace vlengine {

constexpr int64_t kMinWorkPerThread = int64_t{1} << 23;

// Items per chunk so that a chunk holds at least kMinWorkPerThread when one item costs
// `work_per_item` element operations.
inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kMinWorkPerThread / std::max<int64_t>(work_per_item, 1));
}

}  // namespace vlengine
