"""BitMasks.gather: the masks at an index, copied only when read. Every observable
result must equal plain indexing (``masks[index]``), bitwise, including crop_and_resize,
which reads the source planes in place (the mask loss on gathered masks:
tests/modeling/test_mask_head.py)."""
import pytest
import torch

from detectron2.layers._errors import IndexAssertionError
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.structures.masks import _GatheredBitMasks


def _random_masks(gen, device, n=5, h=37, w=53):
    return BitMasks((torch.rand(n, h, w, generator=gen) > 0.6).to(device))


def _random_boxes(gen, n, h=37, w=53):
    """Boxes inside, across and beyond the image border, small and large, some degenerate."""
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 1.2, h * 1.2]) - 5
    wh = torch.rand(n, 2, generator=gen) * torch.tensor([w, h]) * 0.8
    wh[::7] = 0.0  # zero-size boxes
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("seed", range(5))
def test_gather_equals_indexing(seed, device):
    gen = torch.Generator().manual_seed(seed)
    masks = _random_masks(gen, device)
    index = torch.randint(0, len(masks), (23,), generator=gen).to(device)  # with repeats
    gathered, plain = masks.gather(index), masks[index]
    assert isinstance(gathered, BitMasks) and len(gathered) == len(plain) == 23
    assert gathered.device == plain.device and gathered.image_size == plain.image_size
    assert torch.equal(gathered.nonempty(), plain.nonempty())
    boxes = _random_boxes(gen, 23).to(device)
    for size in (7, 28):
        assert torch.equal(gathered.crop_and_resize(boxes, size), plain.crop_and_resize(boxes, size))
    assert gathered._gathered is None  # none of the above copied the masks
    assert torch.equal(gathered.tensor, plain.tensor)


def test_indexing_a_gathered_mask_composes_indices(device):
    gen = torch.Generator().manual_seed(7)
    masks = _random_masks(gen, device)
    index = torch.tensor([4, 0, 0, 3, 1, 2, 4, 1], device=device)
    gathered, plain = masks.gather(index), masks.tensor[index]
    select = torch.tensor([True, False, True, True, False, False, True, True], device=device)
    for item in (select, slice(1, 7, 2), torch.tensor([7, 0, 3], device=device), -2, 3):
        sub = gathered[item]
        expected = plain[item] if not isinstance(item, int) else plain[item].unsqueeze(0)
        assert torch.equal(sub.tensor, expected), item
    sub = gathered[select]
    assert type(sub) is _GatheredBitMasks and sub._gathered is None
    boxes = _random_boxes(gen, len(sub)).to(device)
    assert torch.equal(sub.crop_and_resize(boxes, 14), BitMasks(plain[select]).crop_and_resize(boxes, 14))


def test_read_tensor_then_behaves_as_a_copy():
    masks = _random_masks(torch.Generator().manual_seed(3), "cpu")
    gathered = masks.gather(torch.tensor([2, 1]))
    copy = gathered.tensor
    assert torch.equal(copy, masks.tensor[[2, 1]])
    masks.tensor[2] = ~masks.tensor[2]  # a change of the source after the read is not seen
    assert torch.equal(gathered.tensor, copy) and not torch.equal(copy[0], masks.tensor[2])
    gathered.tensor = copy[:1]
    assert len(gathered) == 1 and torch.equal(gathered[0].tensor, copy[:1])
    assert len(BitMasks.cat([gathered, masks])) == 1 + len(masks)


def test_gathered_field_of_instances():
    masks = _random_masks(torch.Generator().manual_seed(4), "cpu")
    inst = Instances((37, 53), gt_masks=masks.gather(torch.tensor([3, 3, 0, 1])),
                     proposal_boxes=Boxes(torch.tensor([[0.0, 0, 9, 9]] * 4)))
    sub = inst[torch.tensor([False, True, True, False])]
    assert type(sub.gt_masks) is _GatheredBitMasks and sub.gt_masks._gathered is None
    assert torch.equal(sub.gt_masks.tensor, masks.tensor[[3, 0]])
    both = Instances.cat([inst, sub])
    assert torch.equal(both.gt_masks.tensor, masks.tensor[[3, 3, 0, 1, 3, 0]])


@pytest.mark.parametrize("index", [
    torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]]), [0, 1], torch.tensor([True, False, True, False, True]),
    torch.tensor([0, 1], dtype=torch.uint8),
])
def test_gather_rejects_bad_index(index):
    masks = _random_masks(torch.Generator().manual_seed(5), "cpu")
    with pytest.raises(IndexAssertionError, match="index must be a 1-D integer tensor"):
        masks.gather(index)


def test_gather_of_nothing(device):
    masks = _random_masks(torch.Generator().manual_seed(6), device)
    empty = masks.gather(torch.zeros(0, dtype=torch.int64, device=device))
    assert len(empty) == 0 and empty.nonempty().shape == (0,)
    assert empty.crop_and_resize(torch.zeros(0, 4, device=device), 7).shape == (0, 7, 7)
    assert empty.tensor.shape == (0, 37, 53)


def test_gather_with_a_cpu_index_follows_the_masks_device(device):
    masks = _random_masks(torch.Generator().manual_seed(8), device)
    gathered = masks.gather(torch.tensor([1, 0], dtype=torch.int32))
    assert gathered.device == masks.device and torch.equal(gathered.tensor, masks.tensor[[1, 0]])


def _crops_one_by_one(masks_list, boxes_list, size, device):
    return torch.cat([m.crop_and_resize(b, size).to(device) for m, b in zip(masks_list, boxes_list)])


@pytest.mark.parametrize("case", ["gathered", "sizes differ", "one plain", "one read", "polygons"])
def test_crop_and_resize_all_equals_one_by_one(case, device, monkeypatch):
    from detectron2.structures import PolygonMasks, masks as masks_module
    from detectron2.structures.masks import crop_and_resize_all

    gen = torch.Generator().manual_seed(9)
    sizes = [(37, 53), (29, 41), (37, 53)] if case == "sizes differ" else [(37, 53)] * 3
    masks_list, boxes_list = [], []
    for i, (h, w) in enumerate(sizes):
        source = _random_masks(gen, device, n=3 + i, h=h, w=w)
        index = torch.randint(0, len(source), (4 + 3 * i,), generator=gen).to(device)
        masks_list.append(source.gather(index))
        boxes_list.append(_random_boxes(gen, len(index), h, w).to(device))
    if case == "one plain":
        masks_list[1] = BitMasks(masks_list[1].tensor.clone())
    if case == "one read":
        masks_list[2].tensor  # noqa: B018 (reading it makes the copy)
    if case == "polygons":
        masks_list = [PolygonMasks([[torch.tensor([2.0, 2, 30, 3, 20, 25]).numpy()]] * len(b)) for b in boxes_list]
    calls = []
    real = masks_module._crop_and_resize_planes
    monkeypatch.setattr(masks_module, "_crop_and_resize_planes", lambda *a: calls.append(1) or real(*a))
    together = crop_and_resize_all(masks_list, boxes_list, 14, torch.device(device))
    one_calls = len(calls)
    assert torch.equal(together, _crops_one_by_one(masks_list, boxes_list, 14, torch.device(device)))
    if case == "gathered":
        assert one_calls == 1  # one RoIAlign over the planes of all images
    elif case != "polygons":
        assert one_calls == 3  # image by image
