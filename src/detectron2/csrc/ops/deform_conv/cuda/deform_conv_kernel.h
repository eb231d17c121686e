// Launchers of the deformable convolution CUDA kernels (torch-free; see deform_conv_kernel.cu).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/deform_conv/deform_conv_utils.h"

namespace detectron2 {
namespace deform_conv {

// Accumulation type of each storage type (float for the half types).
template <typename T>
struct cuda_acc {
  using type = T;
};
template <>
struct cuda_acc<__half> {
  using type = float;
};
template <>
struct cuda_acc<__nv_bfloat16> {
  using type = float;
};

// Channels per thread chunk for the im2col / col2im / coordinate kernels: enough
// threads to fill the GPU, as few channels per thread as needed for that.
int64_t channel_chunks(const Geometry& g);

template <typename T>
cudaError_t launch_im2col(const T* input, const T* offset, const T* mask, const Geometry& g, T* columns,
                          cudaStream_t stream);

// Accumulates into grad_input (accumulation type), which the caller zeroes.
template <typename T>
cudaError_t launch_col2im(const T* grad_columns, const T* offset, const T* mask, const Geometry& g,
                          typename cuda_acc<T>::type* grad_input, cudaStream_t stream);

// chunks == 1: stores into grad_offset / grad_mask (type T, grad_mask may be null).
template <typename T>
cudaError_t launch_coord_grad(const T* grad_columns, const T* input, const T* offset, const T* mask,
                              const Geometry& g, T* grad_offset, T* grad_mask, cudaStream_t stream);

// chunks > 1: atomically accumulates partial sums into zeroed accumulation-type buffers.
template <typename T>
cudaError_t launch_coord_grad_accumulate(const T* grad_columns, const T* input, const T* offset, const T* mask,
                                         const Geometry& g, int64_t chunks, typename cuda_acc<T>::type* grad_offset,
                                         typename cuda_acc<T>::type* grad_mask, cudaStream_t stream);

// out[b][m][p] = rows[b][p][m] (+ bias[m] when bias is not null): the forward GEMM's
// pixel-major rows to the NCHW output.
template <typename T>
cudaError_t launch_rows_to_nchw(const T* rows, const T* bias, int64_t batch, int64_t pixels, int64_t channels, T* out,
                                cudaStream_t stream);

}  // namespace deform_conv
}  // namespace detectron2
