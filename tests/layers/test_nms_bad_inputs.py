"""batched_nms / batched_nms_rotated reject inputs of the wrong shape with a clear error
that is also upstream's AssertionError (issue 15)."""
import pytest
import torch

from detectron2.layers import batched_nms, batched_nms_rotated
from detectron2.layers._checks import BadInputError, BadTypeError


def _boxes(n: int, dim: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    b = torch.rand(n, dim, generator=g) * 20
    b[:, 2:4] = b[:, :2] + 1 + b[:, 2:4]
    return b


CASES = [
    # (name, boxes shape, scores shape, idxs shape, message)
    ("idxs shorter", (5, 4), (5,), (4,), r"idxs must have shape \(5,\).*got \(4,\)"),
    ("idxs longer", (5, 4), (5,), (6,), r"idxs must have shape \(5,\).*got \(6,\)"),
    ("idxs 2-D column", (5, 4), (5,), (5, 1), r"idxs must have shape \(5,\).*got \(5, 1\)"),
    ("idxs 2-D row", (5, 4), (5,), (1, 5), r"idxs must have shape \(5,\).*got \(1, 5\)"),
    ("scores mismatched", (5, 4), (3,), (5,), r"scores must have shape \(5,\).*got \(3,\)"),
    ("scores 2-D", (5, 4), (5, 1), (5,), r"scores must have shape \(5,\)"),
    ("5-column boxes", (5, 5), (5,), (5,), r"boxes must have shape \(N, 4\), got \(5, 5\)"),
    ("3-column boxes", (5, 3), (5,), (5,), r"boxes must have shape \(N, 4\), got \(5, 3\)"),
    ("1-D boxes", (4,), (1,), (1,), r"boxes must have shape \(N, 4\), got \(4,\)"),
    ("3-D boxes", (2, 5, 4), (5,), (5,), r"boxes must have shape \(N, 4\)"),
]


@pytest.mark.parametrize("name,bshape,sshape,ishape,message", CASES, ids=[c[0] for c in CASES])
def test_batched_nms_bad_shapes(name, bshape, sshape, ishape, message, device):
    boxes = torch.rand(bshape, device=device)
    with pytest.raises(BadInputError, match=message) as err:
        batched_nms(boxes, torch.rand(sshape, device=device), torch.zeros(ishape, dtype=torch.int64, device=device), 0.5)
    assert isinstance(err.value, AssertionError) and isinstance(err.value, ValueError)


def test_batched_nms_rotated_wants_five_columns(device):
    kw = {"device": device}
    with pytest.raises(BadInputError, match=r"\(N, 5\), got \(3, 4\)"):
        batched_nms_rotated(torch.rand(3, 4, **kw), torch.rand(3, **kw), torch.zeros(3, dtype=torch.int64, **kw), 0.5)
    with pytest.raises(BadInputError, match=r"idxs must have shape \(3,\)"):
        batched_nms_rotated(torch.rand(3, 5, **kw), torch.rand(3, **kw), torch.zeros(3, 1, dtype=torch.int64, **kw), 0.5)


@pytest.mark.parametrize("arg", ["boxes", "scores", "idxs"])
def test_batched_nms_non_tensor(arg):
    args = {"boxes": _boxes(3), "scores": torch.rand(3), "idxs": torch.zeros(3, dtype=torch.int64)}
    args[arg] = args[arg].tolist()
    with pytest.raises(BadTypeError, match=f"{arg} must be a Tensor, got list"):
        batched_nms(args["boxes"], args["scores"], args["idxs"], 0.5)


def _reference_batched_nms(boxes, scores, idxs, thr):
    """Per category greedy NMS in plain python, then by decreasing score."""
    keep = []
    for c in idxs.unique().tolist():
        ids = [i for i in torch.argsort(scores, descending=True, stable=True).tolist() if idxs[i] == c]
        alive = []
        for i in ids:
            ok = True
            for j in alive:
                lt = torch.max(boxes[i, :2], boxes[j, :2])
                rb = torch.min(boxes[i, 2:], boxes[j, 2:])
                inter = (rb - lt).clamp(min=0).prod()
                union = (boxes[i, 2:] - boxes[i, :2]).prod() + (boxes[j, 2:] - boxes[j, :2]).prod() - inter
                if inter / union > thr:
                    ok = False
                    break
            if ok:
                alive.append(i)
        keep += alive
    return sorted(keep, key=lambda i: (-float(scores[i]), i))


@pytest.mark.parametrize("seed", range(4))
def test_valid_inputs_still_match_a_reference(seed, device):
    g = torch.Generator().manual_seed(seed)
    n = 30
    boxes = _boxes(n) + torch.rand(n, 4, generator=g)
    boxes[:, 2:] = torch.max(boxes[:, 2:], boxes[:, :2] + 0.5)
    scores = torch.rand(n, generator=g)
    idxs = torch.randint(0, 3, (n,), generator=g)
    got = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), 0.4)
    assert got.tolist() == _reference_batched_nms(boxes, scores, idxs, 0.4)


def test_empty_inputs_are_fine():
    out = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert out.numel() == 0
