from ..base import model, train
from .. import base
from .helper import make_optimizer

train.max_iter = 200
optimizer = make_optimizer(base.train.lr)
tuple_value = (1, 2)
