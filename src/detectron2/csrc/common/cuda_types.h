// Maps ATen scalar types to the CUDA types that the torch-free .cu kernels are
// instantiated for. Kept separate so .cu files never include ATen headers (compile time).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace detectron2 {

template <typename T>
struct cuda_type {
  using type = T;
};
template <>
struct cuda_type<c10::Half> {
  using type = __half;
};
template <>
struct cuda_type<c10::BFloat16> {
  using type = __nv_bfloat16;
};

template <typename T>
using cuda_type_t = typename cuda_type<T>::type;

}  // namespace detectron2
