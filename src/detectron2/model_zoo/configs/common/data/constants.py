# Pixel statistics of ImageNet in 0-255 units, per channel order.
constants = dict(
    imagenet_rgb256_mean=[123.675, 116.28, 103.53],
    imagenet_rgb256_std=[58.395, 57.12, 57.375],
    imagenet_bgr256_mean=[103.530, 116.280, 123.675],
    # The MSRA and Detectron1 checkpoints have the std folded into conv1's weights, so
    # their inputs are only mean-subtracted; other weights want [57.375, 57.120, 58.395].
    imagenet_bgr256_std=[1.0, 1.0, 1.0],
)
