"""The proposal-generator registry and its builder."""
from typing import Dict, Optional

from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry

__all__ = ["PROPOSAL_GENERATOR_REGISTRY", "build_proposal_generator"]

PROPOSAL_GENERATOR_REGISTRY = Registry("PROPOSAL_GENERATOR")
PROPOSAL_GENERATOR_REGISTRY.__doc__ = """
Registry for proposal generators, called as ``obj(cfg, input_shape)`` with
``input_shape`` the backbone's dict of feature name -> ShapeSpec.
"""


def build_proposal_generator(cfg, input_shape: Dict[str, ShapeSpec]) -> Optional[nn.Module]:
    """Build the proposal generator named by ``cfg.MODEL.PROPOSAL_GENERATOR.NAME``.

    "PrecomputedProposals" gives None: the proposals then come with the inputs.
    """
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name == "PrecomputedProposals":
        return None
    return PROPOSAL_GENERATOR_REGISTRY.get(name)(cfg, input_shape)
