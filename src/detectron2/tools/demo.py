"""``detectron2-demo`` (also ``demo/demo.py``): run a model on images and write pictures of
its predictions, the quick check that an install works.

    # model-zoo weights (downloaded on first use; offline: one line saying where to put them)
    detectron2-demo --config-file COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml \\
        --input photo.jpg --output out.png
    # offline: the shapes model that scripts/train_shapes.py trained
    detectron2-demo --config-file shapes/config.yaml --input shapes/data/shapes_val/images/*.png \\
        --output preds/ --opts MODEL.WEIGHTS shapes/model_final.pth
    # any config with random weights (draws whatever passes the threshold)
    detectron2-demo --config-file cfg.yaml --input img.png --output out.png --opts MODEL.WEIGHTS ""

--config-file is a YAML file or a model-zoo config name (its trained weights are used
unless --opts sets MODEL.WEIGHTS). --device auto (the default) uses CUDA when it is
usable and the CPU otherwise. Webcam and video input of upstream's demo are not supported.
"""
import argparse
import glob
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from detectron2 import model_zoo
from detectron2.config import CfgNode, get_cfg
from detectron2.data import MetadataCatalog
from detectron2.data.datasets.shapes import SHAPE_CLASSES
from detectron2.data.detection_utils import read_image
from detectron2.engine.defaults import DefaultPredictor, DeviceUnavailableError
from detectron2.utils.file_io import DownloadError
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import ColorMode, Visualizer

__all__ = ["get_parser", "setup_cfg", "draw_predictions", "cli"]

logger = logging.getLogger("detectron2.demo")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detectron2-demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--config-file", required=True, metavar="FILE", help="YAML config file or model-zoo name")
    parser.add_argument("--input", nargs="+", required=True, help="image files or glob patterns")
    parser.add_argument("--output", required=True,
                        help="picture to write (one input), or a directory (one picture per input)")
    parser.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum score drawn")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA when usable, else the CPU")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config KEY VALUE pairs, last")
    return parser


def _load_config(config_file: str) -> CfgNode:
    if os.path.isfile(config_file):
        cfg = get_cfg()
        cfg.set_new_allowed(True)  # configs saved by scripts (e.g. train_shapes) are complete
        cfg.merge_from_file(config_file)
        cfg.set_new_allowed(False)
        return cfg
    try:
        cfg = model_zoo.get_config(config_file, trained=True)
    except RuntimeError as e:
        raise FileNotFoundError(f"--config-file {config_file!r} is neither a file nor a model-zoo config ({e})") from None
    if not isinstance(cfg, CfgNode):
        raise ValueError(f"--config-file {config_file!r} is a LazyConfig; the demo takes YAML (CfgNode) configs")
    return cfg


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """The config of ``args``: file or zoo name, --opts, thresholds and the device."""
    cfg = _load_config(args.config_file)
    cfg.merge_from_list(args.opts)
    threshold = args.confidence_threshold
    cfg.MODEL.RETINANET.SCORE_THRESH_TEST = threshold
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = threshold
    cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = threshold
    if args.device == "auto":
        cfg.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        cfg.MODEL.DEVICE = args.device
    cfg.freeze()
    return cfg


def _metadata(cfg: CfgNode) -> Any:
    name = cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "__unused"
    metadata = MetadataCatalog.get(name)
    # A model trained by scripts/train_shapes.py names datasets this process has not
    # registered (their folder is the trainer's); their classes are known.
    if name.startswith("shapes") and not hasattr(metadata, "thing_classes"):
        metadata.set(thing_classes=list(SHAPE_CLASSES))
    return metadata


def draw_predictions(rgb_image: np.ndarray, predictions: Dict[str, Any], metadata: Any) -> np.ndarray:
    """An RGB picture of ``predictions`` (panoptic, semantic and/or instances) on the image."""
    visualizer = Visualizer(rgb_image, metadata, instance_mode=ColorMode.IMAGE)
    if "panoptic_seg" in predictions:
        panoptic, segments = predictions["panoptic_seg"]
        out = visualizer.draw_panoptic_seg(panoptic.to("cpu"), segments)
    elif "sem_seg" in predictions:
        out = visualizer.draw_sem_seg(predictions["sem_seg"].argmax(dim=0).to("cpu"))
    else:
        out = None
    if "instances" in predictions and "panoptic_seg" not in predictions:
        out = visualizer.draw_instance_predictions(predictions["instances"].to("cpu"))
    if out is None:
        raise ValueError(f"the model's outputs have nothing the demo can draw: {sorted(predictions)}")
    return out.get_image()


def _inputs(patterns: List[str]) -> List[str]:
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise FileNotFoundError(f"--input {pattern!r}: no such file")
        paths += matches
    return paths


def _output_path(output: str, path: str, many: bool, used: set) -> str:
    if many or os.path.isdir(output) or output.endswith(os.sep):
        os.makedirs(output, exist_ok=True)
        name = os.path.splitext(os.path.basename(path))[0]
        if name in used:  # same file name in another folder: keep both pictures
            name = os.path.basename(os.path.dirname(os.path.abspath(path))) + "_" + name
        used.add(name)
        return os.path.join(output, name + ".png")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    return output


def run(args: argparse.Namespace) -> List[str]:
    """Predict and draw every input; returns the pictures written."""
    paths = _inputs(args.input)
    cfg = setup_cfg(args)
    predictor = DefaultPredictor(cfg)
    metadata = _metadata(cfg)
    written: List[str] = []
    used: set = set()
    for path in paths:
        bgr = read_image(path, format="BGR")
        start = time.perf_counter()
        predictions = predictor(bgr)
        elapsed = time.perf_counter() - start
        found = len(predictions["instances"]) if "instances" in predictions else "no"
        logger.info(f"{path}: {found} instances in {elapsed:.2f} s ({cfg.MODEL.DEVICE})")
        picture = draw_predictions(bgr[:, :, ::-1], predictions, metadata)
        target = _output_path(args.output, path, len(paths) > 1, used)
        from PIL import Image

        Image.fromarray(picture).save(target)
        written.append(target)
    logger.info(f"wrote {len(written)} picture(s): {', '.join(written)}")
    return written


def cli(argv: Optional[List[str]] = None) -> int:
    """The ``detectron2-demo`` command: errors a user can fix are one line, not a traceback."""
    args = get_parser().parse_args(argv)
    setup_logger()
    try:
        run(args)
    except (DownloadError, FileNotFoundError, DeviceUnavailableError) as e:
        print(f"detectron2-demo: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
