"""DatasetMapper on a generated image with annotations, in training and inference."""
import copy
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, BoxMode, PolygonMasks

H, W = 48, 64


@pytest.fixture
def dataset_dict(tmp_path):
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :, 0] = 200  # red channel (RGB)
    img[8:24, 8:32] = (10, 250, 10)  # a green rectangle
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    seg = np.zeros((H, W), np.uint8)
    seg[8:24, 8:32] = 2
    seg_path = tmp_path / "seg.png"
    Image.fromarray(seg).save(seg_path)
    return {
        "file_name": str(path),
        "sem_seg_file_name": str(seg_path),
        "height": H,
        "width": W,
        "image_id": 7,
        "annotations": [
            {
                "bbox": [8, 8, 24, 16],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 2,
                "segmentation": [[8, 8, 32, 8, 32, 24, 8, 24]],
                "keypoints": [10, 10, 2, 30, 10, 2, 20, 20, 1],
                "iscrowd": 0,
            },
            {  # a crowd region: never an instance
                "bbox": [40, 30, 10, 10],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 1,
                "segmentation": [[40, 30, 50, 30, 50, 40, 40, 40]],
                "keypoints": [0] * 9,
                "iscrowd": 1,
            },
            {  # degenerate: removed by filter_empty_instances
                "bbox": [50, 5, 0, 10],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "segmentation": [[50, 5, 50, 15, 50.5, 10]],
                "keypoints": [0] * 9,
            },
        ],
    }


def _mapper(is_train=True, augs=None, **kwargs):
    if augs is None:
        augs = [T.Resize((96, 128)), T.RandomFlip(prob=1.0)]
    return DatasetMapper(is_train, augmentations=augs, image_format="RGB", **kwargs)


def test_train_mode_outputs(dataset_dict):
    original = copy.deepcopy(dataset_dict)
    mapper = _mapper(use_instance_mask=True, use_keypoint=True, keypoint_hflip_indices=[1, 0, 2])
    out = mapper(dataset_dict)
    assert dataset_dict == original  # the input is not modified
    img = out["image"]
    assert img.dtype == torch.uint8 and img.shape == (3, 96, 128) and img.is_contiguous()
    # Flipped and doubled: the green rectangle now spans x in [64, 112).
    assert img[1, 20, 70] > 200 and img[1, 20, 20] < 50
    assert out["sem_seg"].dtype == torch.long and out["sem_seg"].shape == (96, 128)
    assert set(out["sem_seg"].unique().tolist()) == {0, 2}
    assert out["sem_seg"][20, 70] == 2
    inst = out["instances"]
    assert len(inst) == 1 and inst.image_size == (96, 128)
    np.testing.assert_allclose(inst.gt_boxes.tensor.numpy(), [[64, 16, 112, 48]])
    assert inst.gt_classes.tolist() == [2] and inst.gt_classes.dtype == torch.int64
    assert isinstance(inst.gt_masks, PolygonMasks)
    np.testing.assert_allclose(inst.gt_masks.polygons[0][0], [112, 16, 64, 16, 64, 48, 112, 48])
    # Keypoints flipped, doubled and swapped left <-> right.
    np.testing.assert_allclose(inst.gt_keypoints.tensor[0].numpy(), [[68, 20, 2], [108, 20, 2], [88, 40, 1]])
    assert "annotations" not in out


def test_train_mode_drops_unused_fields_and_bitmask(dataset_dict):
    out = _mapper()(dataset_dict)
    inst = out["instances"]
    assert not inst.has("gt_masks") and not inst.has("gt_keypoints")
    out = _mapper(use_instance_mask=True, instance_mask_format="bitmask")(dataset_dict)
    masks = out["instances"].gt_masks
    assert isinstance(masks, BitMasks) and masks.tensor.shape == (1, 96, 128)
    assert masks.tensor[0, 20, 70] and not masks.tensor[0, 20, 20]


def test_inference_mode(dataset_dict):
    out = _mapper(is_train=False, augs=[T.ResizeShortestEdge(24, 1000)])(dataset_dict)
    assert out["image"].shape == (3, 24, 32)
    assert "annotations" not in out and "instances" not in out
    assert out["sem_seg"].shape == (24, 32)
    assert out["height"] == H and out["width"] == W and out["image_id"] == 7


def test_image_format_bgr(dataset_dict):
    mapper = DatasetMapper(False, augmentations=[], image_format="BGR")
    out = mapper(dataset_dict)
    assert out["image"].shape == (3, H, W)
    assert out["image"][2, 0, 0] == 200 and out["image"][0, 0, 0] == 0  # red is the last channel


def test_proposals(dataset_dict):
    dataset_dict["proposal_boxes"] = np.array([[0, 0, 10, 10], [8, 8, 32, 24], [1, 1, 2, 2]], dtype=np.float32)
    dataset_dict["proposal_bbox_mode"] = BoxMode.XYXY_ABS
    dataset_dict["proposal_objectness_logits"] = np.array([2.0, 1.0, 0.5])
    out = _mapper(is_train=False, augs=[T.Resize((96, 128))], precomputed_proposal_topk=2)(dataset_dict)
    p = out["proposals"]
    assert len(p) == 2
    np.testing.assert_allclose(p.proposal_boxes.tensor.numpy(), [[0, 0, 20, 20], [16, 16, 64, 48]])


def test_recompute_boxes_after_crop(dataset_dict):
    with pytest.raises(ValueError, match="recompute_boxes"):
        _mapper(recompute_boxes=True)
    dataset_dict["annotations"][0]["bbox"] = [0, 0, 40, 30]  # loose box around the polygon
    mapper = _mapper(augs=[T.CropTransform(4, 4, 40, 30)], use_instance_mask=True, recompute_boxes=True)
    inst = mapper(dataset_dict)["instances"]
    np.testing.assert_allclose(inst.gt_boxes.tensor.numpy(), [[4, 4, 28, 20]])


def test_size_mismatch(dataset_dict):
    dataset_dict["width"] = W + 1
    with pytest.raises(utils.SizeMismatchError):
        _mapper()(dataset_dict)


def test_determinism_under_seed(dataset_dict):
    augs = [T.RandomCrop("relative_range", (0.5, 0.5)), T.ResizeShortestEdge((32, 64), 200), T.RandomFlip()]
    mapper = _mapper(augs=augs, use_instance_mask=True)
    outs = []
    for seed in (5, 5, 6):
        np.random.seed(seed)
        outs.append(mapper(dataset_dict))
    assert torch.equal(outs[0]["image"], outs[1]["image"])
    assert torch.equal(outs[0]["instances"].gt_boxes.tensor, outs[1]["instances"].gt_boxes.tensor)
    different = outs[0]["image"].shape != outs[2]["image"].shape or not torch.equal(outs[0]["image"], outs[2]["image"])
    assert different


def test_from_config(dataset_dict, monkeypatch):
    cfg = get_cfg()
    cfg.INPUT.MIN_SIZE_TRAIN = (32,)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.MIN_SIZE_TEST = 24
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.MASK_ON = True
    mapper = DatasetMapper(cfg, is_train=True)
    assert mapper.is_train and mapper.use_instance_mask and not mapper.use_keypoint
    assert mapper.image_format == "RGB" and not mapper.recompute_boxes
    assert [type(a) for a in mapper.augmentations.augs] == [T.ResizeShortestEdge, T.RandomFlip]
    out = mapper(dataset_dict)
    assert min(out["image"].shape[1:]) == 32 and isinstance(out["instances"].gt_masks, PolygonMasks)
    test_mapper = DatasetMapper(cfg, False)
    assert test_mapper(dataset_dict)["image"].shape == (3, 24, 32)

    cfg.INPUT.CROP.ENABLED = True
    mapper = DatasetMapper(cfg, is_train=True)
    assert isinstance(mapper.augmentations.augs[0], T.RandomCrop) and mapper.recompute_boxes
    assert DatasetMapper(cfg, is_train=True, recompute_boxes=False).recompute_boxes is False

    cfg.MODEL.LOAD_PROPOSALS = True
    assert DatasetMapper(cfg, is_train=True).proposal_topk == cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN
    assert DatasetMapper(cfg, is_train=False).proposal_topk == cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST

    # Keypoints need the metadata of the training datasets (faked here).
    meta = types.SimpleNamespace(keypoint_names=["a", "l", "r"], keypoint_flip_map=[("l", "r")])
    catalog = types.ModuleType("detectron2.data.catalog")
    catalog.MetadataCatalog = types.SimpleNamespace(get=lambda name: meta)
    monkeypatch.setitem(sys.modules, "detectron2.data.catalog", catalog)
    cfg.MODEL.KEYPOINT_ON = True
    cfg.DATASETS.TRAIN = ("shapes_train",)
    assert DatasetMapper(cfg, True).keypoint_hflip_indices == [0, 2, 1]
