// Launchers of the nms_segments CUDA kernels (no ATen: raw pointers and a stream).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace detectron2 {

constexpr int kNmsSegmentsMaxBounds = 33;  // kMaxNmsSegments + 1

// Segment boundaries shared by all images, passed to the kernels by value.
struct NmsSegmentBounds {
  int64_t at[kNmsSegmentsMaxBounds];
  int num_segments;
};

// mask holds (num_images * num_segments, max_len, col_blocks) words; for box i of a
// segment, bit b of word c is set when j = 64 c + b > i lies in the same segment and
// IoU(i, j) > iou_threshold. Only words with c >= i / 64 are written.
template <typename T>
cudaError_t launch_nms_segments_mask(const T* boxes, int64_t num_images, int64_t k, const NmsSegmentBounds& bounds,
                                     int64_t max_len, double iou_threshold, unsigned long long* mask,
                                     cudaStream_t stream);

// Greedy pass over every segment of every image at once (one thread block each): sets
// keep[img * k + p] for the kept positions; `keep` must be zeroed before.
cudaError_t launch_nms_segments_gather(const unsigned long long* mask, const bool* valid, int64_t num_images,
                                       int64_t k, const NmsSegmentBounds& bounds, int64_t max_len, bool* keep,
                                       cudaStream_t stream);

// constexpr: callable from the kernels too (built with --expt-relaxed-constexpr).
constexpr int64_t nms_segments_col_blocks(int64_t n) {
  return (n + 63) / 64;
}

}  // namespace detectron2
