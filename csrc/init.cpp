// The Python module vlengine._C. Importing it registers every op (the
// TORCH_LIBRARY_FRAGMENT/IMPL blocks run as static initialisers); the few
// functions here only report how it was built, for `python -m vlengine.info`.
#include <torch/extension.h>

#ifdef WITH_CUDA
#include <cuda.h>
#endif

namespace {

bool built_with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_version() {
#ifdef WITH_CUDA
  return CUDA_VERSION;
#else
  return 0;
#endif
}

bool built_with_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("built_with_cuda", &built_with_cuda, "whether the CUDA kernels were compiled in");
  m.def("cuda_version", &cuda_version, "CUDA_VERSION the kernels were compiled with (0 if none)");
  m.def("built_with_openmp", &built_with_openmp, "whether at::parallel_for uses OpenMP");
}
