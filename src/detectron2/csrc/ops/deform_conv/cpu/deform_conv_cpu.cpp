// CPU kernels of deformable convolution: loops over the shared element functions of
// deform_conv_utils.h, parallelised with at::parallel_for so that no two threads ever
// write the same memory (col2im is split by channel, the others by output element).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>

#include "ops/deform_conv/deform_conv.h"

namespace detectron2 {
namespace deform_conv {

namespace {

struct SerialAdd {
  template <typename acc_t>
  static void add(acc_t* p, acc_t v) {
    *p += v;
  }
};

template <typename T>
const T* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// Tasks of (deformable group, channel chunk): a task owns the input planes of its channels.
struct ChannelTasks {
  int64_t chunks_per_group, group_channels;
  int64_t count(const Geometry& g) const { return g.deformable_groups * chunks_per_group; }
  void range(int64_t task, int64_t* dg, int64_t* c_begin, int64_t* c_end) const {
    *dg = task / chunks_per_group;
    chunk_channels<int64_t>(*dg, task % chunks_per_group, chunks_per_group, group_channels, c_begin, c_end);
  }
};

// Below this many (channel, tap, pixel) samples per task, threading costs more than it saves.
constexpr int64_t kMinTaskWork = int64_t(1) << 15;

int64_t grain_for(int64_t work_per_task) {
  return std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(1, work_per_task));
}

ChannelTasks channel_tasks(const Geometry& g) {
  const int64_t cg = g.group_channels();
  const int64_t total_work = g.channels * g.kernel_size() * g.batch * g.out_pixels();
  const int64_t wanted = total_work < kMinTaskWork ? 1 : 4 * static_cast<int64_t>(at::get_num_threads());
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(cg, (wanted + g.deformable_groups - 1) / g.deformable_groups));
  return ChannelTasks{chunks, cg};
}

// fn(b, dg, k, p, c0, c1) for every (tap, image, output pixel) of every channel task,
// the tasks spread over threads: each owns a disjoint channel range, so col2im's
// scatter never has two threads writing one input pixel.
template <typename Fn>
void for_each_channel_task(const Geometry& g, const Fn& fn) {
  const ChannelTasks tasks = channel_tasks(g);
  const int64_t grain = grain_for(g.channels * g.kernel_size() * g.batch * g.out_pixels() / tasks.count(g));
  at::parallel_for(0, tasks.count(g), grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t dg, c0, c1;
      tasks.range(task, &dg, &c0, &c1);
      if (c0 >= c1) continue;
      for (int64_t k = 0; k < g.kernel_size(); ++k)
        for (int64_t b = 0; b < g.batch; ++b)
          for (int64_t p = 0; p < g.out_pixels(); ++p) fn(b, dg, k, p, c0, c1);
    }
  });
}

}  // namespace

void im2col_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
                at::Tensor& columns) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv_im2col_cpu", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* off = offset.data_ptr<scalar_t>();
    const scalar_t* msk = data_or_null<scalar_t>(mask);
    scalar_t* col = columns.data_ptr<scalar_t>();
    for_each_channel_task(g, [&](int64_t b, int64_t dg, int64_t k, int64_t p, int64_t c0, int64_t c1) {
      im2col_element(g, in, off, msk, b, dg, k, p, c0, c1, col);
    });
  });
}

void col2im_cpu(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask, const Geometry& g,
                at::Tensor& grad_input) {
  AT_DISPATCH_FLOATING_TYPES(grad_columns.scalar_type(), "deform_conv_col2im_cpu", [&] {
    const scalar_t* col = grad_columns.data_ptr<scalar_t>();
    const scalar_t* off = offset.data_ptr<scalar_t>();
    const scalar_t* msk = data_or_null<scalar_t>(mask);
    scalar_t* gin = grad_input.data_ptr<scalar_t>();
    for_each_channel_task(g, [&](int64_t b, int64_t dg, int64_t k, int64_t p, int64_t c0, int64_t c1) {
      col2im_element<scalar_t, SerialAdd>(g, col, off, msk, b, dg, k, p, c0, c1, gin);
    });
  });
}

void coord_grad_cpu(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                    const at::Tensor& mask, const Geometry& g, at::Tensor& grad_offset, at::Tensor& grad_mask) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv_coord_grad_cpu", [&] {
    const scalar_t* col = grad_columns.data_ptr<scalar_t>();
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* off = offset.data_ptr<scalar_t>();
    const scalar_t* msk = data_or_null<scalar_t>(mask);
    scalar_t* goff = grad_offset.data_ptr<scalar_t>();
    scalar_t* gmask = grad_mask.defined() ? grad_mask.data_ptr<scalar_t>() : nullptr;
    const int64_t K = g.kernel_size(), DG = g.deformable_groups;
    // One task per (image, deformable group, tap): it writes only its own outputs.
    at::parallel_for(0, g.batch * DG * K, grain_for(g.group_channels() * g.out_pixels()), [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t k = task % K, dg = (task / K) % DG, b = task / (K * DG);
        const int64_t c0 = dg * g.group_channels(), c1 = c0 + g.group_channels();
        for (int64_t p = 0; p < g.out_pixels(); ++p)
          store_coord_grad(g, coord_grad_element(g, col, in, off, msk, b, dg, k, p, c0, c1), goff, gmask);
      }
    });
  });
}

}  // namespace deform_conv
}  // namespace detectron2
