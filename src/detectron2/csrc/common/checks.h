// Argument validation shared by every op entry point.
//
// Every check raises a Python exception (ValueError for shapes/devices, TypeError for
// dtypes) whose message names the op, the argument and what was expected, so that bad
// input never reaches a kernel.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <sstream>
#include <string>

namespace detectron2 {
namespace checks {

inline std::string shape_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

inline void defined(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.defined(), op, ": argument '", arg, "' must be a tensor, got an undefined tensor");
}

// t.dim() == dim
inline void dim(const char* op, const char* arg, const at::Tensor& t, int64_t dim, const char* layout) {
  defined(op, arg, t);
  TORCH_CHECK_VALUE(
      t.dim() == dim, op, ": argument '", arg, "' must be a ", dim, "-D tensor of shape ", layout,
      ", got shape ", shape_of(t));
}

// t.size(d) == size
inline void size(const char* op, const char* arg, const at::Tensor& t, int64_t d, int64_t size, const char* layout) {
  TORCH_CHECK_VALUE(
      t.size(d) == size, op, ": argument '", arg, "' must have shape ", layout, " (size ", size,
      " in dim ", d, "), got shape ", shape_of(t));
}

// float32 or float64, plus half types when `allow_half` (CUDA kernels under autocast).
inline void floating(const char* op, const char* arg, const at::Tensor& t, bool allow_half = false) {
  const auto s = t.scalar_type();
  const bool ok = s == at::kFloat || s == at::kDouble || (allow_half && (s == at::kHalf || s == at::kBFloat16));
  TORCH_CHECK_TYPE(
      ok, op, ": argument '", arg, "' must be a ",
      allow_half ? "float32, float64, float16 or bfloat16" : "float32 or float64", " tensor, got ", s,
      allow_half ? "" : " (float16/bfloat16 are supported on CUDA only)");
}

inline void same_dtype(const char* op, const char* arg, const at::Tensor& t, const char* ref_arg, const at::Tensor& ref) {
  TORCH_CHECK_TYPE(
      t.scalar_type() == ref.scalar_type(), op, ": argument '", arg, "' must have the same dtype as '", ref_arg,
      "' (", ref.scalar_type(), "), got ", t.scalar_type());
}

inline void same_device(const char* op, const char* arg, const at::Tensor& t, const char* ref_arg, const at::Tensor& ref) {
  TORCH_CHECK_VALUE(
      t.device() == ref.device(), op, ": argument '", arg, "' must be on the same device as '", ref_arg, "' (",
      ref.device(), "), got ", t.device());
}

// For tensors a kernel writes into (in-place output buffers of the legacy module functions).
inline void contiguous_output(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_VALUE(
      t.is_contiguous(), op, ": output argument '", arg,
      "' must be a contiguous tensor (it is written in place); pass a tensor from torch.empty(...) or .contiguous()");
}

inline void positive(const char* op, const char* arg, int64_t value) {
  TORCH_CHECK_VALUE(value > 0, op, ": argument '", arg, "' must be positive, got ", value);
}

inline void non_negative(const char* op, const char* arg, int64_t value) {
  TORCH_CHECK_VALUE(value >= 0, op, ": argument '", arg, "' must be non-negative, got ", value);
}

}  // namespace checks
}  // namespace detectron2
