// Build facts of this _C, reported by collect_env and checked by the doctor.
#pragma once

#include <string>

namespace detectron2 {

std::string get_compiler_version();  // e.g. "GCC 12.2"
std::string get_cuda_version();      // e.g. "13.0", "not available" for a C++-only build
bool has_cuda();                     // true when the CUDA kernels were compiled in

}  // namespace detectron2
