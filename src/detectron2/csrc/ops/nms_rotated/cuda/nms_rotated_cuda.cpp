#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/sort.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/cuda_types.h"
#include "ops/nms_rotated/cuda/nms_rotated_kernel.h"
#include "ops/nms_rotated/nms_rotated.h"

namespace detectron2 {

at::Tensor nms_rotated_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_rotated_args(boxes, scores, /*allow_half=*/true);
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t n = boxes.size(0);
  const auto long_options = boxes.options().dtype(at::kLong);
  if (n == 0) {
    return at::empty({0}, long_options);
  }
  // Stable: equal scores keep their input order.
  const at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted_boxes = at::index_select(boxes, 0, order).contiguous();
  const int64_t col_blocks = nms_col_blocks(n);
  // uint64 words stored in int64 tensors (same size; only the bits matter).
  at::Tensor mask = at::empty({n * col_blocks}, long_options);
  at::Tensor scratch = at::empty({col_blocks}, long_options);
  at::Tensor keep_pos = at::empty({n}, long_options);
  at::Tensor num_kept = at::empty({1}, long_options);
  auto* mask_ptr = reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, sorted_boxes.scalar_type(), "nms_rotated_cuda", [&] {
    using T = cuda_type_t<scalar_t>;
    C10_CUDA_CHECK(launch_nms_rotated_mask<T>(
        reinterpret_cast<const T*>(sorted_boxes.data_ptr<scalar_t>()), n, iou_threshold, mask_ptr, stream));
  });
  C10_CUDA_CHECK(launch_nms_rotated_reduce(
      mask_ptr, n, reinterpret_cast<unsigned long long*>(scratch.data_ptr<int64_t>()), keep_pos.data_ptr<int64_t>(),
      num_kept.data_ptr<int64_t>(), stream));
  const int64_t k = num_kept.cpu().data_ptr<int64_t>()[0];
  return at::index_select(order, 0, keep_pos.narrow(0, 0, k));
}

TORCH_LIBRARY_IMPL(detectron2, CUDA, m) {
  m.impl("nms_rotated", &nms_rotated_cuda);
}

}  // namespace detectron2
