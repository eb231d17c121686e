// ROIAlignRotated: bilinear average pooling over rotated rois.
//
// Schemas (torch.ops.detectron2.*), as upstream:
//   roi_align_rotated_forward(input, rois, spatial_scale, pooled_height, pooled_width,
//                             sampling_ratio) -> (K, C, pooled_height, pooled_width)
//   roi_align_rotated_backward(grad, rois, spatial_scale, pooled_height, pooled_width,
//                              batch_size, channels, height, width, sampling_ratio)
//                              -> (batch_size, channels, height, width)
#pragma once

#include <ATen/core/Tensor.h>

namespace detectron2 {

// Argument checks shared by the CPU and CUDA entry points. `allow_half` admits
// float16/bfloat16 (CUDA only). sampling_ratio above kMaxSamplingRatio
// (roi_align_rotated_utils.h) is rejected: the work would have no bound.
void check_roi_align_rotated_forward(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio, bool allow_half);

void check_roi_align_rotated_backward(
    const at::Tensor& grad, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t batch_size, int64_t channels, int64_t height, int64_t width, int64_t sampling_ratio,
    bool allow_half);

// Raises for a RoiStatus bit set (see roi_align_rotated_utils.h), naming the first bad roi.
void raise_for_roi_status(const char* op, int status, int64_t batch_size);

}  // namespace detectron2
