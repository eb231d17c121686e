"""DeepLab's cross-entropy with optional hard pixel mining."""
from typing import Optional

import torch
from torch import nn

__all__ = ["DeepLabCE"]


class DeepLabCE(nn.Module):
    """Pixel-wise cross-entropy averaged over the ``top_k_percent_pixels`` largest pixel
    losses (bootstrapped / hard-pixel-mining loss of DeepLab). Ignored pixels have loss
    0 and still count among the pixels (as upstream)."""

    def __init__(self, ignore_label: int = -1, top_k_percent_pixels: float = 1.0, weight: Optional[torch.Tensor] = None):
        super().__init__()
        if not 0 < top_k_percent_pixels <= 1:
            raise ValueError(f"DeepLabCE: top_k_percent_pixels must be in (0, 1], got {top_k_percent_pixels}")
        self.top_k_percent_pixels = top_k_percent_pixels
        self.ignore_label = ignore_label
        self.criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_label, reduction="none")

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """logits (N, C, H, W), labels (N, H, W) and optional per-pixel weights (N, H, W)."""
        pixel_losses = self.criterion(logits, labels)
        if weights is not None:
            pixel_losses = pixel_losses * weights
        pixel_losses = pixel_losses.contiguous().view(-1)
        if self.top_k_percent_pixels == 1.0:
            return pixel_losses.mean()
        top_k = int(self.top_k_percent_pixels * pixel_losses.numel())
        return torch.topk(pixel_losses, top_k)[0].mean()
