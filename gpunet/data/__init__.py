"""Datasets and data loading.

``load_dataset(name, **options)`` returns a ``Dataset`` with seeded train/validation/test splits of
float32 features (int64 token ids for text) and int64 labels (or real-valued targets for regression and
next-step prediction); ``DataLoader`` batches them in an order fixed by seed and epoch.
``register_dataset(name)`` adds a source of your own. Sequence data: ``Vocabulary`` and ``pad_sequences``
(text), ``sliding_windows`` (time series); see docs/sequences.md.
"""
from .errors import DatasetError
from .idx import read_idx
from .loader import DataLoader
from .normalize import NORMALIZATIONS, Normalizer
from .registry import (COMMON_OPTIONS, ArrayDataset, Dataset, DatasetInfo, RawData, dataset_names,
                       dataset_options, load_dataset, register_dataset)
from . import transforms
from . import sources as _sources, synthetic as _synthetic  # noqa: F401  (register the built-in datasets)
from .streams import StreamLoader, stream_order
from .text import Vocabulary, pad_sequences, tokenize  # (registers the text datasets)
from .timeseries import plane_waves, sliding_windows  # (registers the time-series datasets)

__all__ = [
    "COMMON_OPTIONS", "NORMALIZATIONS", "ArrayDataset", "DataLoader", "Dataset", "DatasetError", "DatasetInfo",
    "Normalizer", "RawData", "StreamLoader", "Vocabulary", "dataset_names", "dataset_options", "load_dataset", "pad_sequences",
    "plane_waves", "read_idx", "register_dataset", "sliding_windows", "stream_order", "tokenize", "transforms",
]
