// Device-side loading of rotated boxes into the compute type shared by the
// box_iou_rotated and nms_rotated kernels: half types are computed in float.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace detectron2 {
namespace rotated {

template <typename T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<__half> {
  using type = float;
};
template <>
struct compute_type<__nv_bfloat16> {
  using type = float;
};
template <typename T>
using compute_t = typename compute_type<T>::type;

__device__ __forceinline__ float to_compute(float v) { return v; }
__device__ __forceinline__ double to_compute(double v) { return v; }
__device__ __forceinline__ float to_compute(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_compute(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_compute(compute_t<T> v);
template <>
__device__ __forceinline__ float from_compute<float>(float v) { return v; }
template <>
__device__ __forceinline__ double from_compute<double>(double v) { return v; }
template <>
__device__ __forceinline__ __half from_compute<__half>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_compute<__nv_bfloat16>(float v) { return __float2bfloat16(v); }

}  // namespace rotated
}  // namespace detectron2
