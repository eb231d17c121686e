// COCO evaluation core. Every loop mirrors pycocotools' COCOeval step for step (same
// orders, same comparisons, same floating-point expressions) so that the results are
// bit-identical to it, ties and degenerate cases included.
#include "cocoeval/cocoeval.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <ctime>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace detectron2 {
namespace COCOeval {

namespace {

template <class... Args>
void Require(bool ok, const Args&... message) {
  if (!ok) {
    std::ostringstream out;
    (out << ... << message);
    throw std::invalid_argument(out.str());
  }
}

// numpy's argsort(-score, kind="mergesort"): stable, decreasing, NaN scores last.
bool ScoreBefore(double a, double b) {
  if (std::isnan(b)) {
    return !std::isnan(a);
  }
  return a > b;  // false when a is NaN
}

// Detections of one (image, category) by decreasing score, at most max_detections.
std::vector<size_t> SortDetections(const std::vector<InstanceAnnotation>& detections, int64_t max_detections) {
  std::vector<size_t> order(detections.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&detections](size_t a, size_t b) {
    return ScoreBefore(detections[a].score, detections[b].score);
  });
  if (order.size() > static_cast<size_t>(max_detections)) {
    order.resize(static_cast<size_t>(max_detections));
  }
  return order;
}

bool OutsideRange(double area, const std::array<double, 2>& range) {
  return area < range[0] || area > range[1];
}

// pycocotools' evaluateImg for one area range, given the score-sorted detections.
void MatchImage(
    const std::array<double, 2>& area_range,
    const std::vector<double>& iou_thresholds,
    const IouMatrix& ious,
    const std::vector<InstanceAnnotation>& ground_truths,
    const std::vector<InstanceAnnotation>& detections,
    const std::vector<size_t>& detection_order,
    ImageEvaluation* result) {
  const size_t T = iou_thresholds.size();
  const size_t G = ground_truths.size();
  const size_t D = detection_order.size();
  result->num_iou_thresholds = static_cast<int64_t>(T);
  result->is_empty = false;

  // Ground truths that are ignored (crowd, or outside the area range) go last, stably.
  std::vector<uint8_t> ignored(G);
  for (size_t g = 0; g < G; ++g) {
    ignored[g] = ground_truths[g].ignore || OutsideRange(ground_truths[g].area, area_range);
  }
  std::vector<size_t> gt_order(G);
  std::iota(gt_order.begin(), gt_order.end(), size_t{0});
  std::stable_partition(gt_order.begin(), gt_order.end(), [&ignored](size_t g) { return !ignored[g]; });

  result->ground_truth_ids.resize(G);
  result->ground_truth_ignores.resize(G);
  for (size_t g = 0; g < G; ++g) {
    result->ground_truth_ids[g] = ground_truths[gt_order[g]].id;
    result->ground_truth_ignores[g] = ignored[gt_order[g]];
  }
  result->detection_ids.resize(D);
  result->detection_scores.resize(D);
  for (size_t d = 0; d < D; ++d) {
    result->detection_ids[d] = detections[detection_order[d]].id;
    result->detection_scores[d] = detections[detection_order[d]].score;
  }

  auto& dt_matches = result->detection_matches;
  auto& gt_matches = result->ground_truth_matches;
  auto& dt_ignores = result->detection_ignores;
  dt_matches.assign(T * D, 0);
  gt_matches.assign(T * G, 0);
  dt_ignores.assign(T * D, 0);
  const std::vector<uint8_t>& gt_ignores = result->ground_truth_ignores;

  // pycocotools skips the matching when its iou list is empty.
  if (ious.rows > 0) {
    for (size_t t = 0; t < T; ++t) {
      for (size_t d = 0; d < D; ++d) {
        const double* iou_row = ious.values.data() + d * static_cast<size_t>(ious.cols);
        double best = std::min(iou_thresholds[t], 1 - 1e-10);
        std::ptrdiff_t match = -1;
        for (size_t g = 0; g < G; ++g) {
          // A matched ground truth takes no other detection, unless it is a crowd.
          if (gt_matches[t * G + g] > 0 && !ground_truths[gt_order[g]].is_crowd) {
            continue;
          }
          // Already matched to a regular ground truth: the ignored ones come after.
          if (match > -1 && !gt_ignores[match] && gt_ignores[g]) {
            break;
          }
          const double iou = iou_row[gt_order[g]];
          if (iou < best) {
            continue;
          }
          best = iou;
          match = static_cast<std::ptrdiff_t>(g);
        }
        if (match == -1) {
          continue;
        }
        dt_ignores[t * D + d] = gt_ignores[match];
        dt_matches[t * D + d] = result->ground_truth_ids[match];
        gt_matches[t * G + match] = result->detection_ids[d];
      }
    }
  }

  // Unmatched detections outside the area range are ignored, not false positives.
  for (size_t d = 0; d < D; ++d) {
    if (!OutsideRange(detections[detection_order[d]].area, area_range)) {
      continue;
    }
    for (size_t t = 0; t < T; ++t) {
      if (dt_matches[t * D + d] == 0) {
        dt_ignores[t * D + d] = 1;
      }
    }
  }
}

std::string LocalTimeString() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
#if defined(_WIN32)
  localtime_s(&local, &now);
#else
  localtime_r(&now, &local);
#endif
  char buffer[32];
  const size_t n = std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S", &local);
  return std::string(buffer, n);
}

}  // namespace

std::vector<ImageEvaluation> EvaluateImages(
    const std::vector<std::array<double, 2>>& area_ranges,
    int64_t max_detections,
    const std::vector<double>& iou_thresholds,
    const std::vector<std::vector<IouMatrix>>& image_category_ious,
    const ImageCategoryInstances<InstanceAnnotation>& ground_truth_instances,
    const ImageCategoryInstances<InstanceAnnotation>& detection_instances) {
  const char* op = "COCOevalEvaluateImages";
  const size_t I = ground_truth_instances.size();
  Require(max_detections >= 0, op, ": argument 'max_dets' must be >= 0, got ", max_detections);
  Require(
      detection_instances.size() == I && image_category_ious.size() == I, op,
      ": arguments 'gt_instances', 'dt_instances' and 'image_category_ious' must have one entry per image, got ",
      I, ", ", detection_instances.size(), " and ", image_category_ious.size());
  const size_t C = I > 0 ? ground_truth_instances[0].size() : 0;
  for (size_t i = 0; i < I; ++i) {
    Require(
        ground_truth_instances[i].size() == C && detection_instances[i].size() == C &&
            image_category_ious[i].size() == C,
        op, ": every image must list the same number of categories (", C,
        ") in 'gt_instances', 'dt_instances' and 'image_category_ious'; image ", i, " has ",
        ground_truth_instances[i].size(), ", ", detection_instances[i].size(), " and ",
        image_category_ious[i].size());
  }
  const size_t A = area_ranges.size();
  std::vector<ImageEvaluation> results(C * A * I);

  for (size_t i = 0; i < I; ++i) {
    for (size_t c = 0; c < C; ++c) {
      const auto& ground_truths = ground_truth_instances[i][c];
      const auto& detections = detection_instances[i][c];
      if (ground_truths.empty() && detections.empty()) {
        for (size_t a = 0; a < A; ++a) {
          results[(c * A + a) * I + i].num_iou_thresholds = static_cast<int64_t>(iou_thresholds.size());
        }
        continue;
      }
      const std::vector<size_t> order = SortDetections(detections, max_detections);
      const IouMatrix& ious = image_category_ious[i][c];
      // Empty IoUs mean "no matching" to pycocotools (computeOks gives [] without useCats).
      if (ious.rows > 0) {
        Require(
            ious.rows == static_cast<int64_t>(order.size()) && ious.cols == static_cast<int64_t>(ground_truths.size()),
            op, ": image_category_ious[", i, "][", c, "] must have shape (", order.size(), ", ",
            ground_truths.size(), ") (detections sorted by score and cut to max_dets, ground truths), got (",
            ious.rows, ", ", ious.cols, ")");
        Require(ious.values.size() == static_cast<size_t>(ious.rows * ious.cols), op, ": image_category_ious[", i,
                "][", c, "] holds ", ious.values.size(), " values for shape (", ious.rows, ", ", ious.cols, ")");
      }
      for (size_t a = 0; a < A; ++a) {
        MatchImage(area_ranges[a], iou_thresholds, ious, ground_truths, detections, order,
                   &results[(c * A + a) * I + i]);
      }
    }
  }
  return results;
}

AccumulateResult Accumulate(const AccumulateParams& params, const std::vector<const ImageEvaluation*>& evaluations) {
  const char* op = "COCOevalAccumulate";
  const size_t T = params.iou_thresholds.size();
  const size_t R = params.recall_thresholds.size();
  const size_t M = params.max_detections.size();
  Require(params.num_categories >= 0 && params.num_area_ranges >= 0 && params.num_images >= 0, op,
          ": numbers of categories, area ranges and images must be >= 0");
  const size_t K = static_cast<size_t>(params.num_categories);
  const size_t A = static_cast<size_t>(params.num_area_ranges);
  const size_t I = static_cast<size_t>(params.num_images);
  Require(evaluations.size() == K * A * I, op, ": argument 'evaluations' must hold one entry per (category, area range, image) = ",
          K, " x ", A, " x ", I, " = ", K * A * I, " entries, got ", evaluations.size());
  for (int64_t max_det : params.max_detections) {
    Require(max_det >= 0, op, ": params.maxDets must be >= 0, got ", max_det);
  }
  for (size_t n = 0; n < evaluations.size(); ++n) {
    Require(evaluations[n] != nullptr, op, ": evaluations[", n, "] is None");
    Require(evaluations[n]->is_empty || evaluations[n]->num_iou_thresholds == static_cast<int64_t>(T), op,
            ": evaluations[", n, "] was computed with ", evaluations[n]->num_iou_thresholds,
            " IoU thresholds but params.iouThrs has ", T);
  }

  AccumulateResult result;
  result.counts = {static_cast<int64_t>(T), static_cast<int64_t>(R), static_cast<int64_t>(K),
                   static_cast<int64_t>(A), static_cast<int64_t>(M)};
  result.date = LocalTimeString();
  result.precision.assign(T * R * K * A * M, -1.0);
  result.recall.assign(T * K * A * M, -1.0);
  result.scores.assign(T * R * K * A * M, -1.0);

  struct Detection {
    const ImageEvaluation* evaluation;
    size_t index;
    double score;
  };
  std::vector<const ImageEvaluation*> present;
  std::vector<Detection> detections;
  std::vector<double> recall_curve, precision_curve;

  for (size_t k = 0; k < K; ++k) {
    for (size_t a = 0; a < A; ++a) {
      present.clear();
      int64_t num_regular_gts = 0;  // pycocotools' npig
      for (size_t i = 0; i < I; ++i) {
        const ImageEvaluation* e = evaluations[(k * A + a) * I + i];
        if (e->is_empty) {
          continue;
        }
        present.push_back(e);
        num_regular_gts += std::count(e->ground_truth_ignores.begin(), e->ground_truth_ignores.end(), uint8_t{0});
      }
      if (present.empty() || num_regular_gts == 0) {
        continue;
      }
      for (size_t m = 0; m < M; ++m) {
        const size_t max_det = static_cast<size_t>(params.max_detections[m]);
        detections.clear();
        for (const ImageEvaluation* e : present) {
          const size_t n = std::min(max_det, e->detection_scores.size());
          for (size_t d = 0; d < n; ++d) {
            detections.push_back({e, d, e->detection_scores[d]});
          }
        }
        std::stable_sort(detections.begin(), detections.end(),
                         [](const Detection& x, const Detection& y) { return ScoreBefore(x.score, y.score); });
        const size_t nd = detections.size();
        recall_curve.resize(nd);
        precision_curve.resize(nd);

        for (size_t t = 0; t < T; ++t) {
          double tp = 0, fp = 0;
          for (size_t j = 0; j < nd; ++j) {
            const ImageEvaluation* e = detections[j].evaluation;
            const size_t at = t * e->detection_scores.size() + detections[j].index;
            if (!e->detection_ignores[at]) {
              (e->detection_matches[at] != 0 ? tp : fp) += 1;
            }
            recall_curve[j] = tp / static_cast<double>(num_regular_gts);
            precision_curve[j] = tp / (fp + tp + std::numeric_limits<double>::epsilon());
          }
          const size_t recall_at = ((t * K + k) * A + a) * M + m;
          result.recall[recall_at] = nd ? recall_curve[nd - 1] : 0.0;

          // Precision envelope: the best precision at this recall or any higher one.
          for (size_t j = nd; j-- > 1;) {
            if (precision_curve[j] > precision_curve[j - 1]) {
              precision_curve[j - 1] = precision_curve[j];
            }
          }
          // Recall thresholds beyond the curve keep 0, like pycocotools' try/except.
          for (size_t r = 0; r < R; ++r) {
            const size_t at = (((t * R + r) * K + k) * A + a) * M + m;
            result.precision[at] = 0.0;
            result.scores[at] = 0.0;
          }
          for (size_t r = 0; r < R; ++r) {
            const size_t pi = static_cast<size_t>(
                std::lower_bound(recall_curve.begin(), recall_curve.end(), params.recall_thresholds[r]) -
                recall_curve.begin());
            if (pi >= nd) {
              break;
            }
            const size_t at = (((t * R + r) * K + k) * A + a) * M + m;
            result.precision[at] = precision_curve[pi];
            result.scores[at] = detections[pi].score;
          }
        }
      }
    }
  }
  return result;
}

AccumulateResult Accumulate(const AccumulateParams& params, const std::vector<ImageEvaluation>& evaluations) {
  std::vector<const ImageEvaluation*> pointers(evaluations.size());
  for (size_t n = 0; n < evaluations.size(); ++n) {
    pointers[n] = &evaluations[n];
  }
  return Accumulate(params, pointers);
}

}  // namespace COCOeval
}  // namespace detectron2
