// Launch sizes of the grid-stride kernels for the current device (rules and
// why: vlengine/launch_size.h). Kernels whose shared memory is sized by a
// compile-time block size keep their fixed size.
#pragma once

#include <ATen/cuda/CUDAContext.h>

#include "vlengine/launch_size.h"

namespace vlengine {

inline Launch grid_stride_launch(int64_t n, int max_threads = 256) {
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  return grid_stride_launch(
      n, DeviceShape{prop->multiProcessorCount, prop->maxThreadsPerMultiProcessor, prop->maxThreadsPerBlock},
      max_threads);
}

}  // namespace vlengine
