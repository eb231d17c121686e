"""CfgNode file merging with _BASE_ chains and versions, global config, compat."""
import logging
import pathlib

import pytest
import yaml

from detectron2.config import (
    CfgNode,
    downgrade_config,
    get_cfg,
    global_cfg,
    set_global_cfg,
    upgrade_config,
)
from detectron2.config.compat import guess_version

DATA = pathlib.Path(__file__).parent / "data"


def test_base_chain_is_merged_in_order():
    cfg = get_cfg()
    cfg.merge_from_file(str(DATA / "sub" / "grandchild.yaml"))
    assert cfg.MODEL.MASK_ON is True  # from base
    assert cfg.MODEL.RESNETS.DEPTH == 50  # child overrides base
    assert cfg.SOLVER.MAX_ITER == 270000  # child
    assert cfg.SOLVER.BASE_LR == 0.02  # base
    assert tuple(cfg.SOLVER.STEPS) == (60000, 80000)  # "(a, b)" strings are literals
    assert cfg.SOLVER.IMS_PER_BATCH == 8  # grandchild
    assert cfg.OUTPUT_DIR == "./grandchild_output"
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[32], [64], [128], [256], [512]]
    assert "_BASE_" not in cfg
    # Untouched keys keep their defaults.
    assert cfg.MODEL.DEVICE == "cuda" and cfg.VERSION == 2


def test_unknown_key_is_rejected():
    cfg = get_cfg()
    with pytest.raises(KeyError, match="NOT_A_KEY"):
        cfg.merge_from_file(str(DATA / "unknown_key.yaml"))


def test_missing_file_is_reported():
    with pytest.raises(FileNotFoundError, match="does_not_exist.yaml"):
        get_cfg().merge_from_file(str(DATA / "does_not_exist.yaml"))


def test_python_tuple_tag_is_data_and_loads_safely():
    cfg = get_cfg()
    cfg.merge_from_file(str(DATA / "python_tag.yaml"))
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (640, 672, 704)


def test_type_mismatch_is_rejected():
    cfg = get_cfg()
    with pytest.raises(ValueError):
        cfg.merge_from_list(["SOLVER.MAX_ITER", "'many'"])


def test_newer_config_version_is_rejected():
    with pytest.raises(ValueError, match="v3"):
        get_cfg().merge_from_file(str(DATA / "future.yaml"))


def test_v1_file_is_upgraded_on_merge(caplog):
    cfg = get_cfg()
    with caplog.at_level(logging.WARNING):
        cfg.merge_from_file(str(DATA / "v1_rcnn.yaml"))
    assert "no VERSION" in caplog.text and "upgrading" in caplog.text
    assert cfg.VERSION == 2
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.3
    assert cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST == 0.4
    assert cfg.TEST.DETECTIONS_PER_IMAGE == 50
    assert cfg.TEST.AUG.ENABLED is True
    assert tuple(cfg.TEST.AUG.MIN_SIZES) == (600, 700)
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[16, 32, 64]]
    assert cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS == [[1.0]]
    # The result has exactly the keys of the latest layout.
    assert _keys(cfg) == _keys(get_cfg())


def test_v1_retinanet_anchors_come_from_retinanet():
    cfg = get_cfg()
    cfg.merge_from_file(str(DATA / "v1_retinanet.yaml"))
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[8, 16]]
    assert cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS == [[0.5, 2.0]]
    assert cfg.MODEL.RETINANET.SCORE_THRESH_TEST == 0.1
    assert cfg.MODEL.RETINANET.NMS_THRESH_TEST == 0.6
    assert cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST == 500
    assert _keys(cfg) == _keys(get_cfg())


def _keys(cfg, prefix=""):
    out = set()
    for k, v in cfg.items():
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
        else:
            out.add(prefix + k)
    return out


def test_downgrade_to_v1_renames_keys():
    cfg = get_cfg()
    cfg.MODEL.WEIGHTS = "w.pkl"
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[4, 8]]
    cfg.TEST.AUG.FLIP = False
    old = downgrade_config(cfg, to_version=1)
    assert old.VERSION == 1 and cfg.VERSION == 2  # a copy, the input is untouched
    assert old.MODEL.WEIGHT == "w.pkl" and "WEIGHTS" not in old.MODEL
    assert old.MODEL.RPN.ANCHOR_SIZES == [[4, 8]]
    assert old.MODEL.RETINANET.ANCHOR_SIZES == [[4, 8]]
    assert old.MODEL.RETINANET.ANCHOR_STRIDES == []
    assert "SIZES" not in old.MODEL.ANCHOR_GENERATOR
    assert old.TEST.AUG_FLIP is False
    assert "AUG" not in old.TEST  # emptied parents are removed
    assert old.MODEL.RPN.HEAD_NAME == "StandardRPNHead"  # renamed only below v1


def test_downgrade_to_v0_moves_rpn_head_name():
    old = downgrade_config(get_cfg(), to_version=0)
    assert old.VERSION == 0
    assert old.MODEL.RPN_HEAD.NAME == "StandardRPNHead"
    assert "HEAD_NAME" not in old.MODEL.RPN


@pytest.mark.parametrize("version", [0, 1])
def test_downgrade_upgrade_round_trip(version):
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.7
    cfg.MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH = 0.25
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[1.0, 3.0]]
    back = upgrade_config(downgrade_config(cfg, to_version=version))
    assert back == cfg
    assert back.dump() == cfg.dump()


def test_upgrade_from_v1_config_object():
    old = downgrade_config(get_cfg(), to_version=1)
    old.MODEL.ROI_HEADS.NMS = 0.3
    old.TEST.AUG_MAX_SIZE = 2000
    new = upgrade_config(old)
    assert new.VERSION == 2
    assert new.MODEL.ROI_HEADS.NMS_THRESH_TEST == 0.3
    assert new.TEST.AUG.MAX_SIZE == 2000
    assert upgrade_config(new) == new  # already latest: unchanged copy
    with pytest.raises(ValueError):
        upgrade_config(new, to_version=1)
    with pytest.raises(ValueError):
        downgrade_config(old, to_version=2)


def test_guess_version():
    assert guess_version(CfgNode({"MODEL": {"WEIGHT": "x"}}), "a.yaml") == 1
    assert guess_version(CfgNode({"TEST": {"AUG_ON": True}}), "a.yaml") == 1
    assert guess_version(CfgNode({"MODEL": {"WEIGHTS": "x"}}), "a.yaml") == 2


def test_dump_and_reload(tmp_path):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 0.5
    cfg.DATASETS.TRAIN = ("coco_2017_train",)
    path = tmp_path / "dumped.yaml"
    path.write_text(cfg.dump())
    again = get_cfg()
    again.merge_from_file(str(path))
    # YAML has no tuples: compare the loaded dumps (tuples and lists dump alike).
    assert yaml.safe_load(again.dump()) == yaml.safe_load(cfg.dump())
    assert again.SOLVER.BASE_LR == 0.5 and list(again.DATASETS.TRAIN) == ["coco_2017_train"]


def test_merge_from_file_requires_latest_version():
    old = downgrade_config(get_cfg(), to_version=1)
    with pytest.raises(ValueError, match="latest version"):
        old.merge_from_file(str(DATA / "base.yaml"))


def test_set_global_cfg_updates_the_shared_object():
    from detectron2 import config as config_module

    cfg = get_cfg()
    cfg.SEED = 1234
    try:
        set_global_cfg(cfg)
        assert config_module.global_cfg is global_cfg
        assert global_cfg.SEED == 1234
        assert global_cfg.MODEL.DEVICE == "cuda"
    finally:
        set_global_cfg(CfgNode())
    assert len(global_cfg) == 0


def test_python_config_file_needs_allow_unsafe():
    cfg = get_cfg()
    cfg.merge_from_file(str(DATA / "python_cfg.py"), allow_unsafe=True)
    assert cfg.SOLVER.BASE_LR == 0.25 and tuple(cfg.SOLVER.STEPS) == (10, 20)
    with pytest.raises(ValueError, match="allow_unsafe"):
        get_cfg().merge_from_file(str(DATA / "python_cfg.py"))  # safe by default


def test_model_zoo_style_config():
    cfg = get_cfg()
    cfg.merge_from_file(str(DATA / "mask_rcnn_like.yaml"))
    assert cfg.MODEL.MASK_ON and cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"
    assert cfg.MODEL.RPN.IN_FEATURES == ["p2", "p3", "p4", "p5", "p6"]
    assert cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN == 1000
    assert cfg.MODEL.ROI_BOX_HEAD.NUM_FC == 2 and cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION == 7
    assert tuple(cfg.DATASETS.TRAIN) == ("coco_2017_train",)
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (640, 672, 704, 736, 768, 800)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "SOLVER.BASE_LR", "0.01"])
    assert cfg.MODEL.DEVICE == "cpu" and cfg.SOLVER.BASE_LR == 0.01
    cfg.freeze()
    with pytest.raises(AttributeError):
        cfg.SEED = 3


def test_cfgnode_pickles_and_clones():
    import pickle

    cfg = get_cfg()
    cfg.SEED = 5
    again = pickle.loads(pickle.dumps(cfg))
    assert isinstance(again, CfgNode) and again == cfg
    clone = cfg.clone()
    clone.MODEL.RPN.IN_FEATURES.append("p7")
    assert cfg.MODEL.RPN.IN_FEATURES == ["res4"]
