"""Instance masks as bitmaps (BitMasks), polygons (PolygonMasks) or per-roi maps (ROIMasks)."""
import copy
import itertools
from typing import Any, Iterator, List, Sequence, Union

import numpy as np
import pycocotools.mask as mask_util
import torch
from torch import device

from detectron2.layers._errors import IndexAssertionError, TypeAssertionError, ValueAssertionError
from detectron2.layers._checks import BadInputError

from .boxes import Boxes


def polygon_area(x: np.ndarray, y: np.ndarray) -> float:
    """Area of a simple polygon from its vertex coordinates (shoelace formula)."""
    return 0.5 * np.abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def polygons_to_bitmask(polygons: List[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterise the union of flat [x0, y0, x1, y1, ...] polygons to a (height, width) bool mask."""
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    for i, p in enumerate(polygons):
        n = np.asarray(p).size
        if np.asarray(p).ndim != 1 or n % 2 != 0 or n < 6:
            raise BadInputError(
                f"polygons_to_bitmask: polygons[{i}] must be a flat array of an even number (>= 6) of "
                f"coordinates x0, y0, x1, y1, ..., got {n} values of shape {np.asarray(p).shape}"
            )
    rles = mask_util.frPyObjects(polygons, height, width)
    rle = mask_util.merge(rles)
    return mask_util.decode(rle).astype(bool)


def rasterize_polygons_within_box(polygons: List[np.ndarray], box: np.ndarray, mask_size: int) -> torch.Tensor:
    """Rasterise one instance's polygons inside `box` (XYXY) to a (mask_size, mask_size) bool mask.

    The polygons are shifted to the box's corner and scaled to mask_size per side.
    """
    w, h = box[2] - box[0], box[3] - box[1]
    polygons = copy.deepcopy(polygons)
    for p in polygons:
        p[0::2] = p[0::2] - box[0]
        p[1::2] = p[1::2] - box[1]
    # Guard degenerate boxes against a division by zero.
    ratio_h = mask_size / max(h, 0.1)
    ratio_w = mask_size / max(w, 0.1)
    if ratio_h == ratio_w:
        for p in polygons:
            p *= ratio_h
    else:
        for p in polygons:
            p[0::2] *= ratio_w
            p[1::2] *= ratio_h
    return torch.from_numpy(polygons_to_bitmask(polygons, mask_size, mask_size))


class BitMasks:
    """N binary masks of one image, an (N, H, W) bool tensor."""

    def __init__(self, tensor: torch.Tensor):  # also takes a numpy array or nested lists
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.to(torch.bool)
        else:
            tensor = torch.as_tensor(tensor, dtype=torch.bool, device=torch.device("cpu"))
        if tensor.dim() != 3:
            raise ValueAssertionError(f"BitMasks: tensor must have shape (N, H, W), got {tensor.shape}")
        self.image_size = tensor.shape[1:]
        self.tensor = tensor

    @torch.jit.unused
    def to(self, *args: Any, **kwargs: Any) -> "BitMasks":
        return BitMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> device:
        return self.tensor.device

    @torch.jit.unused
    def __getitem__(self, item: Union[int, slice, torch.BoolTensor]) -> "BitMasks":
        """Index with an int (kept as one mask), a slice, a bool mask or an index tensor."""
        if isinstance(item, int):
            return BitMasks(self.tensor[item].unsqueeze(0))
        m = self.tensor[item]
        if m.dim() != 3:
            raise IndexAssertionError(f"Indexing on BitMasks with {item} returns a tensor with shape {m.shape}!")
        return BitMasks(m)

    @torch.jit.unused
    def __iter__(self):
        yield from self.tensor

    @torch.jit.unused
    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def nonempty(self) -> torch.Tensor:
        """Bool mask of the masks with at least one pixel set."""
        return self.tensor.flatten(1).any(dim=1)

    @staticmethod
    @torch.jit.unused
    def from_polygon_masks(
        polygon_masks: Union["PolygonMasks", List[List[np.ndarray]]], height: int, width: int
    ) -> "BitMasks":
        if isinstance(polygon_masks, PolygonMasks):
            polygon_masks = polygon_masks.polygons
        masks = [polygons_to_bitmask(p, height, width) for p in polygon_masks]
        if len(masks) == 0:
            return BitMasks(torch.empty(0, height, width, dtype=torch.bool))
        return BitMasks(torch.stack([torch.from_numpy(x) for x in masks]))

    @staticmethod
    @torch.jit.unused
    def from_roi_masks(roi_masks: "ROIMasks", height: int, width: int) -> "BitMasks":
        """Paste ROI masks that each cover the whole (height, width) image."""
        boxes = torch.tensor([[0.0, 0.0, float(width), float(height)]], device=roi_masks.device)
        return roi_masks.to_bitmasks(boxes.expand(len(roi_masks), 4), height, width)

    @torch.jit.unused
    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int, check_finite: bool = True) -> torch.Tensor:
        """Crop mask i to boxes[i] (XYXY, image coords) and resize to mask_size x mask_size.

        Bilinear RoIAlign of the 0/1 mask, thresholded at 0.5; returns an (N, M, M) bool
        tensor on the masks' device. ``check_finite=False`` skips the NaN/inf check of the
        boxes (one host sync) for a caller that checked them already.
        """
        # Imported here: RoIAlign is an nn.Module and this method is not compiled by TorchScript.
        from detectron2.layers.roi_align import ROIAlign

        check_crop_boxes(boxes, len(self), "BitMasks", check_finite)
        plane_of_box = torch.arange(len(boxes), device=self.tensor.device)
        return _crop_and_resize_planes(self.tensor, plane_of_box, boxes, mask_size)

    @torch.jit.unused
    def gather(self, index: torch.Tensor) -> "BitMasks":
        """The masks at ``index`` (1-D integer tensor), equal to ``self[index]``, but copied
        only if their ``tensor`` is read: ``crop_and_resize`` and ``nonempty`` read these
        masks in place, and indexing the result only composes the indices. The ROI heads
        give each sampled proposal its gt mask this way, instead of copying a full-image
        mask per proposal. Reads the masks as they are when used: do not modify them
        in place meanwhile."""
        if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype not in _GATHER_INDEX_DTYPES:
            raise IndexAssertionError(f"BitMasks.gather: index must be a 1-D integer tensor, got {index!r}")
        return _GatheredBitMasks(self.tensor, index)

    def get_bounding_boxes(self) -> Boxes:
        """Tight XYXY boxes around each mask; all zeros for an empty mask."""
        boxes = torch.zeros(self.tensor.shape[0], 4, dtype=torch.float32)
        x_any = torch.any(self.tensor, dim=1)
        y_any = torch.any(self.tensor, dim=2)
        for idx in range(self.tensor.shape[0]):
            x = torch.where(x_any[idx, :])[0]
            y = torch.where(y_any[idx, :])[0]
            if len(x) > 0 and len(y) > 0:
                boxes[idx, :] = torch.stack([x[0], y[0], x[-1] + 1, y[-1] + 1]).to(torch.float32)
        return Boxes(boxes)

    @staticmethod
    @torch.jit.unused
    def cat(bitmasks_list: List["BitMasks"]) -> "BitMasks":
        if not isinstance(bitmasks_list, (list, tuple)) or len(bitmasks_list) == 0:
            raise ValueAssertionError("BitMasks.cat: bitmasks_list must be a non-empty list of BitMasks")
        for bm in bitmasks_list:
            if not isinstance(bm, BitMasks):
                raise TypeAssertionError(f"BitMasks.cat: every element must be BitMasks, got {type(bm)}")
        kind = type(bitmasks_list[0])
        if kind is _GatheredBitMasks:  # a lazy view: its concatenation is a plain copy
            kind = BitMasks
        return kind(torch.cat([bm.tensor for bm in bitmasks_list], dim=0))


# Integer index dtypes (bool and uint8 tensors index as masks, not positions).
_GATHER_INDEX_DTYPES = (torch.int16, torch.int32, torch.int64)


def _crop_and_resize_planes(
    planes: torch.Tensor, plane_of_box: torch.Tensor, boxes: torch.Tensor, mask_size: int
) -> torch.Tensor:
    """(N, M, M) bool: box i cropped from bool mask planes[plane_of_box[i]] and resized
    (bilinear RoIAlign of the 0/1 mask, thresholded at 0.5)."""
    # Imported here: RoIAlign is an nn.Module and this is not compiled by TorchScript.
    from detectron2.layers.roi_align import ROIAlign

    dev = planes.device
    rois = torch.cat([plane_of_box.to(device=dev, dtype=boxes.dtype)[:, None], boxes.to(device=dev)], dim=1)
    float_planes = planes.to(dtype=torch.float32)[:, None, :, :]
    output = ROIAlign((mask_size, mask_size), 1.0, 0, aligned=True).forward(float_planes, rois.to(torch.float32))
    return output.squeeze(1) >= 0.5


class _GatheredBitMasks(BitMasks):
    """BitMasks.gather's result: the masks source[index], copied on the first read of
    ``tensor``; until then, methods that can read the source planes in place do."""

    def __init__(self, source: torch.Tensor, index: torch.Tensor):  # no BitMasks.__init__: nothing to convert
        self._source = source
        self._index = index.to(device=source.device)
        self._gathered = None
        self.image_size = source.shape[1:]

    @property
    def tensor(self) -> torch.Tensor:
        if self._gathered is None:
            self._gathered = self._source[self._index]
        return self._gathered

    @tensor.setter
    def tensor(self, value: torch.Tensor) -> None:
        self._gathered = value

    @property
    def device(self) -> device:
        return self._source.device

    def __len__(self) -> int:
        return len(self._index) if self._gathered is None else self._gathered.shape[0]

    def __getitem__(self, item: Union[int, slice, torch.Tensor]) -> "BitMasks":
        if self._gathered is not None:
            return super().__getitem__(item)
        if isinstance(item, int):
            return BitMasks(self._source[self._index[item]].unsqueeze(0))
        index = self._index[item]
        if index.dim() != 1:
            raise IndexAssertionError(f"Indexing on BitMasks with {item} returns a tensor with shape "
                                      f"{(*index.shape, *self.image_size)}!")
        return _GatheredBitMasks(self._source, index)

    def nonempty(self) -> torch.Tensor:
        if self._gathered is not None:
            return super().nonempty()
        return self._source.flatten(1).any(dim=1)[self._index]

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int, check_finite: bool = True) -> torch.Tensor:
        if self._gathered is not None:
            return super().crop_and_resize(boxes, mask_size, check_finite)
        check_crop_boxes(boxes, len(self), "BitMasks", check_finite)
        # RoIAlign reads each box's own source plane: the same planes as the gathered copy.
        return _crop_and_resize_planes(self._source, self._index, boxes, mask_size)


def crop_and_resize_all(
    masks_list: Sequence[Union["BitMasks", "PolygonMasks"]],
    boxes_list: Sequence[torch.Tensor],
    mask_size: int,
    device: torch.device,
    check_finite: bool = True,
) -> torch.Tensor:
    """``cat([masks.crop_and_resize(boxes, mask_size) ...])`` on ``device``, for several
    images, with one NaN/inf check (one host sync) of all their boxes. Gathered BitMasks
    (BitMasks.gather) whose source masks share one size and device, as the ROI heads make
    them for a batch, are cropped in one RoIAlign over all their planes; anything else
    image by image. The values are the same either way."""
    owner = "BitMasks" if isinstance(masks_list[0], BitMasks) else type(masks_list[0]).__name__
    for masks, boxes in zip(masks_list, boxes_list):
        check_crop_boxes(boxes, len(masks), owner, check_finite=False)
    all_boxes = torch.cat(list(boxes_list), dim=0)
    if check_finite:
        check_crop_boxes(all_boxes, len(all_boxes), owner)
    gathered = all(type(m) is _GatheredBitMasks and m._gathered is None for m in masks_list)
    sources = [m._source for m in masks_list] if gathered else []
    if not gathered or len({(s.shape[1:], s.device) for s in sources}) != 1:
        crops = [m.crop_and_resize(b, mask_size, check_finite=False) for m, b in zip(masks_list, boxes_list)]
        return torch.cat([c.to(device=device) for c in crops], dim=0)
    plane_of_box, offset = [], 0
    for masks, source in zip(masks_list, sources):
        plane_of_box.append(masks._index + offset)  # planes of this image, after the earlier images'
        offset += len(source)
    crops = _crop_and_resize_planes(torch.cat(sources, dim=0), torch.cat(plane_of_box), all_boxes, mask_size)
    return crops.to(device=device)


class PolygonMasks:
    """N instance masks as polygons: a list (instances) of lists (parts) of flat float64
    arrays [x0, y0, x1, y1, ...] in absolute image coordinates. Kept on the CPU."""

    def __init__(self, polygons: List[List[Union[torch.Tensor, np.ndarray]]]):
        if not isinstance(polygons, list):
            raise ValueError(
                "Cannot create PolygonMasks: Expect a list of list of polygons per image. "
                f"Got '{type(polygons)}' instead."
            )
        self.polygons: List[List[np.ndarray]] = [_process_instance_polygons(p) for p in polygons]

    def to(self, *args: Any, **kwargs: Any) -> "PolygonMasks":
        # Polygons live on the CPU whatever device is asked for.
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_bounding_boxes(self) -> Boxes:
        """XYXY boxes enclosing every part of each instance."""
        boxes = torch.zeros(len(self.polygons), 4, dtype=torch.float32)
        for idx, polygons_per_instance in enumerate(self.polygons):
            minxy = torch.as_tensor([float("inf"), float("inf")], dtype=torch.float32)
            maxxy = torch.zeros(2, dtype=torch.float32)
            for polygon in polygons_per_instance:
                coords = torch.from_numpy(polygon).view(-1, 2).to(dtype=torch.float32)
                minxy = torch.min(minxy, torch.min(coords, dim=0).values)
                maxxy = torch.max(maxxy, torch.max(coords, dim=0).values)
            boxes[idx, :2] = minxy
            boxes[idx, 2:] = maxxy
        return Boxes(boxes)

    def nonempty(self) -> torch.Tensor:
        """Bool mask of the instances with at least one polygon."""
        keep = [len(polygon) > 0 for polygon in self.polygons]
        return torch.from_numpy(np.asarray(keep, dtype=bool))

    def __getitem__(self, item: Union[int, slice, List[int], torch.BoolTensor]) -> "PolygonMasks":
        """Index with an int, a slice, a list of ints, a bool mask or an int tensor."""
        if isinstance(item, int):
            selected = [self.polygons[item]]
        elif isinstance(item, slice):
            selected = self.polygons[item]
        elif isinstance(item, list):
            selected = [self.polygons[i] for i in item]
        elif isinstance(item, torch.Tensor):
            if item.dtype == torch.bool:
                if item.dim() != 1:
                    raise IndexError(f"PolygonMasks: a bool index must be 1-D, got shape {item.shape}")
                if item.numel() != len(self.polygons):
                    raise IndexError(
                        f"PolygonMasks: bool index of length {item.numel()} for {len(self.polygons)} instances"
                    )
                item = item.nonzero().squeeze(1).cpu().numpy().tolist()
            elif item.dtype in (torch.int32, torch.int64):
                item = item.reshape(-1).cpu().numpy().tolist()
            else:
                raise ValueError(f"Unsupported tensor dtype={item.dtype} for indexing!")
            selected = [self.polygons[i] for i in item]
        else:
            raise TypeError(f"PolygonMasks: unsupported index type {type(item)}")
        return PolygonMasks(selected)

    def __iter__(self) -> Iterator[List[np.ndarray]]:
        return iter(self.polygons)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.polygons)})"

    def __len__(self) -> int:
        return len(self.polygons)

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int, check_finite: bool = True) -> torch.Tensor:
        """Rasterise instance i inside boxes[i] (XYXY) to an (N, M, M) bool tensor on
        the boxes' device (``check_finite`` as in BitMasks.crop_and_resize)."""
        check_crop_boxes(boxes, len(self), "PolygonMasks", check_finite)
        dev = boxes.device
        # Rasterisation runs on the CPU through pycocotools.
        boxes = boxes.to(torch.device("cpu"))
        results = [
            rasterize_polygons_within_box(poly, box.numpy(), mask_size) for poly, box in zip(self.polygons, boxes)
        ]
        if len(results) == 0:
            return torch.empty(0, mask_size, mask_size, dtype=torch.bool, device=dev)
        return torch.stack(results, dim=0).to(device=dev)

    def area(self) -> torch.Tensor:
        """Area of each instance: the sum of its polygons' areas (overlaps count twice)."""
        area = []
        for polygons_per_instance in self.polygons:
            area_per_instance = 0
            for p in polygons_per_instance:
                area_per_instance += polygon_area(p[0::2], p[1::2])
            area.append(area_per_instance)
        return torch.tensor(area)

    @staticmethod
    def cat(polymasks_list: List["PolygonMasks"]) -> "PolygonMasks":
        if not isinstance(polymasks_list, (list, tuple)) or len(polymasks_list) == 0:
            raise ValueAssertionError("PolygonMasks.cat: polymasks_list must be a non-empty list of PolygonMasks")
        for pm in polymasks_list:
            if not isinstance(pm, PolygonMasks):
                raise TypeAssertionError(f"PolygonMasks.cat: every element must be PolygonMasks, got {type(pm)}")
        return type(polymasks_list[0])(list(itertools.chain.from_iterable(pm.polygons for pm in polymasks_list)))


def _as_float64_array(t: Union[torch.Tensor, np.ndarray, List[float]]) -> np.ndarray:
    # Work in float64 so later rasterisation math is not limited by float32 rounding.
    if isinstance(t, torch.Tensor):
        t = t.cpu().numpy()
    return np.asarray(t).astype("float64")


def check_crop_boxes(boxes: torch.Tensor, n: int, owner: str, check_finite: bool = True) -> None:
    """crop_and_resize needs (N, 4) finite boxes, one per mask; a NaN box has no crop.
    The finiteness check costs one host sync: crop_and_resize_all makes it once for all
    images."""
    if len(boxes) != n:
        raise ValueAssertionError(f"{owner}.crop_and_resize: {len(boxes)} boxes for {n} masks")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise BadInputError(f"{owner}.crop_and_resize: boxes must have shape ({n}, 4), got {tuple(boxes.shape)}")
    if check_finite and boxes.numel() and not bool(torch.isfinite(boxes).all()):
        bad = (~torch.isfinite(boxes)).any(dim=1).nonzero().flatten().tolist()
        raise BadInputError(
            f"{owner}.crop_and_resize: boxes must be finite, got NaN/inf in rows {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''} (diverged training or bad proposals?)"
        )


def _process_instance_polygons(polygons_per_instance: List[Any]) -> List[np.ndarray]:
    if not isinstance(polygons_per_instance, list):
        raise ValueError(
            "Cannot create polygons: Expect a list of polygons per instance. "
            f"Got '{type(polygons_per_instance)}' instead."
        )
    arrays = [_as_float64_array(p) for p in polygons_per_instance]
    for polygon in arrays:
        if polygon.ndim != 1 or len(polygon) % 2 != 0 or len(polygon) < 6:
            raise BadInputError(
                f"Cannot create a polygon from {polygon.size} coordinates: expected a flat array of "
                "an even number (>= 6) of coordinates"
            )
    return arrays


class ROIMasks:
    """Masks predicted inside each roi: an (N, M, M) tensor of probabilities or logits,
    pasted into the image by :meth:`to_bitmasks`."""

    def __init__(self, tensor: torch.Tensor):
        if tensor.dim() != 3:
            raise ValueAssertionError(f"ROIMasks must take a masks of 3 dimension, got shape {tuple(tensor.shape)}")
        self.tensor = tensor

    def to(self, device: torch.device) -> "ROIMasks":
        return ROIMasks(self.tensor.to(device))

    @property
    def device(self) -> device:
        return self.tensor.device

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item) -> "ROIMasks":
        t = self.tensor[item]
        if t.dim() != 3:
            raise IndexError(f"Indexing on ROIMasks with {item} returns a tensor with shape {t.shape}!")
        return ROIMasks(t)

    @torch.jit.unused
    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    @torch.jit.unused
    def to_bitmasks(self, boxes: Union[torch.Tensor, Boxes], height: int, width: int, threshold: float = 0.5):
        """Paste each roi mask into its box (XYXY) on a (height, width) image; BitMasks."""
        from detectron2.layers.mask_ops import _paste_masks_tensor_shape, paste_masks_in_image

        if isinstance(boxes, Boxes):
            boxes = boxes.tensor
        if torch.jit.is_tracing() and isinstance(height, torch.Tensor):
            paste_func = _paste_masks_tensor_shape
        else:
            paste_func = paste_masks_in_image
        bitmasks = paste_func(self.tensor, boxes, (height, width), threshold=threshold)
        return BitMasks(bitmasks)
