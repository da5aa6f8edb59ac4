// The Python module vlengine._C_cuda: the CUDA kernels, separate from the CPU
// module vlengine._C. Importing it registers the CUDA implementations of the
// ops whose schemas vlengine._C defines, so it is imported after _C, and only
// where a GPU is visible: on a GPU-less machine, loading the CUDA runtime
// libraries it links made multi-process (gloo) jobs abort at exit now and then.
#include <cuda.h>
#include <torch/extension.h>

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("cuda_version", [] { return CUDA_VERSION; }, "CUDA_VERSION the kernels were compiled with");
}
