"""Assign each prediction to a ground-truth element by match quality (e.g. IoU)."""
from typing import List, Tuple

import torch

from detectron2.layers._errors import ValueAssertionError

__all__ = ["Matcher"]


def _check_matcher_args(thresholds: List[float], labels: List[int]) -> None:
    if len(thresholds) == 0 or thresholds[0] <= 0:
        raise ValueAssertionError(f"Matcher: thresholds must be non-empty and positive, got {thresholds}")
    if not all(low <= high for low, high in zip(thresholds[:-1], thresholds[1:])):
        raise ValueAssertionError(f"Matcher: thresholds must be non-decreasing, got {thresholds}")
    if not all(label in (-1, 0, 1) for label in labels):
        raise ValueAssertionError(f"Matcher: labels must each be -1, 0 or 1, got {labels}")
    if len(labels) != len(thresholds) + 1:
        raise ValueAssertionError(f"Matcher: {len(thresholds)} thresholds need {len(thresholds) + 1} labels, got {len(labels)}")


class Matcher:
    """Matches every prediction (column of an M x N quality matrix) to its best
    ground truth (row), and labels the match by which threshold interval its quality
    falls in: with thresholds [0.3, 0.5] and labels [0, -1, 1], quality < 0.3 gives 0
    (negative), [0.3, 0.5) gives -1 (ignore), >= 0.5 gives 1 (positive).
    """

    def __init__(self, thresholds: List[float], labels: List[int], allow_low_quality_matches: bool = False):
        """
        Args:
            thresholds: increasing, positive interval boundaries.
            labels: one of -1, 0, 1 per interval (len(thresholds) + 1 of them).
            allow_low_quality_matches: also mark positive every prediction that has the
                highest quality for some ground truth (ties included), even if below
                the thresholds, so that every ground truth gets a match (RPN).
        """
        thresholds = list(thresholds)
        if not torch.jit.is_scripting():  # TorchScript cannot compile the checks' generators
            _check_matcher_args(thresholds, labels)
        thresholds.insert(0, -float("inf"))
        thresholds.append(float("inf"))
        self.thresholds = thresholds
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            match_quality_matrix: (M, N) pairwise quality of M ground truths and N
                predictions, all >= 0.

        Returns:
            matches (int64, N): index of the matched ground truth for each prediction.
            match_labels (int8, N): the label (-1, 0 or 1) of each match.
        """
        if match_quality_matrix.dim() != 2:
            raise ValueAssertionError(
                f"Matcher: match_quality_matrix must be 2-D (M, N), got shape {match_quality_matrix.shape}"
            )
        n = match_quality_matrix.size(1)
        if match_quality_matrix.numel() == 0:
            # No ground truth (or no prediction): everything takes the lowest label.
            matches = match_quality_matrix.new_full((n,), 0, dtype=torch.int64)
            match_labels = match_quality_matrix.new_full((n,), self.labels[0], dtype=torch.int8)
            return matches, match_labels
        assert torch.all(match_quality_matrix >= 0), "Matcher: match_quality_matrix must be >= 0"

        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = self._label_by_quality(matched_vals)
        if self.allow_low_quality_matches:
            self.set_low_quality_matches_(match_labels, match_quality_matrix)
        return matches, match_labels

    def _label_by_quality(self, matched_vals: torch.Tensor) -> torch.Tensor:
        match_labels = torch.ones_like(matched_vals, dtype=torch.int8)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            in_range = (matched_vals >= low) & (matched_vals < high)
            # masked_fill_ rather than boolean indexing: no nonzero, no host sync.
            match_labels.masked_fill_(in_range, label)
        return match_labels

    @torch.jit.unused
    def match_batch(self, match_quality: torch.Tensor, gt_valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """__call__ for B images at once, with one host sync (the input check) in all.

        Args:
            match_quality: (B, M, N) quality of each image's ground truths (padded to M
                rows) and N predictions, >= 0 on the valid rows.
            gt_valid: (B, M) bool, False on padding rows, which never match.

        Returns:
            matches (int64, (B, N)) and match_labels (int8, (B, N)), each row equal to
            __call__ on that image's valid rows (an image without ground truth gets
            matches 0 and the lowest label, as __call__ of an empty matrix does).
        """
        if match_quality.dim() != 3 or gt_valid.shape != match_quality.shape[:2] or gt_valid.dtype != torch.bool:
            raise ValueAssertionError(
                f"Matcher.match_batch: match_quality must be (B, M, N) and gt_valid a (B, M) bool mask, got "
                f"{tuple(match_quality.shape)} and {tuple(gt_valid.shape)} {gt_valid.dtype}"
            )
        num_images, num_gt, n = match_quality.shape
        if num_gt == 0 or n == 0:
            matches = match_quality.new_zeros((num_images, n), dtype=torch.int64)
            return matches, match_quality.new_full((num_images, n), self.labels[0], dtype=torch.int8)
        padding = ~gt_valid[..., None]
        assert torch.all((match_quality >= 0) | padding), "Matcher: match_quality_matrix must be >= 0"
        # Padding rows at -1 lose to every valid row. With no valid row, max gives the
        # first index (0) on ties and -1 falls in the lowest interval: an empty
        # matrix's result.
        match_quality = match_quality.masked_fill(padding, -1.0)
        matched_vals, matches = match_quality.max(dim=1)
        match_labels = self._label_by_quality(matched_vals)
        if self.allow_low_quality_matches:
            best_per_gt = match_quality.max(dim=2, keepdim=True).values
            best = (match_quality == best_per_gt) & gt_valid[..., None]
            match_labels.masked_fill_(best.any(dim=1), 1)
        return matches, match_labels

    def set_low_quality_matches_(self, match_labels: torch.Tensor, match_quality_matrix: torch.Tensor) -> None:
        """Label positive the predictions with the highest quality for some ground
        truth (as in Faster R-CNN's RPN). Their matched index stays the argmax over
        ground truths, which may be another ground truth than the one they won."""
        best_per_gt, _ = match_quality_matrix.max(dim=1)
        # A mask over predictions (any ground truth they tie best for): no host sync.
        match_labels.masked_fill_((match_quality_matrix == best_per_gt[:, None]).any(dim=0), 1)
