// Launchers of the box_iou_rotated CUDA kernel (no ATen: raw pointers and a stream).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace detectron2 {

// out[i * m + j] = IoU(boxes1[i], boxes2[j]); boxes are contiguous (n, 5) / (m, 5).
// Instantiated for float, double, __half and __nv_bfloat16; n, m > 0.
template <typename T>
cudaError_t launch_box_iou_rotated(const T* boxes1, const T* boxes2, int64_t n, int64_t m, T* out, cudaStream_t stream);

}  // namespace detectron2
