"""Classes found by name: a conditioning mode or a sampling arm is one module of its package, registered under
its name, and imported the first time a config asks for it."""

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
        """The class registered as `module`, importing `<package>.<module>` on first use."""
        if module not in self.classes:
            try:
                importlib.import_module(f"{self.package}.{module}")
            except ModuleNotFoundError:
                pass
        if module not in self.classes:
            raise ConfigError(self.key, f"no {self.what} {module!r}; known: {', '.join(sorted(self.classes))}")
        return self.classes[module]
