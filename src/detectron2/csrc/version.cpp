#include "version.h"

#include <sstream>

#if defined(WITH_CUDA)
#include <cuda_runtime_api.h>  // CUDART_VERSION
#endif

namespace detectron2 {

std::string get_compiler_version() {
  std::ostringstream out;
#if defined(__clang__)
  out << "clang " << __clang_major__ << "." << __clang_minor__ << "." << __clang_patchlevel__;
#elif defined(__GNUC__)
  out << "GCC " << __GNUC__ << "." << __GNUC_MINOR__;
#elif defined(_MSC_VER)
  out << "MSVC " << _MSC_FULL_VER;
#else
  out << "unknown compiler";
#endif
  return out.str();
}

std::string get_cuda_version() {
#if defined(WITH_CUDA)
  // CUDART_VERSION encodes major*1000 + minor*10 (e.g. 11070 for 11.7).
  std::ostringstream out;
  out << CUDART_VERSION / 1000 << "." << (CUDART_VERSION % 1000) / 10;
  return out.str();
#else
  return "not available";
#endif
}

bool has_cuda() {
#if defined(WITH_CUDA)
  return true;
#else
  return false;
#endif
}

}  // namespace detectron2
