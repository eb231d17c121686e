"""Find the model-zoo configs inside the installed package, load them, and build models
with or without upstream's trained weights."""
import difflib
import os
import pathlib
from typing import Dict, List, Optional, Union

import torch

from detectron2.config import CfgNode, LazyConfig, get_cfg

__all__ = ["get_checkpoint_url", "get", "get_config_file", "get_config"]

_URL_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"

# Published checkpoints of upstream's model zoo: config name -> "<model id>/<file name>".
# Configs absent here (e.g. LVISv1, the giou and class-agnostic variants, the quick
# schedules) have no published checkpoint.
_CHECKPOINTS: Dict[str, str] = {
    # COCO detection: Faster R-CNN
    "COCO-Detection/faster_rcnn_R_50_C4_1x": "137257644/model_final_721ade.pkl",
    "COCO-Detection/faster_rcnn_R_50_DC5_1x": "137847829/model_final_51d356.pkl",
    "COCO-Detection/faster_rcnn_R_50_FPN_1x": "137257794/model_final_b275ba.pkl",
    "COCO-Detection/faster_rcnn_R_50_C4_3x": "137849393/model_final_f97cb7.pkl",
    "COCO-Detection/faster_rcnn_R_50_DC5_3x": "137849425/model_final_68d202.pkl",
    "COCO-Detection/faster_rcnn_R_50_FPN_3x": "137849458/model_final_280758.pkl",
    "COCO-Detection/faster_rcnn_R_101_C4_3x": "138204752/model_final_298dad.pkl",
    "COCO-Detection/faster_rcnn_R_101_DC5_3x": "138204841/model_final_3e0943.pkl",
    "COCO-Detection/faster_rcnn_R_101_FPN_3x": "137851257/model_final_f6e8b1.pkl",
    "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x": "139173657/model_final_68b088.pkl",
    # COCO detection: RetinaNet
    "COCO-Detection/retinanet_R_50_FPN_1x": "190397773/model_final_bfca0b.pkl",
    "COCO-Detection/retinanet_R_50_FPN_3x": "190397829/model_final_5bd44e.pkl",
    "COCO-Detection/retinanet_R_101_FPN_3x": "190397697/model_final_971ab9.pkl",
    # COCO detection: RPN and Fast R-CNN
    "COCO-Detection/rpn_R_50_C4_1x": "137258005/model_final_450694.pkl",
    "COCO-Detection/rpn_R_50_FPN_1x": "137258492/model_final_02ce48.pkl",
    "COCO-Detection/fast_rcnn_R_50_FPN_1x": "137635226/model_final_e5f7ce.pkl",
    # COCO instance segmentation: Mask R-CNN
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x": "137259246/model_final_9243eb.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_1x": "137260150/model_final_4f86c3.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x": "137260431/model_final_a54504.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_3x": "137849525/model_final_4ce675.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_3x": "137849551/model_final_84107b.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x": "137849600/model_final_f10217.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_C4_3x": "138363239/model_final_a2914c.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_DC5_3x": "138363294/model_final_0464b7.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x": "138205316/model_final_a3ec72.pkl",
    "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x": "139653917/model_final_2d9806.pkl",
    # large-scale-jitter baselines (LazyConfigs)
    "new_baselines/mask_rcnn_R_50_FPN_100ep_LSJ": "42047764/model_final_bb69de.pkl",
    "new_baselines/mask_rcnn_R_50_FPN_200ep_LSJ": "42047638/model_final_89a8d3.pkl",
    "new_baselines/mask_rcnn_R_50_FPN_400ep_LSJ": "42019571/model_final_14d201.pkl",
    "new_baselines/mask_rcnn_R_101_FPN_100ep_LSJ": "42025812/model_final_4f7b58.pkl",
    "new_baselines/mask_rcnn_R_101_FPN_200ep_LSJ": "42131867/model_final_0bb7ae.pkl",
    "new_baselines/mask_rcnn_R_101_FPN_400ep_LSJ": "42073830/model_final_f96b26.pkl",
    "new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_100ep_LSJ": "42047771/model_final_b7fbab.pkl",
    "new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_200ep_LSJ": "42132721/model_final_5d87c1.pkl",
    "new_baselines/mask_rcnn_regnetx_4gf_dds_FPN_400ep_LSJ": "42025447/model_final_f1362d.pkl",
    "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ": "42047784/model_final_6ba57e.pkl",
    "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_200ep_LSJ": "42047642/model_final_27b9c1.pkl",
    "new_baselines/mask_rcnn_regnety_4gf_dds_FPN_400ep_LSJ": "42045954/model_final_ef3a80.pkl",
    # COCO person keypoints: Keypoint R-CNN
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x": "137261548/model_final_04e291.pkl",
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x": "137849621/model_final_a6e10b.pkl",
    "COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x": "138363331/model_final_997cc7.pkl",
    "COCO-Keypoints/keypoint_rcnn_X_101_32x8d_FPN_3x": "139686956/model_final_5ad38f.pkl",
    # COCO panoptic segmentation: Panoptic FPN
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x": "139514544/model_final_dbfeb4.pkl",
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x": "139514569/model_final_c10459.pkl",
    "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x": "139514519/model_final_cafdb1.pkl",
    # LVIS v0.5 instance segmentation
    "LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x": "144219072/model_final_571f7c.pkl",
    "LVISv0.5-InstanceSegmentation/mask_rcnn_R_101_FPN_1x": "144219035/model_final_824ab5.pkl",
    "LVISv0.5-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_1x": "144219108/model_final_5e3439.pkl",
    # Cityscapes and Pascal VOC
    "Cityscapes/mask_rcnn_R_50_FPN": "142423278/model_final_af9cf5.pkl",
    "PascalVOC-Detection/faster_rcnn_R_50_C4": "142202221/model_final_b1acc2.pkl",
    # other settings
    "Misc/mask_rcnn_R_50_FPN_1x_dconv_c3-c5": "138602867/model_final_65c703.pkl",
    "Misc/mask_rcnn_R_50_FPN_3x_dconv_c3-c5": "144998336/model_final_821d0b.pkl",
    "Misc/cascade_mask_rcnn_R_50_FPN_1x": "138602847/model_final_e9d89b.pkl",
    "Misc/cascade_mask_rcnn_R_50_FPN_3x": "144998488/model_final_480dd8.pkl",
    "Misc/mask_rcnn_R_50_FPN_3x_syncbn": "169527823/model_final_3b3c51.pkl",
    "Misc/mask_rcnn_R_50_FPN_3x_gn": "138602888/model_final_dc5d9e.pkl",
    "Misc/scratch_mask_rcnn_R_50_FPN_3x_gn": "138602908/model_final_01ca85.pkl",
    "Misc/scratch_mask_rcnn_R_50_FPN_9x_gn": "183808979/model_final_da7b4c.pkl",
    "Misc/scratch_mask_rcnn_R_50_FPN_9x_syncbn": "184226666/model_final_5ce33e.pkl",
    "Misc/panoptic_fpn_R_101_dconv_cascade_gn_3x": "139797668/model_final_be35db.pkl",
    # this one was published from an intermediate iteration
    "Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv": "18131413/model_0039999_e76410.pkl",
    # Detectron1 comparisons
    "Detectron1-Comparisons/faster_rcnn_R_50_FPN_noaug_1x": "137781054/model_final_7ab50c.pkl",
    "Detectron1-Comparisons/mask_rcnn_R_50_FPN_noaug_1x": "137781281/model_final_62ca52.pkl",
    "Detectron1-Comparisons/keypoint_rcnn_R_50_FPN_1x": "137781195/model_final_cce136.pkl",
}


def _configs_root() -> pathlib.Path:
    """The ``configs`` folder of the installed package."""
    try:
        from importlib.resources import files  # Python >= 3.9
    except ImportError:
        return pathlib.Path(__file__).resolve().parent / "configs"
    return pathlib.Path(str(files("detectron2.model_zoo") / "configs"))


def _all_config_names() -> List[str]:
    root = _configs_root()
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in (".yaml", ".py")]
    return sorted(n for n in names if not n.endswith("__init__.py"))


def _strip_extension(config_path: str) -> str:
    name, ext = os.path.splitext(config_path)
    return name if ext in (".yaml", ".py") else config_path




def get_checkpoint_url(config_path: str) -> str:
    """The URL of the trained checkpoint of a model-zoo config.

    Args:
        config_path: a config path relative to ``detectron2/model_zoo/configs``, e.g.
            "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"

    Raises:
        RuntimeError: if upstream published no checkpoint for this config.
    """
    name = _strip_extension(config_path)
    suffix = _CHECKPOINTS.get(name)
    if suffix is None:
        raise RuntimeError(
            f"{config_path} not available in Model Zoo: it has no published checkpoint "
            f"(it is only a config, or not a model-zoo config at all)." + _near_hint(name, list(_CHECKPOINTS))
        )
    return f"{_URL_PREFIX}{name}/{suffix}"


def _near_hint(name: str, candidates: List[str]) -> str:
    near = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    return f" Near matches: {', '.join(near)}." if near else ""


def get_config_file(config_path: str) -> str:
    """The file-system path of a config shipped in the model zoo.

    Args:
        config_path: a path relative to ``detectron2/model_zoo/configs``, e.g.
            "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"

    Raises:
        RuntimeError: if no such config exists (the message lists near matches).
    """
    path = _configs_root() / config_path
    if not path.is_file():
        raise RuntimeError(
            f"{config_path} not available in Model Zoo (no such file under {_configs_root()})."
            + _near_hint(config_path, _all_config_names())
        )
    return str(path)


def get_config(config_path: str, trained: bool = False) -> Union[CfgNode, "object"]:
    """Load a model-zoo config: a ``CfgNode`` for a YAML file, an omegaconf
    ``DictConfig`` for a Python (LazyConfig) file.

    Args:
        trained: if True, point the config's weights (``MODEL.WEIGHTS``, or
            ``train.init_checkpoint`` of a LazyConfig) at the trained checkpoint. If
            False, the weights the config names (usually an ImageNet backbone) stay.
    """
    cfg_file = get_config_file(config_path)
    if cfg_file.endswith(".yaml"):
        cfg = get_cfg()
        cfg.merge_from_file(cfg_file)
        if trained:
            cfg.MODEL.WEIGHTS = get_checkpoint_url(config_path)
        return cfg
    cfg = LazyConfig.load(cfg_file)
    if trained:
        url = get_checkpoint_url(config_path)
        if "train" not in cfg or "init_checkpoint" not in cfg.train:
            raise ValueError(f"{config_path} has no 'train.init_checkpoint' to set to {url}.")
        cfg.train.init_checkpoint = url
    return cfg


def get(config_path: str, trained: bool = False, device: Optional[str] = None) -> torch.nn.Module:
    """Build the model of a model-zoo config and load its weights.

    Args:
        trained: load the trained model-zoo checkpoint (downloaded on first use);
            otherwise load what the config names, typically an ImageNet backbone.
        device: where to put the model; defaults to "cpu" when CUDA is unavailable,
            else to the config's device.

    Example:
        model = model_zoo.get("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml", trained=True)
    """
    cfg = get_config(config_path, trained)
    if device is None and not torch.cuda.is_available():
        device = "cpu"
    if isinstance(cfg, CfgNode):
        if device is not None:
            cfg.MODEL.DEVICE = device
        model = _build_model(cfg)
        weights = cfg.MODEL.WEIGHTS
    else:
        from detectron2.config import instantiate

        model = instantiate(cfg.model)
        if device is not None:
            model = model.to(device)
        weights = cfg.train.init_checkpoint if "train" in cfg and "init_checkpoint" in cfg.train else ""
    if weights:
        _load_weights(model, weights)
    return model


def _build_model(cfg: CfgNode) -> torch.nn.Module:
    # modeling sits above checkpoint/config but below model_zoo; imported late so
    # that the configs and URLs are usable without building anything
    from detectron2.modeling import build_model

    return build_model(cfg)


def _load_weights(model: torch.nn.Module, weights: str) -> None:
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.utils.file_io import DownloadError

    try:
        DetectionCheckpointer(model).load(weights)
    except DownloadError:
        raise  # already one line with the URL and where to put the file
    except (OSError, ValueError, RuntimeError) as e:  # URLError is an OSError
        if "://" not in weights:
            raise
        raise RuntimeError(
            f"Could not download or load the checkpoint {weights} ({type(e).__name__}: {e}). "
            f"Check the network connection (or proxy), or download the file yourself and "
            f"load it with DetectionCheckpointer(model).load(local_path)."
        ) from e
