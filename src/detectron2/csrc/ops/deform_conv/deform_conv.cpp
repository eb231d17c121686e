// Deformable convolution entry points: argument checks, im2col steps and the GEMMs.
//
// Per step of `n` images: the deformable im2col kernel writes a [C*K, n*Ho*Wo] column
// matrix; one GEMM per weight group turns it into the output. Backward
// runs the transposed GEMM to get column gradients, then col2im (grad input) and the
// coordinate kernel (grad offset and mask); grad weight is a GEMM against the columns.
// Only the three column kernels are device specific (cpu/ and cuda/).
#include <ATen/core/Tensor.h>
#include <ATen/ops/add.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <array>
#include <string>
#include <tuple>

#include "common/checks.h"
#include "ops/deform_conv/deform_conv.h"

namespace detectron2 {

namespace {

using deform_conv::Geometry;

// Sizes and settings of one call, checked once and shared by all entry points.
struct Problem {
  const char* op;
  int64_t batch, channels, height, width;
  int64_t out_channels, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t groups, deformable_groups;

  int64_t kernel_size() const { return kernel_h * kernel_w; }
  Geometry step(int64_t n) const {
    return Geometry{n,       channels, height,   width,      out_h,      out_w,      kernel_h, kernel_w,
                    stride_h, stride_w, pad_h,  pad_w,      dilation_h, dilation_w, deformable_groups};
  }
};

void check_device_support(const char* op, const at::Tensor& input) {
#if !defined(WITH_CUDA)
  TORCH_CHECK_VALUE(!input.is_cuda(), op,
                    ": 'input' is a CUDA tensor but detectron2 was not compiled with GPU support "
                    "(rebuild with a CUDA toolkit, or FORCE_CUDA=1)");
#endif
  TORCH_CHECK_VALUE(input.is_cuda() || input.is_cpu(), op, ": argument 'input' must be a CPU or CUDA tensor, got ",
                    input.device());
}

// `t` must be a 4-D tensor of shape `sizes` (named `names` in messages) on the input's
// device, in its dtype. The message text is only built when a check fails: on a GPU
// the host time of a call before its first kernel launch is time the GPU waits.
void check_layout(const Problem& p, const char* arg, const at::Tensor& t, const at::Tensor& input, const char* names,
                  const std::array<int64_t, 4>& sizes) {
  bool shape_ok = t.defined() && t.dim() == 4;
  for (int64_t d = 0; shape_ok && d < 4; ++d) shape_ok = t.size(d) == sizes[d];
  if (shape_ok) {
    checks::same_device(p.op, arg, t, "input", input);
    checks::same_dtype(p.op, arg, t, "input", input);
    return;
  }
  // Some check fails: all of them in their usual order, the expected sizes in the message.
  std::string layout = std::string(names) + " = (";
  for (int64_t d = 0; d < 4; ++d) layout += (d > 0 ? ", " : "") + std::to_string(sizes[d]);
  layout += ")";
  checks::dim(p.op, arg, t, 4, layout.c_str());
  checks::same_device(p.op, arg, t, "input", input);
  checks::same_dtype(p.op, arg, t, "input", input);
  for (int64_t d = 0; d < 4; ++d) checks::size(p.op, arg, t, d, sizes[d], layout.c_str());
}

// The checks every entry point shares: the input, the geometry and the offset.
Problem make_problem(const char* op, const at::Tensor& input, const at::Tensor& offset, int64_t out_channels,
                     int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                     int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t groups,
                     int64_t deformable_groups) {
  checks::dim(op, "input", input, 4, "(N, C, H, W)");
  check_device_support(op, input);
  checks::floating(op, "input", input, input.is_cuda());
  checks::positive(op, "kernel_h", kernel_h);
  checks::positive(op, "kernel_w", kernel_w);
  checks::positive(op, "stride_h", stride_h);
  checks::positive(op, "stride_w", stride_w);
  checks::non_negative(op, "pad_h", pad_h);
  checks::non_negative(op, "pad_w", pad_w);
  checks::positive(op, "dilation_h", dilation_h);
  checks::positive(op, "dilation_w", dilation_w);
  checks::positive(op, "group", groups);
  checks::positive(op, "deformable_group", deformable_groups);

  Problem p{op};
  p.batch = input.size(0);
  p.channels = input.size(1);
  p.height = input.size(2);
  p.width = input.size(3);
  p.out_channels = out_channels;
  p.kernel_h = kernel_h;
  p.kernel_w = kernel_w;
  p.stride_h = stride_h;
  p.stride_w = stride_w;
  p.pad_h = pad_h;
  p.pad_w = pad_w;
  p.dilation_h = dilation_h;
  p.dilation_w = dilation_w;
  p.groups = groups;
  p.deformable_groups = deformable_groups;

  TORCH_CHECK_VALUE(p.channels > 0 && p.channels % groups == 0, op, ": input channels (", p.channels,
                    ", dim 1 of 'input') must be a positive multiple of 'group' (", groups, ")");
  TORCH_CHECK_VALUE(p.channels % deformable_groups == 0, op, ": input channels (", p.channels,
                    ", dim 1 of 'input') must be a multiple of 'deformable_group' (", deformable_groups, ")");
  TORCH_CHECK_VALUE(out_channels > 0 && out_channels % groups == 0, op, ": output channels (", out_channels,
                    ", dim 0 of the weight / dim 1 of the output gradient) must be a positive multiple of 'group' (",
                    groups, ")");
  const int64_t span_h = p.height + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1);
  const int64_t span_w = p.width + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1);
  TORCH_CHECK_VALUE(span_h >= 0 && span_w >= 0, op, ": the output would be empty: input of size ", p.height, "x",
                    p.width, " with padding ", pad_h, "x", pad_w, " is smaller than the dilated kernel ",
                    dilation_h * (kernel_h - 1) + 1, "x", dilation_w * (kernel_w - 1) + 1);
  p.out_h = span_h / stride_h + 1;
  p.out_w = span_w / stride_w + 1;

  check_layout(p, "offset", offset, input, "(N, 2*deformable_group*kH*kW, Ho, Wo)",
               {p.batch, 2 * deformable_groups * p.kernel_size(), p.out_h, p.out_w});
  return p;
}

void check_weight(const Problem& p, const char* arg, const at::Tensor& weight, const at::Tensor& input) {
  check_layout(p, arg, weight, input, "(C_out, C_in/group, kH, kW)",
               {p.out_channels, p.channels / p.groups, p.kernel_h, p.kernel_w});
}

void check_mask(const Problem& p, const at::Tensor& mask, const at::Tensor& input) {
  check_layout(p, "mask", mask, input, "(N, deformable_group*kH*kW, Ho, Wo)",
               {p.batch, p.deformable_groups * p.kernel_size(), p.out_h, p.out_w});
}

void check_grad_output(const Problem& p, const at::Tensor& grad_output, const char* arg, const at::Tensor& input) {
  check_layout(p, arg, grad_output, input, "(N, C_out, Ho, Wo)", {p.batch, p.out_channels, p.out_h, p.out_w});
}

// A tensor the op writes into: same device and dtype as the input, contiguous.
void check_output(const Problem& p, const char* arg, const at::Tensor& out, const at::Tensor& input) {
  checks::defined(p.op, arg, out);
  checks::same_device(p.op, arg, out, "input", input);
  checks::same_dtype(p.op, arg, out, "input", input);
  checks::contiguous_output(p.op, arg, out);
}

// upstream: the step is clamped to the batch and must divide it.
int64_t checked_step(const Problem& p, int64_t im2col_step) {
  checks::positive(p.op, "im2col_step", im2col_step);
  const int64_t step = std::max<int64_t>(1, std::min(p.batch, im2col_step));
  TORCH_CHECK_VALUE(p.batch % step == 0, p.op, ": argument 'im2col_step' (", im2col_step,
                    ") must divide the batch size (", p.batch, ")");
  return step;
}

// The largest divisor of the batch not above `limit` whose column buffer stays within a
// memory budget (one image a step when even one is above it).
int64_t step_within_budget(const Problem& p, int64_t limit) {
  const int64_t budget = int64_t(1) << 27;  // elements of the column buffer (512 MiB in float32)
  const int64_t per_image = std::max<int64_t>(1, p.channels * p.kernel_size() * p.out_h * p.out_w);
  int64_t step = std::max<int64_t>(1, std::min({limit, p.batch, budget / per_image}));
  while (p.batch % step != 0) --step;
  return step;
}

// Images [start, start + n) of a batch-major tensor (undefined stays undefined). The whole
// batch is the tensor itself: a view costs host time the GPU may be waiting on.
at::Tensor images(const at::Tensor& t, int64_t start, int64_t n) {
  if (!t.defined() || (start == 0 && n == t.size(0))) return t;
  return t.narrow(0, start, n);
}

void im2col(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
            at::Tensor& columns) {
#if defined(WITH_CUDA)
  if (input.is_cuda()) return deform_conv::im2col_cuda(input, offset, mask, g, columns);
#endif
  deform_conv::im2col_cpu(input, offset, mask, g, columns);
}

void col2im(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
            at::Tensor& grad_input) {
#if defined(WITH_CUDA)
  if (grad_columns.is_cuda()) return deform_conv::col2im_cuda(grad_columns, offset, mask, g, grad_input);
#endif
  deform_conv::col2im_cpu(grad_columns, offset, mask, g, grad_input);
}

void coord_grad(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                const at::Tensor& mask, const Geometry& g, at::Tensor& grad_offset, at::Tensor& grad_mask) {
#if defined(WITH_CUDA)
  if (input.is_cuda()) return deform_conv::coord_grad_cuda(grad_columns, input, offset, mask, g, grad_offset, grad_mask);
#endif
  deform_conv::coord_grad_cpu(grad_columns, input, offset, mask, g, grad_offset, grad_mask);
}

// grad_output of images [start, start+n) as [groups, C_out/groups, n*Ho*Wo] (one copy).
at::Tensor grad_output_matrix(const Problem& p, const at::Tensor& grad_output, int64_t start, int64_t n) {
  return grad_output.narrow(0, start, n)
      .reshape({n, p.out_channels, p.out_h * p.out_w})
      .transpose(0, 1)
      .reshape({p.groups, p.out_channels / p.groups, n * p.out_h * p.out_w});
}

at::Tensor weight_matrix(const Problem& p, const at::Tensor& weight) {
  return weight.reshape({p.groups, p.out_channels / p.groups, (p.channels / p.groups) * p.kernel_size()});
}

at::Tensor new_columns(const Problem& p, const at::Tensor& input, int64_t step) {
  return at::empty({p.groups, (p.channels / p.groups) * p.kernel_size(), step * p.out_h * p.out_w},
                   input.options());
}

// The output keeps a channels-last input's memory format, as PyTorch's convolutions do
// (a channels-last network stays channels-last through its deformable layers).
at::MemoryFormat output_format(const at::Tensor& input) {
  return input.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::MemoryFormat::ChannelsLast
                                                                          : at::MemoryFormat::Contiguous;
}

// out (an NCHW view [n, M, P]) = by_image (+ bias): the reorder and the bias in one pass.
void write_output(at::Tensor out, const at::Tensor& by_image, const at::Tensor& bias) {
  if (bias.defined()) {
    at::add_out(out, by_image, bias.view({1, -1, 1}));
  } else {
    out.copy_(by_image);
  }
}

// output = deformable convolution (+ bias when defined), in `format`; `input` contiguous.
void forward_impl(const Problem& p, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                  const at::Tensor& mask, const at::Tensor& bias, at::Tensor& output, int64_t step,
                  at::MemoryFormat format) {
  if (p.batch == 0) {
    output.resize_({p.batch, p.out_channels, p.out_h, p.out_w}, format);
    return;
  }
  at::Tensor columns = new_columns(p, input, step);
  const int64_t P = p.out_h * p.out_w, M = p.out_channels, rows_per_group = (p.channels / p.groups) * p.kernel_size();
  // Host work before the first kernel launch is GPU idle time, and so is host work between
  // the launches beyond the im2col's run time: the output and the weight views are made
  // after the first launch, and every view is one op.
  at::Tensor w, w_t;
  for (int64_t start = 0; start < p.batch; start += step) {
    const int64_t n = std::min(step, p.batch - start);
    at::Tensor cols = n == step ? columns : columns.narrow(2, 0, n * P).contiguous();
    im2col(images(input, start, n), images(offset, start, n), images(mask, start, n), p.step(n), cols);
    if (start == 0) output.resize_({p.batch, p.out_channels, p.out_h, p.out_w}, format);
    at::Tensor out_chunk = images(output, start, n);
    if (p.groups > 1) {
      if (!w.defined()) w = weight_matrix(p, weight);
      write_output(out_chunk.view({n, M, P}), at::bmm(w, cols).view({M, n, P}).transpose(0, 1), bias);
      continue;
    }
    // One group: out^T = columns^T x W^T, the form cuBLAS runs 4-9% faster than W x
    // columns at issue 13's sizes on an H200 (benchmarks/bench_deform_gemm.py). Its rows
    // are the NHWC output: a channels-last output takes them in place (the bias as the
    // GEMM's epilogue), an NCHW output a per-image transpose away (a tiled kernel on CUDA).
    // (One GEMM per image straight into an NCHW output was tried, as separate GEMMs and as
    // one batched GEMM: cuBLAS then picks a 1.25x slower kernel at 8x512x25x34.)
    if (!w_t.defined()) w_t = weight.as_strided({rows_per_group, M}, {1, rows_per_group});
    const at::Tensor cols_t = cols.as_strided({n * P, rows_per_group}, {1, n * P});
    if (format == at::MemoryFormat::ChannelsLast) {
      at::Tensor rows = out_chunk.as_strided({n * P, M}, {M, 1});
      if (bias.defined()) {
        at::addmm_out(rows, bias, cols_t, w_t);
      } else {
        at::mm_out(rows, cols_t, w_t);
      }
      continue;
    }
    const at::Tensor rows = at::mm(cols_t, w_t);
#if defined(WITH_CUDA)
    if (rows.is_cuda()) {
      deform_conv::rows_to_nchw_cuda(rows, bias, out_chunk);
      continue;
    }
#endif
    write_output(out_chunk.view({n, M, P}), rows.view({n, P, M}).transpose(1, 2), bias);
  }
}

// grad_input and grad_offset (and grad_mask when `mask` is defined); the outputs are overwritten.
void backward_data_impl(const Problem& p, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                        const at::Tensor& mask, const at::Tensor& grad_output, at::Tensor& grad_input,
                        at::Tensor& grad_offset, at::Tensor& grad_mask, int64_t step) {
  grad_input.resize_(input.sizes());
  grad_offset.resize_(offset.sizes());
  if (mask.defined()) grad_mask.resize_(mask.sizes());
  if (p.batch == 0) return;
  const bool half = input.scalar_type() != at::kFloat && input.scalar_type() != at::kDouble;
  // col2im accumulates with atomics: half types accumulate in a float32 buffer.
  at::Tensor grad_in_acc = half ? at::zeros(input.sizes(), input.options().dtype(at::kFloat)) : grad_input.zero_();
  const at::Tensor wt = weight_matrix(p, weight).transpose(1, 2);
  for (int64_t start = 0; start < p.batch; start += step) {
    const int64_t n = std::min(step, p.batch - start);
    const at::Tensor grad_cols = at::bmm(wt, grad_output_matrix(p, grad_output, start, n));  // [G, Cg*K, n*P]
    const Geometry g = p.step(n);
    const at::Tensor in_s = input.narrow(0, start, n), off_s = offset.narrow(0, start, n);
    const at::Tensor mask_s = images(mask, start, n);
    at::Tensor gin_s = grad_in_acc.narrow(0, start, n);
    at::Tensor goff_s = grad_offset.narrow(0, start, n);
    at::Tensor gmask_s = images(mask.defined() ? grad_mask : at::Tensor(), start, n);
    col2im(grad_cols, off_s, mask_s, g, gin_s);
    coord_grad(grad_cols, in_s, off_s, mask_s, g, goff_s, gmask_s);
  }
  if (half) grad_input.copy_(grad_in_acc);
}

// grad_weight += scale * sum over images of grad_output x columns^T.
void backward_weight_impl(const Problem& p, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                          const at::Tensor& grad_output, at::Tensor& grad_weight, double scale, int64_t step) {
  if (p.batch == 0) return;
  at::Tensor gw = grad_weight.view({p.groups, p.out_channels / p.groups, (p.channels / p.groups) * p.kernel_size()});
  at::Tensor columns = new_columns(p, input, step);
  const int64_t P = p.out_h * p.out_w;
  for (int64_t start = 0; start < p.batch; start += step) {
    const int64_t n = std::min(step, p.batch - start);
    at::Tensor cols = n == step ? columns : columns.narrow(2, 0, n * P).contiguous();
    im2col(input.narrow(0, start, n), offset.narrow(0, start, n), images(mask, start, n), p.step(n), cols);
    gw.baddbmm_(grad_output_matrix(p, grad_output, start, n), cols.transpose(1, 2), 1.0, scale);
  }
}

}  // namespace

int deform_conv_forward(at::Tensor input, at::Tensor weight, at::Tensor offset, at::Tensor output,
                        at::Tensor columns, at::Tensor ones, int kW, int kH, int dW, int dH, int padW, int padH,
                        int dilationW, int dilationH, int group, int deformable_group, int im2col_step) {
  const char* op = "deform_conv_forward";
  checks::dim(op, "weight", weight, 4, "(C_out, C_in/group, kH, kW)");
  const Problem p = make_problem(op, input, offset, weight.size(0), kH, kW, dH, dW, padH, padW, dilationH, dilationW,
                                 group, deformable_group);
  check_weight(p, "weight", weight, input);
  check_output(p, "output", output, input);
  const int64_t step = checked_step(p, im2col_step);
  forward_impl(p, input.contiguous(), weight.contiguous(), offset.contiguous(), at::Tensor(), at::Tensor(), output,
               step, output_format(input));
  return 1;
}

int deform_conv_backward_input(at::Tensor input, at::Tensor offset, at::Tensor gradOutput, at::Tensor gradInput,
                               at::Tensor gradOffset, at::Tensor weight, at::Tensor columns, int kW, int kH, int dW,
                               int dH, int padW, int padH, int dilationW, int dilationH, int group,
                               int deformable_group, int im2col_step) {
  const char* op = "deform_conv_backward_input";
  checks::dim(op, "weight", weight, 4, "(C_out, C_in/group, kH, kW)");
  const Problem p = make_problem(op, input, offset, weight.size(0), kH, kW, dH, dW, padH, padW, dilationH, dilationW,
                                 group, deformable_group);
  check_weight(p, "weight", weight, input);
  check_grad_output(p, gradOutput, "gradOutput", input);
  check_output(p, "gradInput", gradInput, input);
  check_output(p, "gradOffset", gradOffset, input);
  const int64_t step = checked_step(p, im2col_step);
  at::Tensor no_mask;
  backward_data_impl(p, input.contiguous(), weight.contiguous(), offset.contiguous(), at::Tensor(),
                     gradOutput.contiguous(), gradInput, gradOffset, no_mask, step);
  return 1;
}

int deform_conv_backward_filter(at::Tensor input, at::Tensor offset, at::Tensor gradOutput, at::Tensor gradWeight,
                                at::Tensor columns, at::Tensor ones, int kW, int kH, int dW, int dH, int padW,
                                int padH, int dilationW, int dilationH, int group, int deformable_group, float scale,
                                int im2col_step) {
  const char* op = "deform_conv_backward_filter";
  checks::dim(op, "gradOutput", gradOutput, 4, "(N, C_out, Ho, Wo)");
  const Problem p = make_problem(op, input, offset, gradOutput.size(1), kH, kW, dH, dW, padH, padW, dilationH,
                                 dilationW, group, deformable_group);
  check_grad_output(p, gradOutput, "gradOutput", input);
  check_output(p, "gradWeight", gradWeight, input);
  check_weight(p, "gradWeight", gradWeight, input);
  checks::size(op, "gradWeight", gradWeight, 0, p.out_channels, "(C_out, C_in/group, kH, kW)");
  const int64_t step = checked_step(p, im2col_step);
  backward_weight_impl(p, input.contiguous(), offset.contiguous(), at::Tensor(), gradOutput.contiguous(), gradWeight,
                       scale, step);
  return 1;
}

namespace {

// The modulated forward behind both entry points; `bias` may be undefined.
void modulated_forward(const char* op, const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                       const at::Tensor& offset, const at::Tensor& mask, at::Tensor& output, int64_t kernel_h,
                       int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                       int64_t dilation_h, int64_t dilation_w, int64_t groups, int64_t deformable_groups) {
  checks::dim(op, "weight", weight, 4, "(C_out, C_in/group, kH, kW)");
  const Problem p = make_problem(op, input, offset, weight.size(0), kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                 pad_w, dilation_h, dilation_w, groups, deformable_groups);
  check_weight(p, "weight", weight, input);
  check_mask(p, mask, input);
  if (bias.defined()) {
    checks::dim(op, "bias", bias, 1, "(C_out,)");
    checks::same_device(op, "bias", bias, "input", input);
    checks::same_dtype(op, "bias", bias, "input", input);
    checks::size(op, "bias", bias, 0, p.out_channels, "(C_out,)");
  }
  check_output(p, "output", output, input);
  forward_impl(p, input.contiguous(), weight.contiguous(), offset.contiguous(), mask.contiguous(), bias, output,
               step_within_budget(p, p.batch), output_format(input));
}

}  // namespace

void modulated_deform_conv_forward(at::Tensor input, at::Tensor weight, at::Tensor bias, at::Tensor ones,
                                   at::Tensor offset, at::Tensor mask, at::Tensor output, at::Tensor columns,
                                   int kernel_h, int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w,
                                   int dilation_h, int dilation_w, int group, int deformable_group, bool with_bias) {
  modulated_forward("modulated_deform_conv_forward", input, weight, with_bias ? bias : at::Tensor(), offset, mask,
                    output, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
                    deformable_group);
}

void modulated_deform_conv_backward(at::Tensor input, at::Tensor weight, at::Tensor bias, at::Tensor ones,
                                    at::Tensor offset, at::Tensor mask, at::Tensor columns, at::Tensor grad_input,
                                    at::Tensor grad_weight, at::Tensor grad_bias, at::Tensor grad_offset,
                                    at::Tensor grad_mask, at::Tensor grad_output, int kernel_h, int kernel_w,
                                    int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                                    int group, int deformable_group, bool with_bias) {
  const char* op = "modulated_deform_conv_backward";
  checks::dim(op, "weight", weight, 4, "(C_out, C_in/group, kH, kW)");
  const Problem p = make_problem(op, input, offset, weight.size(0), kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                 pad_w, dilation_h, dilation_w, group, deformable_group);
  check_weight(p, "weight", weight, input);
  check_mask(p, mask, input);
  check_grad_output(p, grad_output, "grad_output", input);
  check_output(p, "grad_input", grad_input, input);
  check_output(p, "grad_weight", grad_weight, input);
  check_weight(p, "grad_weight", grad_weight, input);
  checks::size(op, "grad_weight", grad_weight, 0, p.out_channels, "(C_out, C_in/group, kH, kW)");
  check_output(p, "grad_offset", grad_offset, input);
  check_output(p, "grad_mask", grad_mask, input);
  if (with_bias) {
    check_output(p, "grad_bias", grad_bias, input);
    checks::dim(op, "grad_bias", grad_bias, 1, "(C_out,)");
    checks::size(op, "grad_bias", grad_bias, 0, p.out_channels, "(C_out,)");
  }
  const at::Tensor in = input.contiguous(), w = weight.contiguous(), off = offset.contiguous();
  const at::Tensor m = mask.contiguous(), go = grad_output.contiguous();
  const int64_t step = step_within_budget(p, p.batch);
  backward_data_impl(p, in, w, off, m, go, grad_input, grad_offset, grad_mask, step);
  backward_weight_impl(p, in, off, m, go, grad_weight, 1.0, step);
  if (with_bias && p.batch > 0) grad_bias.add_(go.sum({0, 2, 3}));
}

std::tuple<at::Tensor, int64_t> deform_conv_layer(const at::Tensor& input, const at::Tensor& offset,
                                                  const at::Tensor& weight, int64_t stride_h, int64_t stride_w,
                                                  int64_t pad_h, int64_t pad_w, int64_t dilation_h,
                                                  int64_t dilation_w, int64_t groups, int64_t deformable_groups,
                                                  int64_t im2col_step) {
  const char* op = "deform_conv_layer";
  checks::dim(op, "input", input, 4, "(N, C, H, W)");
  checks::dim(op, "weight", weight, 4, "(C_out, C_in/group, kH, kW)");
  const Problem p = make_problem(op, input, offset, weight.size(0), weight.size(2), weight.size(3), stride_h,
                                 stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, deformable_groups);
  check_weight(p, "weight", weight, input);
  checks::positive(op, "im2col_step", im2col_step);
  const int64_t step = step_within_budget(p, im2col_step);
  at::Tensor output = at::empty({0}, input.options());
  forward_impl(p, input.contiguous(), weight.contiguous(), offset.contiguous(), at::Tensor(), at::Tensor(), output,
               step, output_format(input));
  return {output, step};
}

at::Tensor modulated_deform_conv_layer(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                                       const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                                       int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                       int64_t dilation_h, int64_t dilation_w, int64_t groups,
                                       int64_t deformable_groups) {
  const char* op = "modulated_deform_conv_layer";
  checks::dim(op, "input", input, 4, "(N, C, H, W)");
  checks::dim(op, "weight", weight, 4, "(C_out, C_in/group, kH, kW)");
  at::Tensor output = at::empty({0}, input.options());
  modulated_forward(op, input, weight, bias.has_value() ? *bias : at::Tensor(), offset, mask, output, weight.size(2),
                    weight.size(3), stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups,
                    deformable_groups);
  return output;
}

}  // namespace detectron2
