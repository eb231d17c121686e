# Learning-rate multipliers of the COCO "Nx" schedules (N x 90k iterations at 16 images
# per batch): steps by 10x at 60k/80k of 90k for 1x and 2x, and 60k / 20k before the end
# for longer ones; linear warmup over the first 1000 iterations.
from fvcore.common.param_scheduler import MultiStepParamScheduler

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler


def default_X_scheduler(num_X):
    """The multiplier of an ``num_X``x schedule, over the fraction of training done."""
    total_steps_16bs = num_X * 90000
    if num_X <= 2:
        # the scheduler only sees the fraction of training: this is 6/9 and 8/9 of it
        milestones = [60000, 80000, 90000]
    else:
        milestones = [total_steps_16bs - 60000, total_steps_16bs - 20000, total_steps_16bs]
    scheduler = L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=milestones)
    return L(WarmupParamScheduler)(
        scheduler=scheduler,
        warmup_length=1000 / total_steps_16bs,
        warmup_method="linear",
        warmup_factor=0.001,
    )


lr_multiplier_1x = default_X_scheduler(1)
lr_multiplier_2x = default_X_scheduler(2)
lr_multiplier_3x = default_X_scheduler(3)
lr_multiplier_6x = default_X_scheduler(6)
lr_multiplier_9x = default_X_scheduler(9)
