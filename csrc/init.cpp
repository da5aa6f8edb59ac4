// The Python module vlengine._C: the op schemas and the CPU kernels. Importing
// it registers them (the TORCH_LIBRARY_FRAGMENT/IMPL blocks run as static
// initialisers). The CUDA kernels live in vlengine._C_cuda.
#include <torch/extension.h>

namespace {

bool built_with_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("built_with_openmp", &built_with_openmp, "whether at::parallel_for uses OpenMP");
}
