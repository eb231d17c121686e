"""The three projects at their shipped configs' real sizes on a GPU: a training step
(finite losses, gradients) and inference, and CUDA inference equal to CPU inference for
the same weights. SyncBN is replaced by BN (one process)."""
import copy

import pytest
import torch

from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.projects import get_project_config_file
from detectron2.projects.deeplab import add_deeplab_config
from detectron2.projects.panoptic_deeplab import PanopticDeepLabTargetGenerator, add_panoptic_deeplab_config
from detectron2.projects.point_rend import add_pointrend_config, point_sample
from detectron2.structures import BitMasks, Instances
from detectron2.utils.events import EventStorage

pytestmark = pytest.mark.cuda


def _cfg(project, add, path):
    cfg = get_cfg()
    add(cfg)
    cfg.merge_from_file(get_project_config_file(project, path))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cuda"
    for node in (cfg.MODEL.RESNETS, cfg.MODEL.SEM_SEG_HEAD, getattr(cfg.MODEL, "INS_EMBED_HEAD", None)):
        if node is not None and node.get("NORM") == "SyncBN":
            node.NORM = "BN"
    return cfg


def _train_step(model, inputs):
    model.train()
    with EventStorage():
        losses = model(inputs)
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    total.backward()
    return losses


def test_point_sample_cuda_equals_cpu():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 16, 40, 50, generator=g)
    pts = torch.rand(3, 500, 2, generator=g)
    torch.testing.assert_close(point_sample(x.cuda(), pts.cuda(), align_corners=False).cpu(),
                               point_sample(x, pts, align_corners=False), rtol=1e-5, atol=1e-5)


def test_pointrend_rcnn_cuda():
    cfg = _cfg("PointRend", add_pointrend_config, "InstanceSegmentation/pointrend_rcnn_R_50_FPN_3x_coco.yaml")
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    torch.manual_seed(0)
    model = build_model(cfg)
    inputs = []
    for h, w in ((800, 1088), (640, 960)):
        masks = torch.zeros(3, h, w, dtype=torch.bool)
        masks[0, 100:400, 100:500] = True
        masks[1, 300:600, 400:900] = True
        masks[2, 50:200, 600:800] = True
        inst = Instances((h, w), gt_masks=BitMasks(masks), gt_classes=torch.tensor([0, 5, 79]))
        inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
        inputs.append({"image": torch.rand(3, h, w) * 255, "instances": inst})
    losses = _train_step(model, inputs)
    assert "loss_mask_point" in losses
    model.eval()
    with torch.no_grad():
        out = model([{"image": inputs[0]["image"]}])[0]["instances"]
        assert out.pred_masks.shape[1:] == (800, 1088) and len(out) > 0
        # the mask head on the same detections and features, on CUDA and on CPU
        images = model.preprocess_image([{"image": inputs[0]["image"]}])
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features)
        dets, _ = model.roi_heads(images, features, proposals)
        head_cpu = copy.deepcopy(model.roi_heads.mask_head).cpu()
        dets_cpu = [Instances(d.image_size, pred_boxes=d.pred_boxes.to("cpu"), pred_classes=d.pred_classes.cpu()) for d in dets]
        head_cpu({k: features[k].cpu() for k in cfg.MODEL.ROI_HEADS.IN_FEATURES}, dets_cpu)
    diff = (dets[0].pred_masks.cpu() - dets_cpu[0].pred_masks).abs()
    # subdivision picks the most uncertain points: near-ties may pick others on each device
    assert (diff > 1e-2).float().mean() < 1e-3, diff.max()


@pytest.mark.parametrize("path", ["deeplab_v3_R_103_os16_mg124_poly_90k_bs16.yaml", "deeplab_v3_plus_R_103_os16_mg124_poly_90k_bs16.yaml"])
def test_deeplab_cuda(path):
    cfg = _cfg("DeepLab", add_deeplab_config, "Cityscapes-SemanticSegmentation/" + path)
    torch.manual_seed(0)
    model = build_model(cfg)
    inputs = [{"image": torch.rand(3, 512, 1024) * 255, "sem_seg": torch.randint(0, 19, (512, 1024))} for _ in range(2)]
    _train_step(model, inputs)
    model.eval()
    with torch.no_grad():
        out = model([{"image": inputs[0]["image"]}])[0]["sem_seg"]
        ref = copy.deepcopy(model).cpu()([{"image": inputs[0]["image"]}])[0]["sem_seg"]
    assert out.shape == (19, 512, 1024)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-3, atol=1e-3)


def test_panoptic_deeplab_cuda():
    cfg = _cfg("Panoptic-DeepLab", add_panoptic_deeplab_config,
               "Cityscapes-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024_dsconv.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    gen = PanopticDeepLabTargetGenerator(255, range(11, 19), sigma=10, ignore_stuff_in_offset=True,
                                         small_instance_area=4096, small_instance_weight=3)
    import numpy as np

    pan = np.ones((512, 1024), np.int64)
    pan[100:300, 100:400] = 2
    pan[250:500, 600:900] = 3
    segs = [{"id": 1, "category_id": 0, "iscrowd": 0}, {"id": 2, "category_id": 13, "iscrowd": 0},
            {"id": 3, "category_id": 11, "iscrowd": 0}]
    inputs = []
    for _ in range(2):
        d = {"image": torch.rand(3, 512, 1024) * 255}
        d.update(gen(pan, segs))
        inputs.append(d)
    losses = _train_step(model, inputs)
    assert set(losses) == {"loss_sem_seg", "loss_center", "loss_offset"}
    model.eval()
    with torch.no_grad():
        out = model([{"image": inputs[0]["image"]}])[0]
    assert out["panoptic_seg"][0].shape == (512, 1024)
