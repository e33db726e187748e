"""Name -> component registries with a factory that raises on an unknown name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named family of components (models, objectives, estimators, datasets).

    Examples
    --------
    >>> MODELS = Registry("model")
    >>> @MODELS.register("toy")
    ... class Toy: ...
    >>> MODELS.get("toy") is Toy
    True
    """

    def __init__(self, kind: str, key: str | None = None):
        self.kind = kind
        #: the config key whose value names a component (e.g. "model.name"), for error messages
        self.key = key
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            if self.key is not None:
                raise ValueError(
                    f"{self.key} {name!r} is not registered (unknown {self.kind}); "
                    f"choose one of {sorted(self._items)}"
                ) from None
            raise ValueError(
                f"unknown {self.kind} {name!r}; registered: {sorted(self._items)}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: Any) -> bool:
        return name in self._items
