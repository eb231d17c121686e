// CUDA entry points of ROIAlignRotated: checks, dtype dispatch, allocation, stream.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <type_traits>

#include "common/cuda_types.h"
#include "ops/roi_align_rotated/cuda/roi_align_rotated_kernel.h"
#include "ops/roi_align_rotated/roi_align_rotated.h"

namespace detectron2 {

namespace {

// Validation that leaves the GPU no idle gap: a one-block kernel ORs the roi statuses
// into a device int and an async copy brings it to pinned host memory; the caller
// queues its kernels (which skip invalid rois, so they are safe either way) and only
// then waits for that copy, which completes while those kernels run. (The old order,
// check then `.item()` then launch, left the GPU idle for a host round trip per call.)
class PendingRoiCheck {
 public:
  template <typename T>
  static PendingRoiCheck make(const at::Tensor& rois, int64_t batch_size, cudaStream_t stream) {
    PendingRoiCheck check(batch_size);
    if (rois.size(0) == 0) return check;
    const at::Tensor status = at::empty({1}, rois.options().dtype(at::kInt));
    C10_CUDA_CHECK(roi_align_rotated::launch_roi_status<T>(
        reinterpret_cast<const T*>(rois.data_ptr()), rois.size(0), batch_size, status.data_ptr<int>(), stream));
    check.host_ = at::empty({1}, at::TensorOptions().dtype(at::kInt).device(at::kCPU).pinned_memory(true));
    check.host_.copy_(status, /*non_blocking=*/true);
    check.copied_.record(at::cuda::getCurrentCUDAStream());
    return check;
  }

  // Waits for the status and raises a ValueError naming the bad column, if any.
  void raise_if_bad(const char* op) {
    if (!host_.defined()) return;
    copied_.synchronize();
    raise_for_roi_status(op, host_.data_ptr<int>()[0], batch_size_);
  }

 private:
  explicit PendingRoiCheck(int64_t batch_size) : batch_size_(batch_size) {}

  int64_t batch_size_;
  at::Tensor host_;
  at::cuda::CUDAEvent copied_;
};

at::Tensor forward_cuda(
    const at::Tensor& input_, const at::Tensor& rois_, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio) {
  const char* op = "roi_align_rotated_forward";
  check_roi_align_rotated_forward(input_, rois_, spatial_scale, pooled_height, pooled_width, sampling_ratio, true);
  c10::cuda::CUDAGuard guard(input_.device());
  const at::Tensor input = input_.contiguous(), rois = rois_.contiguous();
  const int64_t num_rois = rois.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor output;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_rotated_forward", [&] {
    using T = cuda_type_t<scalar_t>;
    PendingRoiCheck check = PendingRoiCheck::template make<T>(rois, input.size(0), stream);
    if (height == 0 || width == 0) {
      output = at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
    } else {
      output = at::empty({num_rois, channels, pooled_height, pooled_width}, input.options());
      C10_CUDA_CHECK(roi_align_rotated::launch_forward<T>(
          reinterpret_cast<const T*>(input.data_ptr()), reinterpret_cast<const T*>(rois.data_ptr()), num_rois,
          input.size(0), channels, height, width, pooled_height, pooled_width, sampling_ratio, spatial_scale,
          reinterpret_cast<T*>(output.data_ptr()), stream));
    }
    check.raise_if_bad(op);
  });
  return output;
}

at::Tensor backward_cuda(
    const at::Tensor& grad_, const at::Tensor& rois_, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t batch_size, int64_t channels, int64_t height, int64_t width,
    int64_t sampling_ratio) {
  const char* op = "roi_align_rotated_backward";
  check_roi_align_rotated_backward(
      grad_, rois_, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, sampling_ratio,
      true);
  c10::cuda::CUDAGuard guard(grad_.device());
  const at::Tensor grad = grad_.contiguous(), rois = rois_.contiguous();
  const int64_t num_rois = rois.size(0);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  // Half types accumulate in float (atomicAdd on half is slow and loses precision).
  const bool half = grad.scalar_type() == at::kHalf || grad.scalar_type() == at::kBFloat16;
  at::Tensor grad_input = at::zeros(
      {batch_size, channels, height, width}, grad.options().dtype(half ? at::kFloat : grad.scalar_type()));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "roi_align_rotated_backward", [&] {
    using T = cuda_type_t<scalar_t>;
    using A = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
    PendingRoiCheck check = PendingRoiCheck::template make<T>(rois, batch_size, stream);
    if (grad_input.numel() > 0) {
      C10_CUDA_CHECK((roi_align_rotated::launch_backward<T, A>(
          reinterpret_cast<const T*>(grad.data_ptr()), reinterpret_cast<const T*>(rois.data_ptr()), num_rois,
          batch_size, channels, height, width, pooled_height, pooled_width, sampling_ratio, spatial_scale,
          grad_input.data_ptr<A>(), stream)));
    }
    check.raise_if_bad(op);
  });
  return half ? grad_input.to(grad.scalar_type()) : grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(detectron2, CUDA, m) {
  m.impl("roi_align_rotated_forward", &forward_cuda);
  m.impl("roi_align_rotated_backward", &backward_cuda);
}

}  // namespace detectron2
