"""Whole runs from a config, a layer above ``config`` and below ``cli``: ``gpunet.runner.run`` builds, trains and
resumes one run in its run directory; ``gpunet.runner.sweep`` trains a grid of runs."""
