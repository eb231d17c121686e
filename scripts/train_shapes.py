"""Train Mask R-CNN on the generated shapes dataset and evaluate it with COCOEvaluator:
the end-to-end check of data -> model -> trainer -> checkpoint -> evaluation.

    python scripts/train_shapes.py --output /tmp/shapes              # small model, CPU, minutes
    python scripts/train_shapes.py --output /tmp/shapes --resume     # continue after a kill
    python scripts/train_shapes.py --output /tmp/s --full-size --device cuda --num-gpus 2

The small model is an R18-FPN Mask R-CNN with 64-channel FPN trained from scratch (no
pretrained weights exist offline) with BatchNorm; --full-size uses the R50-FPN of the
model zoo's Base-RCNN-FPN, also from scratch. The model is evaluated once, after
training; the final metrics (COCO bbox and segm AP on the held-out split) are written to
OUTPUT/results.json and printed (OUTPUT/metrics.json is the trainer's event log, one JSON
line per logged iteration). OUTPUT/config.yaml and OUTPUT/model_final.pth are what
`detectron2-demo --config-file OUTPUT/config.yaml --opts MODEL.WEIGHTS OUTPUT/model_final.pth`
needs to draw predictions.

Short runs stay stable: warm-up covers the first quarter (at most 100 iterations) and
the gradient norm of the whole model is clipped, so a from-scratch BatchNorm model does
not blow up at 40 iterations of 4 images.

Resuming is exact: the trainer's checkpoints carry the RNG states (SimpleTrainer), and
the training sampler here skips the indices the finished iterations consumed, so a run
killed and resumed ends with the same weights and metrics as one that never stopped.
"""
import argparse
import itertools
import json
import os
from typing import Any, Dict, Iterator, Optional

import torch

from detectron2 import model_zoo
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, build_detection_train_loader
from detectron2.data.datasets.shapes import generate_shapes_dataset, register_shapes
from detectron2.data.samplers import TrainingSampler
from detectron2.engine import DefaultTrainer, default_setup, launch
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm

TRAIN, VAL = "shapes_train", "shapes_val"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="output directory (checkpoints, logs, results.json)")
    parser.add_argument("--data", default=None, help="dataset directory (default: OUTPUT/data)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--num-gpus", type=int, default=1, help="processes to launch (CPU: gloo processes)")
    parser.add_argument("--iters", type=int, default=300, help="training iterations")
    parser.add_argument("--batch", type=int, default=4, help="images per iteration, all processes together")
    parser.add_argument("--lr", type=float, default=0.02, help="base learning rate")
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--full-size", action="store_true", help="R50-FPN (256-channel FPN) instead of R18-FPN-64")
    parser.add_argument("--amp", action="store_true", help="mixed precision training (AMPTrainer)")
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--checkpoint-period", type=int, default=50)
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT's last checkpoint")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def shapes_cfg(args: argparse.Namespace) -> CfgNode:
    """Base-RCNN-FPN's Mask R-CNN, sized for 128 px images of 3 classes, trained from scratch."""
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 128
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 128
    # At most 4 shapes an image: far fewer proposals than COCO's 1000 suffice.
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 1000
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 500
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 300
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 200
    # Shapes span 1/8..1/3 of the image side: anchors from 8 px on p2 to 128 px on p6.
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[8], [16], [32], [64], [128]]
    if not args.full_size:
        cfg.MODEL.RESNETS.DEPTH = 18
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
        cfg.MODEL.FPN.OUT_CHANNELS = 64
        cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 256
        cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 64
    cfg.INPUT.MIN_SIZE_TRAIN = (args.image_size,)
    cfg.INPUT.MAX_SIZE_TRAIN = args.image_size
    cfg.INPUT.MIN_SIZE_TEST = args.image_size
    cfg.INPUT.MAX_SIZE_TEST = args.image_size
    cfg.DATASETS.TRAIN = (TRAIN,)
    cfg.DATASETS.TEST = (VAL,)
    cfg.DATALOADER.NUM_WORKERS = args.workers
    cfg.SOLVER.IMS_PER_BATCH = args.batch
    cfg.SOLVER.BASE_LR = args.lr
    cfg.SOLVER.MAX_ITER = args.iters
    cfg.SOLVER.STEPS = (int(args.iters * 0.75), int(args.iters * 0.9))
    cfg.SOLVER.WARMUP_ITERS = min(100, args.iters // 4)
    # From scratch with BN and a few images a batch, one bad batch can throw the weights
    # far off (NaN a few iterations later): bound the step of the whole model.
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 5.0
    cfg.SOLVER.CHECKPOINT_PERIOD = args.checkpoint_period
    cfg.SOLVER.AMP.ENABLED = args.amp
    cfg.TEST.EVAL_PERIOD = 0  # evaluated once, after training
    cfg.OUTPUT_DIR = args.output
    cfg.SEED = args.seed
    return cfg


class _SkippingSampler(torch.utils.data.Sampler):
    """A TrainingSampler whose stream starts after its first ``skip`` indices: what the
    iterations before a resume had consumed."""

    def __init__(self, sampler: TrainingSampler, skip: int):
        self._sampler, self._skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self._sampler), self._skip, None)


class ShapesTrainer(DefaultTrainer):
    @property
    def last_eval_results(self) -> Optional[Dict[str, Any]]:
        """What the EvalHook's evaluation returned (None when it did not run)."""
        return getattr(self, "_last_eval_results", None)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str):
        return COCOEvaluator(dataset_name, output_dir=os.path.join(cfg.OUTPUT_DIR, "inference"))

    def resume_or_load(self, resume: bool = True) -> None:
        super().resume_or_load(resume)
        # A sampler seeded by cfg.SEED that starts where the finished iterations stopped.
        per_rank = self.cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
        size = len(DatasetCatalog.get(TRAIN))
        sampler = _SkippingSampler(TrainingSampler(size, seed=self.cfg.SEED), self.start_iter * per_rank)
        # seed: the loader's own generator gives its workers' base seed, so that creating
        # its iterator does not draw from the global RNG restored from the checkpoint.
        loader = lambda: build_detection_train_loader(self.cfg, sampler=sampler, seed=self.cfg.SEED)  # noqa: E731
        self._trainer.reset_data_loader(loader)


def register(args: argparse.Namespace) -> None:
    root = args.data or os.path.join(args.output, "data")
    for name, num, seed in ((TRAIN, args.train_images, 0), (VAL, args.val_images, 1)):
        folder = os.path.join(root, name)
        if comm.is_main_process():
            generate_shapes_dataset(folder, num_images=num, image_size=args.image_size, seed=seed)
        comm.synchronize()
        if name not in DatasetCatalog.list():
            register_shapes(name, folder)


def main(args: argparse.Namespace) -> Dict[str, Any]:
    cfg = shapes_cfg(args)
    cfg.freeze()
    default_setup(cfg, argparse.Namespace(config_file=""))
    register(args)
    trainer = ShapesTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    # The EvalHook evaluated after the last iteration; a run resumed after it had
    # already finished trained nothing and is evaluated here instead.
    results = trainer.last_eval_results
    if results is None:
        results = ShapesTrainer.test(cfg, trainer.model)
    if comm.is_main_process():
        path = os.path.join(cfg.OUTPUT_DIR, "results.json")
        with open(path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(path + ".tmp", path)
        print(json.dumps({task: {k: round(v, 3) for k, v in m.items() if k in ("AP", "AP50")} for task, m in results.items()}))
    return results


if __name__ == "__main__":
    args = parse_args()
    if args.device == "cuda" or args.num_gpus > 1:
        launch(main, args.num_gpus, dist_url="auto", args=(args,))
    else:
        main(args)
