"""Upstream's ``demo/demo.py`` entry point: the same as the ``detectron2-demo`` command
(see ``detectron2-demo --help``); works from a checkout with ``PYTHONPATH=src``."""
import sys

from detectron2.tools.demo import cli

if __name__ == "__main__":
    sys.exit(cli())
