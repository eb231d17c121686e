// nms_segments: greedy NMS of axis-aligned boxes run independently in every segment of
// every image, all in one call (the RPN's per-level NMS over a whole batch).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace detectron2 {

// Most segments an image may have (the bounds travel to the CUDA kernels by value).
constexpr int64_t kMaxNmsSegments = 32;

// Raises ValueError/TypeError naming the bad argument.
void check_nms_segments_args(const at::Tensor& boxes, const at::Tensor& valid, at::IntArrayRef bounds);

// boxes (B, K, 4) XYXY in priority order within each segment; valid (B, K) bool;
// bounds = [0, k0, k0 + k1, ..., K]. Returns keep (B, K) bool.
at::Tensor nms_segments_cpu(const at::Tensor& boxes, const at::Tensor& valid, at::IntArrayRef bounds,
                            double iou_threshold);

#if defined(WITH_CUDA)
at::Tensor nms_segments_cuda(const at::Tensor& boxes, const at::Tensor& valid, at::IntArrayRef bounds,
                             double iou_threshold);
#endif

}  // namespace detectron2
