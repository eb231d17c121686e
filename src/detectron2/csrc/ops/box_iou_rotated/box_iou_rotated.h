// box_iou_rotated: pairwise IoU of rotated boxes (x_ctr, y_ctr, w, h, angle_deg).
#pragma once

#include <ATen/core/Tensor.h>

namespace detectron2 {

// Raises ValueError/TypeError naming the bad argument; `allow_half` on CUDA only.
void check_box_iou_rotated_args(const at::Tensor& boxes1, const at::Tensor& boxes2, bool allow_half);

at::Tensor box_iou_rotated_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2);

#if defined(WITH_CUDA)
at::Tensor box_iou_rotated_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2);
#endif

}  // namespace detectron2
