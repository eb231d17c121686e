"""The Python (LazyConfig) models of the zoo build the same networks as the matching YAML
configs: identical state_dict keys and shapes, so one checkpoint serves both."""
import pytest
import torch

from detectron2 import model_zoo
from detectron2.config import instantiate

PAIRS = [
    ("common/models/mask_rcnn_fpn.py", "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"),
    ("common/models/mask_rcnn_c4.py", "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml"),
    ("common/models/keypoint_rcnn_fpn.py", "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml"),
    ("common/models/cascade_rcnn.py", "Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml"),
    ("common/models/retinanet.py", "COCO-Detection/retinanet_R_50_FPN_1x.yaml"),
    ("common/models/panoptic_fpn.py", "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml"),
]


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.slow  # ten ResNet-50 detectors
@pytest.mark.parametrize("py, yaml", PAIRS)
def test_lazy_model_matches_yaml_model(py, yaml):
    from detectron2.modeling import build_model

    lazy = model_zoo.get_config(py)
    lazy_model = instantiate(lazy.model)
    cfg = model_zoo.get_config(yaml)
    cfg.MODEL.DEVICE = "cpu"
    yaml_model = build_model(cfg)
    assert type(lazy_model) is type(yaml_model)
    assert _shapes(lazy_model) == _shapes(yaml_model)
    # and it runs
    lazy_model.eval()
    with torch.no_grad():
        out = lazy_model([{"image": torch.rand(3, 64, 96) * 255, "height": 64, "width": 96}])
    assert out[0]["instances"].image_size == (64, 96)


def test_lazy_hyperparameters_match_the_yaml_ones():
    model = model_zoo.get_config("common/models/keypoint_rcnn_fpn.py").model
    assert model.roi_heads.num_classes == 1 and "mask_head" not in model.roi_heads
    assert tuple(model.proposal_generator.post_nms_topk) == (1500, 1000)
    assert model.roi_heads.box_predictor.smooth_l1_beta == 0.5
    cascade = model_zoo.get_config("common/models/cascade_rcnn.py").model.roi_heads
    assert [m.thresholds for m in cascade.proposal_matchers] == [[0.5], [0.6], [0.7]]
    assert [list(p.box2box_transform.weights) for p in cascade.box_predictors] == [
        [10, 10, 5, 5], [20, 20, 10, 10], [30, 30, 15, 15]]


TOP_LEVEL = [
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.py",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.py",
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.py",
    "COCO-Detection/retinanet_R_50_FPN_1x.py",
    "COCO-Detection/fcos_R_50_FPN_1x.py",
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.py",
]


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_training_configs_have_all_parts(name):
    cfg = model_zoo.get_config(name)
    assert set(cfg.keys()) >= {"model", "dataloader", "optimizer", "lr_multiplier", "train"}
    assert cfg.train.init_checkpoint == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    assert cfg.optimizer.lr == (0.01 if ("retinanet" in name or "fcos" in name) else 0.02)
    assert cfg.dataloader.train.total_batch_size == 16
    assert cfg.dataloader.train.mapper.use_instance_mask == ("mask_rcnn" in name or "panoptic" in name)
    if "fcos" in name:  # upstream published no FCOS checkpoint
        with pytest.raises(RuntimeError, match="no published checkpoint"):
            model_zoo.get_config(name, trained=True)
    else:
        trained = model_zoo.get_config(name, trained=True)
        assert trained.train.init_checkpoint == model_zoo.get_checkpoint_url(name)
    # the optimizer and schedule instantiate once the model is known
    cfg.optimizer.params.model = torch.nn.Linear(2, 2)
    assert isinstance(instantiate(cfg.optimizer), torch.optim.SGD)
    lr = instantiate(cfg.lr_multiplier)
    assert lr(0.0) == pytest.approx(0.001) and lr(0.5) == 1.0 and lr(0.7) == pytest.approx(0.1)


def test_panoptic_separated_loader_has_three_evaluators():
    dataloader = model_zoo.get_config("common/data/coco_panoptic_separated.py").dataloader
    assert dataloader.train.dataset.names == "coco_2017_train_panoptic_separated"
    assert not dataloader.train.dataset.filter_empty
    assert [e.dataset_name for e in dataloader.evaluator] == ["coco_2017_val_panoptic_separated"] * 3


def test_keypoint_loader_flips_left_and_right():
    cfg = model_zoo.get_config("COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.py")
    mapper = cfg.dataloader.train.mapper
    assert mapper.use_keypoint and list(mapper.keypoint_hflip_indices)[:3] == [0, 2, 1]
    assert cfg.dataloader.train.dataset.names == "keypoints_coco_2017_train"


def test_longer_schedules_step_before_the_end():
    schedule = model_zoo.get_config("common/coco_schedule.py")
    three_x = instantiate(schedule.lr_multiplier_3x)
    # 270k iterations: steps at 210k and 250k
    assert three_x(209000 / 270000) == 1.0 and three_x(211000 / 270000) == pytest.approx(0.1)
    assert three_x(251000 / 270000) == pytest.approx(0.01)


@pytest.mark.slow
def test_fcos_builds_and_runs():
    model = instantiate(model_zoo.get_config("common/models/fcos.py").model).eval()
    assert type(model).__name__ == "FCOS"
    assert model.backbone.top_block.in_feature == "p5"
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 64, 96) * 255, "height": 64, "width": 96}])
    assert out["instances"].image_size == (64, 96)


LSJ = ["R_50_FPN", "R_101_FPN", "regnetx_4gf_dds_FPN", "regnety_4gf_dds_FPN"]


@pytest.mark.parametrize("arch", LSJ)
def test_lsj_baselines_scale_their_schedules(arch):
    base = model_zoo.get_config(f"new_baselines/mask_rcnn_{arch}_100ep_LSJ.py")
    assert base.train.max_iter == 184375 and base.dataloader.train.total_batch_size == 64
    assert list(base.lr_multiplier.scheduler.milestones) == [163889, 177546]
    assert base.dataloader.train.mapper.recompute_boxes
    assert [type(instantiate(a)).__name__ for a in base.dataloader.train.mapper.augmentations] == [
        "ResizeScale", "FixedSizeCrop", "RandomFlip"]
    for epochs in (200, 400):
        cfg = model_zoo.get_config(f"new_baselines/mask_rcnn_{arch}_{epochs}ep_LSJ.py")
        factor = epochs // 100
        assert cfg.train.max_iter == 184375 * factor
        assert list(cfg.lr_multiplier.scheduler.milestones) == [163889 * factor, 177546 * factor]
        assert cfg.lr_multiplier.scheduler.num_updates == cfg.train.max_iter
        assert model_zoo.get_config(f"new_baselines/mask_rcnn_{arch}_{epochs}ep_LSJ.py", trained=True).train.init_checkpoint \
            == model_zoo.get_checkpoint_url(f"new_baselines/mask_rcnn_{arch}_{epochs}ep_LSJ.py")
    assert model_zoo.get_config("new_baselines/mask_rcnn_R_101_FPN_100ep_LSJ.py").model.backbone.bottom_up.stages.depth == 101
    if arch.startswith("regnet"):
        bottom_up = base.model.backbone.bottom_up
        assert (bottom_up.norm, bottom_up.freeze_at, bottom_up.depth) == ("SyncBN", 0, 23 if "regnetx" in arch else 22)
    half = model_zoo.get_config("new_baselines/mask_rcnn_R_50_FPN_50ep_LSJ.py")
    assert half.train.max_iter == 184375 // 2


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    "COCO-InstanceSegmentation/mask_rcnn_regnetx_4gf_dds_fpn_1x.py",
    "COCO-InstanceSegmentation/mask_rcnn_regnety_4gf_dds_fpn_1x.py",
    "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ.py",
])
def test_regnet_and_lsj_models_build_and_run(name):
    cfg = model_zoo.get_config(name)
    if "regnet" in name:
        assert cfg.model.backbone.bottom_up.norm == "FrozenBN" and cfg.model.backbone.bottom_up.freeze_at == 2
        assert list(cfg.model.pixel_std) == [57.375, 57.120, 58.395] and cfg.optimizer.weight_decay == 5e-5
    model = instantiate(cfg.model).eval()
    with torch.no_grad():
        (out,) = model([{"image": torch.rand(3, 64, 96) * 255, "height": 64, "width": 96}])
    assert out["instances"].image_size == (64, 96)
