#!/usr/bin/env python
"""Train from a config in a source checkout, without installing gpunet: the same as ``gpunet train CONFIG ...``.

    python scripts/train.py configs/mlp_digits.yaml optimizer.lr=0.05 --out runs/lr005
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpunet.cli import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
