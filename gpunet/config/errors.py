"""ConfigError: a config cannot be used; it lists every ``gpunet.kinds.Problem`` found (file, line, key path)."""
from __future__ import annotations

from ..kinds import Path, Problem


class ConfigError(ValueError):
    """A config cannot be used. ``problems`` lists every problem found; ``str()`` shows them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            text = f"{len(self.problems)} problems in the config:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)

    @classmethod
    def at(cls, source: str | None, line: int | None, path: Path, message: str, **details) -> "ConfigError":
        """An error for a single problem."""
        return cls([Problem(source, line, tuple(path), message, **details)])
