"""The error every data problem raises: one message naming the dataset, option or file at fault."""

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A dataset cannot be loaded: unknown name or option, missing package or file, malformed data."""
