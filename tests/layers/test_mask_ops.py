import numpy as np
import pytest
import torch

from detectron2.layers import paste_masks_in_image
from detectron2.layers.mask_ops import (
    _paste_masks_tensor_shape,
    pad_masks,
    paste_mask_in_image_old,
    scale_boxes,
)


def _bilinear_zero_padded(mask: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear sample of `mask` at pixel coordinates (u, v); neighbours outside read 0."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2))
    padded[1:-1, 1:-1] = mask
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    out = np.zeros(u.shape)
    for du, wu in ((0, 1 - fu), (1, fu)):
        for dv, wv in ((0, 1 - fv), (1, fv)):
            cu = np.clip(u0 + du + 1, 0, w + 1).astype(int)
            cv = np.clip(v0 + dv + 1, 0, h + 1).astype(int)
            out += wu * wv * padded[cv, cu]
    return out


def _naive_paste(masks: torch.Tensor, boxes: torch.Tensor, h: int, w: int) -> np.ndarray:
    """Per-mask reference: each image pixel centre mapped into its box, then sampled."""
    out = np.zeros((len(masks), h, w))
    ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    for i, (m, b) in enumerate(zip(masks.double().numpy(), boxes.double().numpy())):
        size = m.shape[0]
        u = (xs - b[0]) / (b[2] - b[0]) * size - 0.5
        v = (ys - b[1]) / (b[3] - b[1]) * size - 0.5
        out[i] = _bilinear_zero_padded(m, u, v)
    return out


def _inputs(n: int, seed: int, h: int = 40, w: int = 50):
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, 14, 14, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h]) - 10  # some boxes cross the border
    wh = torch.rand(n, 2, generator=g) * 30 + 2
    return masks, torch.cat([xy, xy + wh], dim=1)


def test_probabilities_match_naive_reference(device):
    masks, boxes = _inputs(6, 0)
    got = paste_masks_in_image(masks.to(device), boxes.to(device), (40, 50), threshold=-1)
    assert got.dtype == torch.uint8 and got.shape == (6, 40, 50)
    expected = (_naive_paste(masks, boxes, 40, 50) * 255).astype(np.uint8)
    assert np.abs(got.cpu().numpy().astype(int) - expected.astype(int)).max() <= 1


def test_thresholded_masks_match_naive_reference(device):
    masks, boxes = _inputs(8, 1)
    got = paste_masks_in_image(masks.to(device), boxes.to(device), (40, 50), threshold=0.5)
    assert got.dtype == torch.bool
    probs = _naive_paste(masks, boxes, 40, 50)
    decided = np.abs(probs - 0.5) > 1e-5  # ignore pixels within rounding of the threshold
    assert np.array_equal(got.cpu().numpy()[decided], (probs >= 0.5)[decided])
    assert got.any()


def test_boxes_object_and_tensor_shape_variant(device):
    masks, boxes = _inputs(4, 2)
    masks, boxes = masks.to(device), boxes.to(device)

    class BoxesLike:  # what detectron2.structures.Boxes offers to this function
        def __init__(self, tensor):
            self.tensor = tensor

        def __len__(self):
            return len(self.tensor)

    plain = paste_masks_in_image(masks, boxes, (40, 50))
    assert torch.equal(paste_masks_in_image(masks, BoxesLike(boxes), (40, 50)), plain)
    shape = (torch.tensor(40), torch.tensor(50))
    assert torch.equal(_paste_masks_tensor_shape(masks, boxes, shape), plain)


def test_empty_and_bad_shapes(device):
    out = paste_masks_in_image(torch.zeros(0, 28, 28, device=device), torch.zeros(0, 4, device=device), (7, 9))
    assert out.shape == (0, 7, 9) and out.dtype == torch.uint8
    with pytest.raises(AssertionError):
        paste_masks_in_image(torch.zeros(2, 28, 14, device=device), torch.zeros(2, 4, device=device), (7, 9))
    with pytest.raises(AssertionError):
        paste_masks_in_image(torch.zeros(2, 28, 28, device=device), torch.zeros(3, 4, device=device), (7, 9))


def test_integer_masks_and_non_contiguous_boxes(device):
    masks, boxes = _inputs(3, 3)
    binary = (masks > 0.5).to(torch.uint8).to(device)
    wide = torch.zeros(3, 8, device=device)
    wide[:, ::2] = boxes.to(device)
    got = paste_masks_in_image(binary, wide[:, ::2], (40, 50))
    assert torch.equal(got, paste_masks_in_image(binary.float(), boxes.to(device), (40, 50)))


@pytest.mark.cuda
def test_cuda_matches_cpu():
    masks, boxes = _inputs(20, 4, h=120, w=160)
    cpu = paste_masks_in_image(masks, boxes, (120, 160), threshold=-1)
    cuda = paste_masks_in_image(masks.cuda(), boxes.cuda(), (120, 160), threshold=-1).cpu()
    assert (cpu.int() - cuda.int()).abs().max() <= 1


def test_paste_mask_in_image_old():
    mask = torch.ones(4, 4)
    out = paste_mask_in_image_old(mask, torch.tensor([2.7, 3.2, 5.9, 7.5]), 10, 6, 0.5)
    expected = torch.zeros(10, 6, dtype=torch.uint8)
    expected[3:8, 2:6] = 1  # truncated box (2, 3, 5, 7) clipped to the 6-pixel-wide image
    assert torch.equal(out, expected)


def test_pad_masks_and_scale_boxes():
    masks = torch.rand(2, 4, 4)
    padded, scale = pad_masks(masks, 1)
    assert padded.shape == (2, 6, 6) and scale == pytest.approx(1.5)
    assert torch.equal(padded[:, 1:-1, 1:-1], masks) and padded[:, 0].abs().sum() == 0
    boxes = torch.tensor([[0.0, 2.0, 4.0, 4.0]])
    torch.testing.assert_close(scale_boxes(boxes, 1.5), torch.tensor([[-1.0, 1.5, 5.0, 4.5]]))
