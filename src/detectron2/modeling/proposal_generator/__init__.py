from .build import PROPOSAL_GENERATOR_REGISTRY, build_proposal_generator
from .rpn import RPN_HEAD_REGISTRY, build_rpn_head, RPN, StandardRPNHead
from .rrpn import RRPN

__all__ = [k for k in globals().keys() if not k.startswith("_")]
