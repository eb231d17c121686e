#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/nms_segments/cuda/nms_segments_kernel.h"
#include "ops/nms_segments/nms_segments.h"

namespace detectron2 {

// Shared memory of the gather kernel holds one word per 64 boxes of the longest segment,
// within the 48 KiB a block gets without opting in (its static tile takes 520 bytes).
constexpr int64_t kMaxSegmentLength = 64 * 6000;

at::Tensor nms_segments_cuda(const at::Tensor& boxes, const at::Tensor& valid, at::IntArrayRef bounds,
                             double iou_threshold) {
  check_nms_segments_args(boxes, valid, bounds);
  static_assert(kNmsSegmentsMaxBounds == kMaxNmsSegments + 1, "bounds capacity");
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t num_images = boxes.size(0), k = boxes.size(1);
  at::Tensor keep = at::zeros({num_images, k}, valid.options());
  NmsSegmentBounds segs{};
  segs.num_segments = static_cast<int>(bounds.size()) - 1;
  int64_t max_len = 0;
  for (size_t s = 0; s < bounds.size(); ++s) {
    segs.at[s] = bounds[s];
    if (s > 0) {
      max_len = std::max(max_len, bounds[s] - bounds[s - 1]);
    }
  }
  if (num_images == 0 || max_len == 0) {
    return keep;
  }
  TORCH_CHECK_VALUE(max_len <= kMaxSegmentLength, "nms_segments: every segment of 'bounds' must hold at most ",
                    kMaxSegmentLength, " boxes on CUDA, got one of ", max_len);
  TORCH_CHECK_VALUE(num_images * segs.num_segments <= (int64_t{1} << 31) - 1,
                    "nms_segments: too many (image, segment) pairs: ", num_images * segs.num_segments);
  const at::Tensor b = boxes.contiguous();
  const at::Tensor v = valid.contiguous();
  const int64_t col_blocks = nms_segments_col_blocks(max_len);
  // uint64 words stored in an int64 tensor (same size; only the bits matter).
  at::Tensor mask = at::empty({num_images * segs.num_segments * max_len * col_blocks}, b.options().dtype(at::kLong));
  auto* mask_ptr = reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "nms_segments_cuda", [&] {
    C10_CUDA_CHECK(launch_nms_segments_mask<scalar_t>(b.data_ptr<scalar_t>(), num_images, k, segs, max_len,
                                                      iou_threshold, mask_ptr, stream));
  });
  C10_CUDA_CHECK(launch_nms_segments_gather(mask_ptr, v.data_ptr<bool>(), num_images, k, segs, max_len,
                                            keep.data_ptr<bool>(), stream));
  return keep;
}

TORCH_LIBRARY_IMPL(detectron2, CUDA, m) {
  m.impl("nms_segments", &nms_segments_cuda);
}

}  // namespace detectron2
