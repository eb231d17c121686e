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
        return self._match(match_quality_matrix, check=True)

    def _match(self, match_quality_matrix: torch.Tensor, check: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """__call__ without host syncs when ``check`` is False (the caller then checks
        ``match_quality_matrix >= 0`` itself, e.g. once for a whole batch)."""
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
        if check:
            assert torch.all(match_quality_matrix >= 0), "Matcher: match_quality_matrix must be >= 0"

        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = matches.new_full(matches.size(), 1, dtype=torch.int8)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            in_range = (matched_vals >= low) & (matched_vals < high)
            # masked_fill_ rather than boolean indexing: no nonzero, no host sync.
            match_labels.masked_fill_(in_range, label)
        if self.allow_low_quality_matches:
            self.set_low_quality_matches_(match_labels, match_quality_matrix)
        return matches, match_labels

    def set_low_quality_matches_(self, match_labels: torch.Tensor, match_quality_matrix: torch.Tensor) -> None:
        """Label positive the predictions with the highest quality for some ground
        truth (as in Faster R-CNN's RPN). Their matched index stays the argmax over
        ground truths, which may be another ground truth than the one they won."""
        best_per_gt, _ = match_quality_matrix.max(dim=1)
        # A mask over predictions (any ground truth they tie best for): no host sync.
        match_labels.masked_fill_((match_quality_matrix == best_per_gt[:, None]).any(dim=0), 1)
