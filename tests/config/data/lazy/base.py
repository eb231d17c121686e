from detectron2.config import LazyCall as L
from collections import OrderedDict

model = L(OrderedDict)(width=8, depth=2)
train = {"max_iter": 100, "lr": 0.1, "output_dir": "./out"}
_private = {"hidden": True}
