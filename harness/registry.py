"""Classes found by name: a sampling arm is one module, registered under its name and imported the first time a
config asks for it. A shipped arm is named by its module in the package (`cads`); an arm of one's own lives in any
importable module, named by its dotted path (`my_lab.arms.jitter`), and registers under that path."""

from __future__ import annotations

import importlib
import pkgutil
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
            path = module if "." in module else f"{self.package}.{module}"
            try:
                importlib.import_module(path)
            except ModuleNotFoundError as exc:
                if "." in module or exc.name != path:  # the user's module, or a module it imports, is missing
                    raise ConfigError(self.key, f"cannot import {path}: {exc}") from None
            except Exception as exc:  # the module itself fails (a syntax error, a bad import inside it)
                raise ConfigError(self.key, f"importing {path} failed: {type(exc).__name__}: {exc}") from None
        if module not in self.classes:
            hint = (f" ({module} imported, but registers nothing under that name: decorate the class with "
                    f"@register_arm({module!r}))" if "." in module else "")
            raise ConfigError(self.key, f"no {self.what} {module!r}{hint}; shipped: {', '.join(self.shipped())}")
        return self.classes[module]

    def shipped(self) -> list[str]:
        """The names of the package's own entries (`base` and `_helpers` hold shared code, none)."""
        package = importlib.import_module(self.package)
        return sorted(info.name for info in pkgutil.iter_modules(package.__path__)
                      if info.name != "base" and not info.name.startswith("_"))
