#include "ops/box_iou_rotated/box_iou_rotated.h"

#include <torch/library.h>

#include "common/checks.h"

namespace detectron2 {

void check_box_iou_rotated_args(const at::Tensor& boxes1, const at::Tensor& boxes2, bool allow_half) {
  constexpr const char* op = "box_iou_rotated";
  checks::dim(op, "boxes1", boxes1, 2, "(N, 5)");
  checks::size(op, "boxes1", boxes1, 1, 5, "(N, 5)");
  checks::dim(op, "boxes2", boxes2, 2, "(M, 5)");
  checks::size(op, "boxes2", boxes2, 1, 5, "(M, 5)");
  checks::same_device(op, "boxes2", boxes2, "boxes1", boxes1);
  checks::floating(op, "boxes1", boxes1, allow_half);
  checks::same_dtype(op, "boxes2", boxes2, "boxes1", boxes1);
}

TORCH_LIBRARY_FRAGMENT(detectron2, m) {
  m.def("box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor");
}

}  // namespace detectron2
