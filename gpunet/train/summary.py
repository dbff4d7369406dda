"""``gpunet.train.summary``: the model summary of ``gpunet.nn.summary`` (``Module.summary``), kept under this name."""
from ..nn.summary import LayerRow, ModelSummary, summary

__all__ = ["LayerRow", "ModelSummary", "summary"]
