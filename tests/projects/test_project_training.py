"""The way upstream's project training scripts use the projects: a DefaultTrainer
whose loader is PanopticDeeplabDatasetMapper over a Cityscapes-panoptic style dataset,
whose scheduler comes from detectron2.projects.deeplab.build_lr_scheduler and whose
optimizer is Adam over get_default_optimizer_params, trained for a few iterations."""
import numpy as np
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.projects import get_project_config_file
from detectron2.projects.deeplab import WarmupPolyLR, build_lr_scheduler
from detectron2.projects.panoptic_deeplab import PanopticDeeplabDatasetMapper, add_panoptic_deeplab_config
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping

CFG = "Cityscapes-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024_dsconv.yaml"


class Trainer(DefaultTrainer):
    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=PanopticDeeplabDatasetMapper(cfg))

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_optimizer(cls, cfg, model):
        params = get_default_optimizer_params(
            model,
            base_lr=cfg.SOLVER.BASE_LR,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
            weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
            bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
            weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
        )
        return maybe_add_gradient_clipping(cfg, torch.optim.Adam)(params, cfg.SOLVER.BASE_LR)


def _register(tmp_path, name):
    rng = np.random.RandomState(0)
    dicts = []
    for i in range(2):
        pan = np.ones((72, 96), np.int64) * 7  # road
        pan[10:40, 10:50] = 26001  # car
        pan[45:70, 50:90] = 24001  # person
        rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536], axis=-1).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"pan{i}.png")
        Image.fromarray(rng.randint(0, 255, (72, 96, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
        dicts.append({
            "file_name": str(tmp_path / f"img{i}.png"), "image_id": i, "height": 72, "width": 96,
            "pan_seg_file_name": str(tmp_path / f"pan{i}.png"),
            "segments_info": [
                {"id": 7, "category_id": 0, "iscrowd": 0},
                {"id": 26001, "category_id": 13, "iscrowd": 0},
                {"id": 24001, "category_id": 11, "iscrowd": 0},
            ],
        })
    DatasetCatalog.register(name, lambda: dicts)
    src = MetadataCatalog.get("cityscapes_fine_panoptic_train")
    MetadataCatalog.get(name).set(
        ignore_label=255, label_divisor=1000, thing_classes=src.thing_classes, stuff_classes=src.stuff_classes,
        thing_dataset_id_to_contiguous_id=src.thing_dataset_id_to_contiguous_id,
        stuff_dataset_id_to_contiguous_id=src.stuff_dataset_id_to_contiguous_id,
    )


def test_panoptic_deeplab_trains_with_default_trainer(tmp_path):
    name = "_test_tiny_cityscapes_panoptic"
    _register(tmp_path, name)
    try:
        cfg = get_cfg()
        add_panoptic_deeplab_config(cfg)
        cfg.merge_from_file(get_project_config_file("Panoptic-DeepLab", CFG))
        cfg.merge_from_list([
            "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.RESNETS.NORM", "BN",
            "MODEL.SEM_SEG_HEAD.NORM", "BN", "MODEL.INS_EMBED_HEAD.NORM", "BN",
            "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()",
            "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.CROP.SIZE", "(64, 64)",
            "INPUT.GAUSSIAN_SIGMA", "2", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2",
            "SOLVER.WARMUP_ITERS", "1", "DATALOADER.NUM_WORKERS", "0", "TEST.EVAL_PERIOD", "0",
            "SOLVER.CHECKPOINT_PERIOD", "100", "OUTPUT_DIR", str(tmp_path / "out"),
        ])
        trainer = Trainer(cfg)
        assert isinstance(trainer.scheduler, WarmupPolyLR)
        assert isinstance(trainer.optimizer, torch.optim.Adam)
        trainer.resume_or_load(resume=False)
        trainer.train()
        assert trainer.iter == 2  # == MAX_ITER once training has finished (as upstream)
        hist = trainer.storage.history("total_loss").values()
        assert len(hist) >= 1 and all(np.isfinite(v) for v, _ in hist)
        # warmup and the poly decay keep the lr below the base lr
        assert trainer.optimizer.param_groups[0]["lr"] < cfg.SOLVER.BASE_LR
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
