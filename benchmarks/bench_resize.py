"""Image resize benchmark: ResizeTransform.apply_image (PIL, bit-identical to upstream)
beside OpenCV's cv2.resize on the same uint8 images, with how often OpenCV's pixels
differ from PIL's (why the OpenCV path was removed).

    python benchmarks/bench_resize.py [--quick] [--iters N]
"""
import os
import sys

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import parse_args, print_table, time_fn  # noqa: E402

from detectron2.data import transforms as T  # noqa: E402

_CV2 = {Image.BILINEAR: cv2.INTER_LINEAR, Image.NEAREST: cv2.INTER_NEAREST_EXACT, Image.BICUBIC: cv2.INTER_CUBIC}
_NAMES = {Image.BILINEAR: "bilinear", Image.NEAREST: "nearest", Image.BICUBIC: "bicubic"}


def main() -> None:
    args = parse_args(__doc__)
    cases = [((480, 640), (800, 1067)), ((1024, 1365), (800, 1067))]
    if args.quick:
        cases = [((120, 160), (200, 267))]
    rng = np.random.RandomState(0)
    rows = []
    for (h, w), (nh, nw) in cases:
        img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        for interp in (Image.BILINEAR, Image.NEAREST, Image.BICUBIC):
            t = T.ResizeTransform(h, w, nh, nw, interp)
            ours = time_fn(lambda: t.apply_image(img), iters=args.iters)
            peer = time_fn(lambda: cv2.resize(img, (nw, nh), interpolation=_CV2[interp]), iters=args.iters)
            diff = t.apply_image(img).astype(int) - cv2.resize(img, (nw, nh), interpolation=_CV2[interp])
            differ = 100.0 * float(np.any(diff != 0, axis=-1).mean())
            rows.append([f"{h}x{w}->{nh}x{nw}", _NAMES[interp], ours, peer, ours / peer, differ,
                         int(np.abs(diff).max())])
    print_table(rows, ["resize", "interp", "ours (PIL) ms", "cv2 ms", "ratio", "cv2 px differ %", "max diff"])


if __name__ == "__main__":
    main()
