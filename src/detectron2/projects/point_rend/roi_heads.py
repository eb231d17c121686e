"""PointRendROIHeads: StandardROIHeads that also loads PointRend checkpoints and
configs of the older layout (mask_point_head / mask_coarse_head, CoarseMaskHead)."""
import logging

from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads

__all__ = ["PointRendROIHeads"]

logger = logging.getLogger(__name__)


@ROI_HEADS_REGISTRY.register()
class PointRendROIHeads(StandardROIHeads):
    """Identical to StandardROIHeads apart from converting old weights and configs."""

    _version = 2

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            renames = {"mask_point_head": "mask_head.point_head", "mask_coarse_head": "mask_head.coarse_head"}
            for k in list(state_dict.keys()):
                for old, new in renames.items():
                    if k.startswith(prefix + old):
                        logger.warning("PointRend weights have the old layout: renaming %s", k)
                        state_dict[k.replace(prefix + old, prefix + new, 1)] = state_dict.pop(k)
                        break
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        if cfg.MODEL.MASK_ON and cfg.MODEL.ROI_MASK_HEAD.NAME != "PointRendMaskHead":
            if cfg.MODEL.ROI_MASK_HEAD.NAME != "CoarseMaskHead":
                raise ValueError(
                    "PointRendROIHeads: MODEL.ROI_MASK_HEAD.NAME must be 'PointRendMaskHead' (or the old "
                    f"'CoarseMaskHead'), got {cfg.MODEL.ROI_MASK_HEAD.NAME!r}"
                )
            logger.warning("Old PointRend config (CoarseMaskHead): converting to PointRendMaskHead.")
            was_frozen = cfg.is_frozen()
            cfg.defrost()
            cfg.MODEL.ROI_MASK_HEAD.NAME = "PointRendMaskHead"
            cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = ""
            if was_frozen:
                cfg.freeze()
        return super()._init_mask_head(cfg, input_shape)
