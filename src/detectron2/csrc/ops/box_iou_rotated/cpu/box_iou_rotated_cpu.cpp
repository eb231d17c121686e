#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/box_iou_rotated/box_iou_rotated.h"
#include "ops/box_iou_rotated/box_iou_rotated_utils.h"

namespace detectron2 {

namespace {

template <typename T>
void iou_rows(const T* boxes1, const T* boxes2, int64_t m, int64_t begin, int64_t end, T* out) {
  for (int64_t i = begin; i < end; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      out[i * m + j] = rotated::single_box_iou(boxes1 + i * 5, boxes2 + j * 5);
    }
  }
}

}  // namespace

at::Tensor box_iou_rotated_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_rotated_args(boxes1, boxes2, /*allow_half=*/false);
  const int64_t n = boxes1.size(0);
  const int64_t m = boxes2.size(0);
  at::Tensor out = at::empty({n, m}, boxes1.options());
  if (n == 0 || m == 0) {
    return out;
  }
  const at::Tensor b1 = boxes1.contiguous();
  const at::Tensor b2 = boxes2.contiguous();
  // About a thousand IoUs per task keeps threading overhead small.
  const int64_t grain = std::max<int64_t>(1, 1024 / m);
  AT_DISPATCH_FLOATING_TYPES(b1.scalar_type(), "box_iou_rotated_cpu", [&] {
    const scalar_t* p1 = b1.data_ptr<scalar_t>();
    const scalar_t* p2 = b2.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) { iou_rows(p1, p2, m, begin, end, po); });
  });
  return out;
}

TORCH_LIBRARY_IMPL(detectron2, CPU, m) {
  m.impl("box_iou_rotated", &box_iou_rotated_cpu);
}

}  // namespace detectron2
