// Schemas and argument checks of ROIAlignRotated; kernels live in cpu/ and cuda/.
#include "ops/roi_align_rotated/roi_align_rotated.h"

#include <torch/library.h>

#include <cmath>

#include "common/checks.h"
#include "ops/roi_align_rotated/roi_align_rotated_utils.h"

namespace detectron2 {

namespace {

void check_common(
    const char* op, const char* feature_arg, const at::Tensor& features, const at::Tensor& rois,
    double spatial_scale, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, bool allow_half) {
  checks::floating(op, feature_arg, features, allow_half);
  checks::dim(op, "rois", rois, 2, "(K, 6) = (batch_index, x_ctr, y_ctr, w, h, angle)");
  checks::size(op, "rois", rois, 1, 6, "(K, 6) = (batch_index, x_ctr, y_ctr, w, h, angle)");
  checks::same_dtype(op, "rois", rois, feature_arg, features);
  checks::same_device(op, "rois", rois, feature_arg, features);
  TORCH_CHECK_VALUE(
      std::isfinite(spatial_scale) && spatial_scale > 0, op,
      ": argument 'spatial_scale' must be a positive finite number, got ", spatial_scale);
  checks::positive(op, "pooled_height", pooled_height);
  checks::positive(op, "pooled_width", pooled_width);
  TORCH_CHECK_VALUE(
      sampling_ratio <= roi_align_rotated::kMaxSamplingRatio, op, ": argument 'sampling_ratio' must be at most ",
      roi_align_rotated::kMaxSamplingRatio, " samples per bin side (or <= 0 for adaptive sampling), got ",
      sampling_ratio);
}

}  // namespace

void check_roi_align_rotated_forward(
    const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio, bool allow_half) {
  const char* op = "roi_align_rotated_forward";
  checks::dim(op, "input", input, 4, "(N, C, H, W)");
  check_common(op, "input", input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, allow_half);
}

void check_roi_align_rotated_backward(
    const at::Tensor& grad, const at::Tensor& rois, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t batch_size, int64_t channels, int64_t height, int64_t width, int64_t sampling_ratio,
    bool allow_half) {
  const char* op = "roi_align_rotated_backward";
  checks::dim(op, "grad", grad, 4, "(K, C, pooled_height, pooled_width)");
  check_common(op, "grad", grad, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, allow_half);
  checks::non_negative(op, "batch_size", batch_size);
  checks::non_negative(op, "channels", channels);
  checks::non_negative(op, "height", height);
  checks::non_negative(op, "width", width);
  TORCH_CHECK_VALUE(
      grad.size(0) == rois.size(0) && grad.size(1) == channels && grad.size(2) == pooled_height &&
          grad.size(3) == pooled_width,
      op, ": argument 'grad' must have shape (K, channels, pooled_height, pooled_width) = (", rois.size(0), ", ",
      channels, ", ", pooled_height, ", ", pooled_width, "), got shape ", checks::shape_of(grad));
}

void raise_for_roi_status(const char* op, int status, int64_t batch_size) {
  using namespace roi_align_rotated;
  TORCH_CHECK_VALUE(
      !(status & kRoiNonFinite), op, ": argument 'rois' must hold finite values, got inf or nan");
  TORCH_CHECK_VALUE(
      !(status & kRoiBadBatchIndex), op,
      ": argument 'rois' must hold integer batch indices (column 0) in [0, batch_size) with batch_size = ",
      batch_size, ", got one outside that range");
  TORCH_CHECK_VALUE(
      !(status & kRoiNegativeSize), op, ": argument 'rois' must hold non-negative widths and heights (columns 3, 4)");
  TORCH_CHECK(status == kRoiOk, op, ": unexpected roi status ", status);
}

TORCH_LIBRARY_FRAGMENT(detectron2, m) {
  m.def(
      "roi_align_rotated_forward(Tensor input, Tensor rois, float spatial_scale, int pooled_height, "
      "int pooled_width, int sampling_ratio) -> Tensor");
  m.def(
      "roi_align_rotated_backward(Tensor grad, Tensor rois, float spatial_scale, int pooled_height, "
      "int pooled_width, int batch_size, int channels, int height, int width, int sampling_ratio) -> Tensor");
}

}  // namespace detectron2
