// CUDA glue of deformable convolution: dtype dispatch, device guard, stream, and the
// accumulation buffers of the half types; the kernels are in deform_conv_kernel.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "common/cuda_types.h"
#include "ops/deform_conv/cuda/deform_conv_kernel.h"
#include "ops/deform_conv/deform_conv.h"

namespace detectron2 {
namespace deform_conv {

namespace {

template <typename T>
const cuda_type_t<T>* cuda_ptr(const at::Tensor& t) {
  return t.defined() ? reinterpret_cast<const cuda_type_t<T>*>(t.data_ptr<T>()) : nullptr;
}

template <typename T>
cuda_type_t<T>* cuda_mut_ptr(at::Tensor& t) {
  return t.defined() ? reinterpret_cast<cuda_type_t<T>*>(t.data_ptr<T>()) : nullptr;
}

template <typename T>
using acc_t = typename cuda_acc<cuda_type_t<T>>::type;

}  // namespace

void im2col_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
                 at::Tensor& columns) {
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "deform_conv_im2col_cuda", [&] {
    C10_CUDA_CHECK(launch_im2col(cuda_ptr<scalar_t>(input), cuda_ptr<scalar_t>(offset), cuda_ptr<scalar_t>(mask), g,
                                 cuda_mut_ptr<scalar_t>(columns), stream));
  });
}

void rows_to_nchw_cuda(const at::Tensor& rows, const at::Tensor& bias, at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(rows.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t batch = out.size(0), channels = out.size(1), pixels = out.size(2) * out.size(3);
  const at::Tensor bias_c = bias.defined() ? bias.contiguous() : bias;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, rows.scalar_type(), "deform_conv_rows_to_nchw_cuda", [&] {
    C10_CUDA_CHECK(launch_rows_to_nchw(cuda_ptr<scalar_t>(rows), cuda_ptr<scalar_t>(bias_c), batch, pixels, channels,
                                       cuda_mut_ptr<scalar_t>(out), stream));
  });
}

void col2im_cuda(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask,
                 const Geometry& g, at::Tensor& grad_input) {
  const c10::cuda::CUDAGuard guard(grad_columns.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_columns.scalar_type(), "deform_conv_col2im_cuda", [&] {
    C10_CUDA_CHECK(launch_col2im(cuda_ptr<scalar_t>(grad_columns), cuda_ptr<scalar_t>(offset),
                                 cuda_ptr<scalar_t>(mask), g, grad_input.data_ptr<acc_t<scalar_t>>(), stream));
  });
}

void coord_grad_cuda(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                     const at::Tensor& mask, const Geometry& g, at::Tensor& grad_offset, at::Tensor& grad_mask) {
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t chunks = channel_chunks(g);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "deform_conv_coord_grad_cuda", [&] {
    if (chunks == 1) {
      C10_CUDA_CHECK(launch_coord_grad(cuda_ptr<scalar_t>(grad_columns), cuda_ptr<scalar_t>(input),
                                       cuda_ptr<scalar_t>(offset), cuda_ptr<scalar_t>(mask), g,
                                       cuda_mut_ptr<scalar_t>(grad_offset), cuda_mut_ptr<scalar_t>(grad_mask), stream));
      return;
    }
    // Too few taps to fill the GPU: split the channel sum over threads, reduce atomically.
    const auto acc_options = input.options().dtype(c10::CppTypeToScalarType<acc_t<scalar_t>>::value);
    at::Tensor offset_acc = at::zeros(grad_offset.sizes(), acc_options);
    at::Tensor mask_acc = grad_mask.defined() ? at::zeros(grad_mask.sizes(), acc_options) : at::Tensor();
    C10_CUDA_CHECK(launch_coord_grad_accumulate(
        cuda_ptr<scalar_t>(grad_columns), cuda_ptr<scalar_t>(input), cuda_ptr<scalar_t>(offset),
        cuda_ptr<scalar_t>(mask), g, chunks, offset_acc.data_ptr<acc_t<scalar_t>>(),
        mask_acc.defined() ? mask_acc.data_ptr<acc_t<scalar_t>>() : nullptr, stream));
    grad_offset.copy_(offset_acc);
    if (grad_mask.defined()) grad_mask.copy_(mask_acc);
  });
}

}  // namespace deform_conv
}  // namespace detectron2
