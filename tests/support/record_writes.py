"""Imported by sitecustomize when HARNESS_TEST_WRITE_LOG names a folder: log every file this process writes.

Each process appends `<RANK>\t<event>\t<path>` lines to `<folder>/writes-<pid>.log` (RANK is torchrun's, `-`
outside it). Python-level writes are seen through an audit hook (opens for writing, renames, new folders,
deletions); torch.save and safetensors write from C++ and Rust, so those two functions are wrapped as well.
"""

import functools
import os
import sys

_RANK = os.environ.get("RANK", "-")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_fd = os.open(os.path.join(os.environ["HARNESS_TEST_WRITE_LOG"], f"writes-{os.getpid()}.log"),
              os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def _note(event: str, path) -> None:
    if isinstance(path, (str, bytes, os.PathLike)):
        os.write(_fd, f"{_RANK}\t{event}\t{os.fsdecode(path)}\n".encode())


def _hook(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        if (mode and any(c in mode for c in "wax+")) or (flags or 0) & _WRITE_FLAGS:
            _note(event, path)
    elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree"):
        _note(event, args[0])


def _wrap(module, name: str, keyword: str) -> None:
    """Log the path argument (the second one, or `keyword`) of `module.name` before calling it."""
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        _note(f"{module.__name__}.{name}", args[1] if len(args) > 1 else kwargs.get(keyword))
        return original(*args, **kwargs)

    setattr(module, name, wrapper)


_note("started", os.getcwd())  # so a test can tell that every process it expected was watched
sys.addaudithook(_hook)

# Wrapped before the harness is imported, so its `from safetensors.torch import save_file` gets the wrapper.
import safetensors.torch  # noqa: E402
import torch  # noqa: E402

_wrap(torch, "save", "f")
_wrap(safetensors.torch, "save_file", "filename")
