"""A batch's progress bar: tqdm's widget in Jupyter, its text bar on a terminal's stderr, nothing otherwise.

tqdm rather than rich: one small pure-Python package with no dependencies of its own, a notebook
widget (`tqdm.notebook`) and a text bar that turns itself off when stderr is not a terminal
(`disable=None`), so output piped to a file or a script never holds control characters.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from tqdm import tqdm as text_bar


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a terminal, yet a bar can be shown)."""
    ipython = sys.modules.get("IPython")
    if "ipykernel" not in sys.modules or ipython is None:
        return False
    shell = ipython.get_ipython()  # type: ignore[attr-defined]
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _make_bar(total: int, description: str) -> Any:
    if in_notebook():
        from tqdm import notebook

        # Without ipywidgets tqdm's widget cannot be made (and a half-made one complains when it
        # is collected): the text bar then, which a notebook shows as it is.
        if notebook.IProgress is not None:
            return notebook.tqdm(total=total, desc=description, unit="task")
        return text_bar(total=total, desc=description, unit="task", file=sys.stderr, disable=False)
    return text_bar(total=total, desc=description, unit="task", file=sys.stderr, disable=None)


class ProgressBar:
    """Tasks finished out of a total; made on the first update, so the total can come from the service."""

    def __init__(self, enabled: bool, description: str) -> None:
        self.enabled = enabled
        self.description = description
        self._bar: Any = None

    @property
    def shown(self) -> bool:
        """Whether a bar is on screen (so it is worth bringing up to date often)."""
        return self._bar is not None and not self._bar.disable

    def update(self, finished: int, total: int, failed: int = 0) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = _make_bar(total, self.description)
        if failed:
            self._bar.set_postfix(failed=failed, refresh=False)
        self._bar.update(finished - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
