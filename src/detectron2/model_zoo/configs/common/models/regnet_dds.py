# RegNetX-4GF and RegNetY-4GF of the pycls "DDS" baselines, as Mask R-CNN FPN bottom-ups
# (stages s1-s4). Frozen BN by default; the LSJ baselines switch to SyncBN.
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import RegNet
from detectron2.modeling.backbone.regnet import ResBottleneckBlock, SimpleStem

_COMMON = dict(
    stem_class=SimpleStem,
    stem_width=32,
    block_class=ResBottleneckBlock,
    freeze_at=2,
    norm="FrozenBN",
    out_features=["s1", "s2", "s3", "s4"],
)

regnetx_4gf = L(RegNet)(depth=23, w_a=38.65, w_0=96, w_m=2.43, group_width=40, **_COMMON)
regnety_4gf = L(RegNet)(depth=22, w_a=31.41, w_0=96, w_m=2.24, group_width=64, se_ratio=0.25, **_COMMON)

# pycls models expect std-normalised inputs
pixel_std = [57.375, 57.120, 58.395]
