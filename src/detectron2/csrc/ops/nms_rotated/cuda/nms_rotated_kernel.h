// Launchers of the nms_rotated CUDA kernels (no ATen: raw pointers and a stream).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace detectron2 {

constexpr int64_t kNmsBlock = 64;  // boxes per bitmask word

inline int64_t nms_col_blocks(int64_t n) {
  return (n + kNmsBlock - 1) / kNmsBlock;
}

// For boxes sorted by decreasing score ((n, 5), contiguous), sets bit k of
// mask[i * col_blocks + c] when j = c * 64 + k > i and IoU(i, j) > iou_threshold.
// Only words with c >= i / 64 are written. Instantiated for float, double, __half,
// __nv_bfloat16; n > 0.
template <typename T>
cudaError_t launch_nms_rotated_mask(
    const T* sorted_boxes, int64_t n, double iou_threshold, unsigned long long* mask, cudaStream_t stream);

// Greedy pass over the mask on the device: writes the kept positions (in sorted
// order) to keep[0..*num_kept) and their count to *num_kept. `scratch` holds
// col_blocks words, used when they do not fit in shared memory.
cudaError_t launch_nms_rotated_reduce(
    const unsigned long long* mask, int64_t n, unsigned long long* scratch, int64_t* keep, int64_t* num_kept,
    cudaStream_t stream);

}  // namespace detectron2
