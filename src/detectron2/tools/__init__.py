"""Command-line entry points (``python -m detectron2.tools.train_net``)."""
