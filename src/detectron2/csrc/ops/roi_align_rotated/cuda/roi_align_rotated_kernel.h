// Launchers of the ROIAlignRotated CUDA kernels (no ATen types: see csrc/README.md).
// T is float, double, __half or __nv_bfloat16; A is the accumulation type (double for
// double, float otherwise). All buffers are contiguous.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace detectron2 {
namespace roi_align_rotated {

// Writes the OR of roi_status() over all rois into *status (device int).
template <typename T>
cudaError_t launch_roi_status(const T* rois, int64_t num_rois, int64_t batch_size, int* status, cudaStream_t stream);

// output: (num_rois, channels, pooled_height, pooled_width). Rois that are not valid
// for batch_size (see roi_status) read nothing and give NaN outputs.
template <typename T>
cudaError_t launch_forward(
    const T* input, const T* rois, int64_t num_rois, int64_t batch_size, int64_t channels, int64_t height,
    int64_t width, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale,
    T* output, cudaStream_t stream);

// Accumulates into grad_input (batch_size, channels, height, width) of the accumulation
// type A, which the caller zero-fills (and casts back for half types). Invalid rois
// contribute nothing.
template <typename T, typename A>
cudaError_t launch_backward(
    const T* grad, const T* rois, int64_t num_rois, int64_t batch_size, int64_t channels, int64_t height,
    int64_t width, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale,
    A* grad_input, cudaStream_t stream);

}  // namespace roi_align_rotated
}  // namespace detectron2
