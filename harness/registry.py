"""Classes found by name: a sampling arm is one module, registered under its name and imported the first time a
config asks for it. A shipped arm is named by its module in the package (`cads`); an arm of one's own lives in any
importable module, named by its dotted path (`my_lab.arms.jitter`), and registers under that path."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from harness.errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, package: str, key: str, what: str) -> None:
        self.package, self.key, self.what = package, key, what  # key: the config key a wrong name is blamed on
        self.classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            self.classes[name] = cls
            cls.module_name = name
            return cls
        return add

    def get(self, module: str) -> T:
        """The class registered as `module`, importing `<package>.<module>` (or the dotted path `module`) on first
        use."""
        if module not in self.classes:
            try:
                importlib.import_module(module if "." in module else f"{self.package}.{module}")
            except ModuleNotFoundError as exc:
                if "." in module:
                    raise ConfigError(self.key, f"cannot import {module!r}: {exc}") from None
        if module not in self.classes:
            raise ConfigError(self.key, f"no {self.what} {module!r}; known: {', '.join(sorted(self.classes))}")
        return self.classes[module]
