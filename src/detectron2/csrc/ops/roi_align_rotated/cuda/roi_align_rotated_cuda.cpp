// CUDA entry points of ROIAlignRotated: checks, dtype dispatch, allocation, stream.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
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

// One tiny kernel and one 4-byte copy: rois are validated before any kernel indexes
// the input with them.
template <typename T>
void check_rois(const char* op, const at::Tensor& rois, int64_t batch_size, cudaStream_t stream) {
  if (rois.size(0) == 0) return;
  at::Tensor status = at::empty({1}, rois.options().dtype(at::kInt));
  C10_CUDA_CHECK(roi_align_rotated::launch_roi_status<T>(
      reinterpret_cast<const T*>(rois.data_ptr()), rois.size(0), batch_size, status.data_ptr<int>(), stream));
  raise_for_roi_status(op, status.item<int>(), batch_size);
}

at::Tensor forward_cuda(
    const at::Tensor& input_, const at::Tensor& rois_, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio) {
  check_roi_align_rotated_forward(input_, rois_, spatial_scale, pooled_height, pooled_width, true);
  c10::cuda::CUDAGuard guard(input_.device());
  const at::Tensor input = input_.contiguous(), rois = rois_.contiguous();
  const int64_t num_rois = rois.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor output;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align_rotated_forward", [&] {
    using T = cuda_type_t<scalar_t>;
    check_rois<T>("roi_align_rotated_forward", rois, input.size(0), stream);
    if (height == 0 || width == 0) {
      output = at::zeros({num_rois, channels, pooled_height, pooled_width}, input.options());
      return;
    }
    output = at::empty({num_rois, channels, pooled_height, pooled_width}, input.options());
    C10_CUDA_CHECK(roi_align_rotated::launch_forward<T>(
        reinterpret_cast<const T*>(input.data_ptr()), reinterpret_cast<const T*>(rois.data_ptr()), num_rois, channels,
        height, width, pooled_height, pooled_width, sampling_ratio, spatial_scale,
        reinterpret_cast<T*>(output.data_ptr()), stream));
  });
  return output;
}

at::Tensor backward_cuda(
    const at::Tensor& grad_, const at::Tensor& rois_, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t batch_size, int64_t channels, int64_t height, int64_t width,
    int64_t sampling_ratio) {
  check_roi_align_rotated_backward(
      grad_, rois_, spatial_scale, pooled_height, pooled_width, batch_size, channels, height, width, true);
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
    check_rois<T>("roi_align_rotated_backward", rois, batch_size, stream);
    if (grad_input.numel() == 0) return;
    const cudaError_t err = roi_align_rotated::launch_backward<T, A>(
        reinterpret_cast<const T*>(grad.data_ptr()), reinterpret_cast<const T*>(rois.data_ptr()), num_rois, channels,
        height, width, pooled_height, pooled_width, sampling_ratio, spatial_scale, grad_input.data_ptr<A>(), stream);
    C10_CUDA_CHECK(err);
  });
  return half ? grad_input.to(grad.scalar_type()) : grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(detectron2, CUDA, m) {
  m.impl("roi_align_rotated_forward", &forward_cuda);
  m.impl("roi_align_rotated_backward", &backward_cuda);
}

}  // namespace detectron2
