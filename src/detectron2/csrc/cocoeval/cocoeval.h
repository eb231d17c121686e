// COCO evaluation core: the per-image matching (pycocotools' COCOeval.evaluateImg) and
// the precision/recall accumulation (COCOeval.accumulate), in plain C++.
//
// Nothing here depends on Python or torch; cocoeval_py.h (included by vision.cpp only)
// converts the Python-facing arguments. Bad input throws std::invalid_argument (ValueError in Python).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace detectron2 {
namespace COCOeval {

// One ground-truth or detected instance of one (image, category) pair, as far as the
// matching needs it. `ignore` is the COCO "ignore" flag of a ground truth (crowd, or
// keypoints with no visible keypoint); detections leave it false.
struct InstanceAnnotation {
  InstanceAnnotation(int64_t id, double score, double area, bool is_crowd, bool ignore)
      : id(id), score(score), area(area), is_crowd(is_crowd), ignore(ignore) {}
  int64_t id;
  double score;
  double area;
  bool is_crowd;
  bool ignore;
};

// Matching result of one (category, area range, image) triple: what pycocotools keeps in
// one entry of `evalImgs`. Per-threshold arrays are row-major [threshold][instance].
struct ImageEvaluation {
  int64_t num_iou_thresholds = 0;
  // pycocotools returns None for a pair with no ground truth and no detection at all.
  bool is_empty = true;
  std::vector<int64_t> detection_ids;         // D, by decreasing score, at most max_dets
  std::vector<double> detection_scores;       // D
  std::vector<int64_t> ground_truth_ids;      // G, not-ignored ground truths first
  std::vector<uint8_t> ground_truth_ignores;  // G
  std::vector<int64_t> detection_matches;     // T x D: matched ground-truth id, 0 if none
  std::vector<int64_t> ground_truth_matches;  // T x G: matched detection id, 0 if none
  std::vector<uint8_t> detection_ignores;     // T x D
};

// IoU (or OKS) of the detections of one (image, category), sorted by decreasing score and
// truncated to max_dets (pycocotools' computeIoU), against its ground truths in their
// original order. rows == 0 stands for pycocotools' empty `[]`: no matching at all.
struct IouMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> values;  // rows x cols, row-major
};

template <class T>
using ImageCategoryInstances = std::vector<std::vector<std::vector<T>>>;  // [image][category]

// Matches detections to ground truths for every (category, area range, image), in the
// order of pycocotools' evalImgs: index = (c * num_area_ranges + a) * num_images + i.
std::vector<ImageEvaluation> EvaluateImages(
    const std::vector<std::array<double, 2>>& area_ranges,
    int64_t max_detections,
    const std::vector<double>& iou_thresholds,
    const std::vector<std::vector<IouMatrix>>& image_category_ious,
    const ImageCategoryInstances<InstanceAnnotation>& ground_truth_instances,
    const ImageCategoryInstances<InstanceAnnotation>& detection_instances);

// The parameters of pycocotools' accumulate that the computation depends on.
struct AccumulateParams {
  std::vector<double> iou_thresholds;     // T
  std::vector<double> recall_thresholds;  // R, increasing
  std::vector<int64_t> max_detections;    // M
  int64_t num_categories = 0;             // K (1 when categories are not used)
  int64_t num_area_ranges = 0;            // A
  int64_t num_images = 0;                 // I
};

struct AccumulateResult {
  std::array<int64_t, 5> counts;  // T, R, K, A, M
  std::string date;               // local time, "%Y-%m-%d %H:%M:%S"
  std::vector<double> precision;  // T x R x K x A x M, -1 where absent
  std::vector<double> recall;     // T x K x A x M
  std::vector<double> scores;     // T x R x K x A x M
};

// pycocotools' accumulate over `evaluations` laid out as EvaluateImages returns them,
// for the categories, area ranges and images of `params` (no entry may be null).
AccumulateResult Accumulate(const AccumulateParams& params, const std::vector<const ImageEvaluation*>& evaluations);
AccumulateResult Accumulate(const AccumulateParams& params, const std::vector<ImageEvaluation>& evaluations);

}  // namespace COCOeval
}  // namespace detectron2
