"""Train or evaluate a model described by a yacs config, on one or many GPUs/machines.

    python -m detectron2.tools.train_net --config-file cfg.yaml --num-gpus 8
    detectron2-train --config-file cfg.yaml --eval-only MODEL.WEIGHTS model_final.pth
    detectron2-train --config-file cfg.yaml --resume      # continue from OUTPUT_DIR

It is the standard script; it covers the common workflow, and projects with other
needs are expected to copy and change it rather than add options to it.
"""
import argparse
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, hooks, launch
from detectron2.engine._evaluators import evaluator_for_dataset
from detectron2.evaluation import verify_results
from detectron2.utils import comm


class Trainer(DefaultTrainer):
    """DefaultTrainer plus test-time augmentation (cfg.TEST.AUG)."""

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        return evaluator_for_dataset(cfg, dataset_name, output_folder)

    @classmethod
    def test_with_TTA(cls, cfg: CfgNode, model) -> Dict[str, Any]:
        """Evaluate with GeneralizedRCNNWithTTA (flips and TEST.AUG.MIN_SIZES); results
        are keyed "<task>_TTA"."""
        from detectron2.modeling import GeneralizedRCNNWithTTA

        logging.getLogger("detectron2.trainer").info("Running inference with test-time augmentation ...")
        model = GeneralizedRCNNWithTTA(cfg, model)
        evaluators = [
            cls.build_evaluator(cfg, name, output_folder=os.path.join(cfg.OUTPUT_DIR, "inference_TTA"))
            for name in cfg.DATASETS.TEST
        ]
        res = cls.test(cfg, model, evaluators)
        return OrderedDict({k + "_TTA": v for k, v in res.items()})


def setup(args: argparse.Namespace) -> CfgNode:
    """The config of args.config_file with the command-line overrides, frozen, after
    default_setup (output dir, logs, seed)."""
    cfg = get_cfg()
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts or [])
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args: argparse.Namespace):
    """Runs in every process that launch() starts."""
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            res.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            verify_results(cfg, res)
        return res

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    if cfg.TEST.AUG.ENABLED:
        trainer.register_hooks([hooks.EvalHook(0, lambda: trainer.test_with_TTA(cfg, trainer.model))])
    return trainer.train()


def cli(argv: Optional[List[str]] = None) -> None:
    """The ``detectron2-train`` command."""
    args = default_argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    cli()
