#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/cuda_types.h"
#include "ops/box_iou_rotated/box_iou_rotated.h"
#include "ops/box_iou_rotated/cuda/box_iou_rotated_kernel.h"

namespace detectron2 {

at::Tensor box_iou_rotated_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_rotated_args(boxes1, boxes2, /*allow_half=*/true);
  const c10::cuda::CUDAGuard guard(boxes1.device());
  const int64_t n = boxes1.size(0);
  const int64_t m = boxes2.size(0);
  at::Tensor out = at::empty({n, m}, boxes1.options());
  if (n == 0 || m == 0) {
    return out;
  }
  const at::Tensor b1 = boxes1.contiguous();
  const at::Tensor b2 = boxes2.contiguous();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, b1.scalar_type(), "box_iou_rotated_cuda", [&] {
    using T = cuda_type_t<scalar_t>;
    C10_CUDA_CHECK(launch_box_iou_rotated<T>(
        reinterpret_cast<const T*>(b1.data_ptr<scalar_t>()), reinterpret_cast<const T*>(b2.data_ptr<scalar_t>()), n, m,
        reinterpret_cast<T*>(out.data_ptr<scalar_t>()), stream));
  });
  return out;
}

TORCH_LIBRARY_IMPL(detectron2, CUDA, m) {
  m.impl("box_iou_rotated", &box_iou_rotated_cuda);
}

}  // namespace detectron2
