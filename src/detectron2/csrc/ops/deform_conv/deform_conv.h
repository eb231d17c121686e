// Deformable convolution v1 (DeformConv) and v2 (ModulatedDeformConv): the module
// functions bound in vision.cpp. First upstream's, with its names and argument order:
// they write into the output tensors they are given (resized as needed); `columns` and
// `ones` are accepted for signature compatibility and not used (scratch is allocated
// internally). Then the two forwards the Python layers call, which return the output.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "ops/deform_conv/deform_conv_utils.h"

namespace detectron2 {

int deform_conv_forward(at::Tensor input, at::Tensor weight, at::Tensor offset, at::Tensor output,
                        at::Tensor columns, at::Tensor ones, int kW, int kH, int dW, int dH, int padW, int padH,
                        int dilationW, int dilationH, int group, int deformable_group, int im2col_step);

int deform_conv_backward_input(at::Tensor input, at::Tensor offset, at::Tensor gradOutput, at::Tensor gradInput,
                               at::Tensor gradOffset, at::Tensor weight, at::Tensor columns, int kW, int kH, int dW,
                               int dH, int padW, int padH, int dilationW, int dilationH, int group,
                               int deformable_group, int im2col_step);

int deform_conv_backward_filter(at::Tensor input, at::Tensor offset, at::Tensor gradOutput, at::Tensor gradWeight,
                                at::Tensor columns, at::Tensor ones, int kW, int kH, int dW, int dH, int padW,
                                int padH, int dilationW, int dilationH, int group, int deformable_group, float scale,
                                int im2col_step);

void modulated_deform_conv_forward(at::Tensor input, at::Tensor weight, at::Tensor bias, at::Tensor ones,
                                   at::Tensor offset, at::Tensor mask, at::Tensor output, at::Tensor columns,
                                   int kernel_h, int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w,
                                   int dilation_h, int dilation_w, int group, int deformable_group, bool with_bias);

void modulated_deform_conv_backward(at::Tensor input, at::Tensor weight, at::Tensor bias, at::Tensor ones,
                                    at::Tensor offset, at::Tensor mask, at::Tensor columns, at::Tensor grad_input,
                                    at::Tensor grad_weight, at::Tensor grad_bias, at::Tensor grad_offset,
                                    at::Tensor grad_mask, at::Tensor grad_output, int kernel_h, int kernel_w,
                                    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                                    int group, int deformable_group, bool with_bias);

// The forwards the Python layers call: the output is allocated here (one call from Python,
// the least host time before the first kernel), and the geometry comes in the (h, w) order
// of torch's convolutions. deform_conv_layer also returns the im2col step it used (the
// largest divisor of the batch not above `im2col_step` whose column buffer fits the
// memory budget), which its backward needs.
std::tuple<at::Tensor, int64_t> deform_conv_layer(const at::Tensor& input, const at::Tensor& offset,
                                                  const at::Tensor& weight, int64_t stride_h, int64_t stride_w,
                                                  int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                                  int64_t dilation_w, int64_t groups, int64_t deformable_groups,
                                                  int64_t im2col_step);
at::Tensor modulated_deform_conv_layer(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                                       const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                                       int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                       int64_t dilation_h, int64_t dilation_w, int64_t groups,
                                       int64_t deformable_groups);

namespace deform_conv {
// Per-device kernels over one im2col step (tensors contiguous, already validated).
// `mask` may be undefined (plain deformable convolution); `grad_input` has the
// accumulation dtype (float for half types) and is accumulated into.
void im2col_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
                at::Tensor& columns);
void col2im_cpu(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
                at::Tensor& grad_input);
void coord_grad_cpu(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                    const at::Tensor& mask, const Geometry& g, at::Tensor& grad_offset, at::Tensor& grad_mask);
#if defined(WITH_CUDA)
void im2col_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
                 at::Tensor& columns);
// out (contiguous NCHW [n, M, Ho, Wo]) = rows ([n*Ho*Wo, M], contiguous) transposed per image,
// + bias (when defined).
void rows_to_nchw_cuda(const at::Tensor& rows, const at::Tensor& bias, at::Tensor& out);
void col2im_cuda(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask,
                 const Geometry& g, at::Tensor& grad_input);
void coord_grad_cuda(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                     const at::Tensor& mask, const Geometry& g, at::Tensor& grad_offset, at::Tensor& grad_mask);
#endif
}  // namespace deform_conv

}  // namespace detectron2
