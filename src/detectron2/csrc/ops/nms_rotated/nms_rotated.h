// nms_rotated: greedy non-maximum suppression of rotated boxes (x_ctr, y_ctr, w, h, angle_deg).
#pragma once

#include <ATen/core/Tensor.h>

namespace detectron2 {

// Raises ValueError/TypeError naming the bad argument; `allow_half` on CUDA only.
void check_nms_rotated_args(const at::Tensor& boxes, const at::Tensor& scores, bool allow_half);

at::Tensor nms_rotated_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);

#if defined(WITH_CUDA)
at::Tensor nms_rotated_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);
#endif

}  // namespace detectron2
