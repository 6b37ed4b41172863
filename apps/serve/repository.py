"""The model repository: several models, each in numbered versions, loaded, unloaded and reloaded live.

Layout (Triton's)::

    repo/
      mlp/
        config.json          optional: {"max_batch": 32, "max_wait_ms": 1, "inputs": ["x"]}
        1/model.onnx
        2/model.onnx         the latest (highest) version answers when none is named

A single file (``graphforge serve model.onnx``) is a repository of one model, named after the
file, with one version ``"1"``.

Each loaded version owns a :class:`~graphforge.serve.model.ModelRunner` and its own
:class:`~graphforge.serve.batcher.DynamicBatcher`. A (re)load builds the new versions off the event
loop, starts their batchers, then swaps the model's version table in one assignment; the versions it
replaces are *retired*: they take no new requests, and their batchers stop only once every request
that already holds them has been answered. So a reload or unload never fails a request in flight.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from graphforge.errors import LoadError

from .batcher import DynamicBatcher
from .errors import ModelNotFoundError, ServeError
from .model import ModelRunner

__all__ = ["ModelConfig", "ModelVersion", "ModelRepository", "MODEL_FILE", "CONFIG_FILE"]

log = logging.getLogger("graphforge.serve")

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_CONFIG_KEYS = {"max_batch": int, "max_wait_ms": (int, float), "inputs": list}


@dataclass(frozen=True)
class ModelConfig:
    """A model's ``config.json``: batching limits (None: the server's flags) and expected input names."""

    max_batch: int | None = None
    max_wait_ms: float | None = None
    inputs: tuple[str, ...] | None = None

    @classmethod
    def read(cls, path: str) -> "ModelConfig":
        """Parse ``path`` if it exists; a :class:`LoadError` says which key is wrong and why."""
        if not os.path.exists(path):
            return cls()
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:
            raise LoadError(f"cannot read {path}: {exc}") from None
        if not isinstance(doc, dict):
            raise LoadError(f"{path} must hold a JSON object like {{\"max_batch\": 32}}")
        unknown = sorted(set(doc) - set(_CONFIG_KEYS))
        if unknown:
            raise LoadError(f"{path}: unknown key {unknown[0]!r}; the keys are {sorted(_CONFIG_KEYS)}")
        for key, kind in _CONFIG_KEYS.items():
            if key in doc and (not isinstance(doc[key], kind) or isinstance(doc[key], bool)):
                raise LoadError(f"{path}: {key!r} must be a {getattr(kind, '__name__', 'number')}, "
                                f"got {doc[key]!r}")
        if doc.get("max_batch", 1) < 1:
            raise LoadError(f"{path}: 'max_batch' must be >= 1, got {doc['max_batch']}")
        if not 0 <= doc.get("max_wait_ms", 0) <= 60_000:
            raise LoadError(f"{path}: 'max_wait_ms' must be in 0..60000, got {doc['max_wait_ms']}")
        inputs = doc.get("inputs")
        if inputs is not None and not all(isinstance(n, str) for n in inputs):
            raise LoadError(f"{path}: 'inputs' must be a list of input names")
        return cls(doc.get("max_batch"), doc.get("max_wait_ms"), None if inputs is None else tuple(inputs))


@dataclass(eq=False)
class ModelVersion:
    """One loaded version: its runner and batcher, and the file state it was loaded from."""

    name: str
    version: str
    path: str
    stamp: tuple
    runner: ModelRunner
    batcher: DynamicBatcher
    config: ModelConfig = field(default_factory=ModelConfig)
    retired: bool = False


def _version_key(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (-1, v)


def _stamp(path: str) -> tuple:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class ModelRepository:
    """The models a server serves. ``single`` (a file path) or ``root`` (a repository directory).

    ``make_batcher(runner, config, name, version)`` builds a version's batcher (the app passes its
    flags and metrics in). Methods that load are coroutines: loading runs in a worker thread.
    """

    def __init__(self, *, root: str | os.PathLike | None = None, single: str | os.PathLike | None = None,
                 make_batcher: Callable[..., DynamicBatcher], drain_timeout: float = 30.0,
                 on_retire: Callable[[ModelVersion], None] | None = None):
        if (root is None) == (single is None):
            raise ValueError("give exactly one of root= and single=")
        self.root = None if root is None else os.fspath(root)
        self.single = None if single is None else os.fspath(single)
        if self.root is not None and not os.path.isdir(self.root):
            raise LoadError(f"--model-repository {self.root} is not a directory")
        self._make_batcher = make_batcher
        self._drain_timeout = drain_timeout
        self._on_retire = on_retire
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._failures: dict[str, str] = {}  # model -> why its last load failed
        self._failed_state: dict[str, dict] = {}  # model -> the file state that failed to load
        self._lock: asyncio.Lock | None = None
        self._retiring: set[asyncio.Task] = set()
        self.started = False

    # -- the directory -------------------------------------------------------------------------
    def scan(self) -> dict[str, dict[str, str]]:
        """{model: {version: model file}} as found on disk now."""
        if self.single is not None:
            name = os.path.splitext(os.path.basename(self.single))[0] or "model"
            return {name: {"1": self.single}}
        found: dict[str, dict[str, str]] = {}
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_dir() or not _NAME.match(entry.name):
                continue
            versions = {}
            for sub in os.scandir(entry.path):
                model_file = os.path.join(sub.path, MODEL_FILE)
                if sub.is_dir() and sub.name.isdigit() and int(sub.name) > 0 and os.path.isfile(model_file):
                    versions[str(int(sub.name))] = model_file
            found[entry.name] = versions
        return found

    def _config_of(self, name: str) -> ModelConfig:
        if self.root is None:
            return ModelConfig()
        return ModelConfig.read(os.path.join(self.root, name, CONFIG_FILE))

    # -- loading -------------------------------------------------------------------------------
    def _build(self, name: str, files: dict[str, str], keep: dict[str, ModelVersion],
               preloaded: ModelRunner | None = None) -> dict[str, ModelVersion]:
        """Runners for the versions in ``files`` not already loaded from the same file state (thread)."""
        if not files:
            where = self.single or os.path.join(self.root, name)
            raise LoadError(f"model {name!r} has no version to load: expected {where}/<n>/{MODEL_FILE}")
        config = self._config_of(name)
        built: dict[str, ModelVersion] = {}
        for version, path in files.items():
            stamp = _stamp_or_none(path)  # None: ModelRunner says why it cannot read the file
            old = keep.get(version)
            if old is not None and stamp is not None and old.stamp == stamp and old.config == config:
                built[version] = old
                continue
            runner = preloaded if preloaded is not None else ModelRunner(path)
            if config.inputs is not None and sorted(config.inputs) != sorted(runner.input_names):
                raise LoadError(f"{name}/{version}/{MODEL_FILE} has inputs {runner.input_names}, but "
                                f"{CONFIG_FILE} declares {list(config.inputs)}")
            built[version] = ModelVersion(name, version, path, stamp, runner, None, config)  # type: ignore[arg-type]
        return built

    def load_now(self, preloaded: ModelRunner | None = None) -> None:
        """Load every model synchronously, before the event loop runs (server start-up); raise on failure.

        ``preloaded``: a ready runner for the file of a single-model repository."""
        for name, files in self.scan().items():
            versions = self._build(name, files, {}, preloaded)
            for mv in versions.values():
                mv.batcher = self._make_batcher(mv.runner, mv.config, mv.name, mv.version)
            self._models[name] = versions
        if not self._models:
            raise LoadError(f"--model-repository {self.root} holds no model: expected "
                            f"{self.root}/<model>/<version>/{MODEL_FILE}")

    async def start(self) -> None:
        self._lock = asyncio.Lock()
        for versions in self._models.values():
            for mv in versions.values():
                await mv.batcher.start()
        self.started = True

    async def load(self, name: str) -> list[str]:
        """(Re)load ``name`` from disk: new and changed versions are loaded, removed ones retired.

        Returns the versions now served. A failure leaves the versions being served untouched.
        """
        async with self._lock:
            files = self.scan().get(name)
            if files is None:
                raise ModelNotFoundError(f"no model {name!r} in the repository "
                                         f"{self.root or self.single}; models: {sorted(self.scan())}")
            current = self._models.get(name, {})
            try:
                built = await asyncio.to_thread(self._build, name, files, current)
            except LoadError as exc:
                self._failures[name] = str(exc)
                self._failed_state[name] = {v: _stamp_or_none(p) for v, p in files.items()}
                raise
            for mv in built.values():
                if mv.batcher is None:
                    mv.batcher = self._make_batcher(mv.runner, mv.config, mv.name, mv.version)
                    await mv.batcher.start()
            self._failures.pop(name, None)
            self._failed_state.pop(name, None)
            self._models[name] = built  # the swap: new requests see only the new table
            for version, old in current.items():
                if built.get(version) is not old:
                    self._retire(old)
            log.info("model %s: serving versions %s", name, sorted(built, key=_version_key))
            return sorted(built, key=_version_key)

    async def unload(self, name: str) -> None:
        async with self._lock:
            versions = self._models.pop(name, None)
            if versions is None:
                raise ModelNotFoundError(f"model {name!r} is not loaded; loaded: {sorted(self._models)}")
            for mv in versions.values():
                self._retire(mv)
            log.info("model %s: unloaded", name)

    async def poll(self) -> list[str]:
        """Reload the loaded models whose files changed on disk (and load new ones); the names reloaded."""
        changed = []
        on_disk = self.scan()
        for name, files in on_disk.items():
            current = self._models.get(name)
            state = {v: _stamp_or_none(p) for v, p in files.items()}
            if current is not None and {v: mv.stamp for v, mv in current.items()} == state:
                continue
            if self._failed_state.get(name) == state:
                continue  # failed to load as it is now: retry when the files change again
            try:
                await self.load(name)
                changed.append(name)
            except (LoadError, ServeError) as exc:
                log.warning("model %s: reload failed, still serving what was loaded: %s", name, exc)
        for name in set(self._models) - set(on_disk):  # its directory is gone
            try:
                await self.unload(name)
                changed.append(name)
            except ModelNotFoundError:
                pass  # unloaded meanwhile
        return changed

    def _retire(self, mv: ModelVersion) -> None:
        mv.retired = True
        task = asyncio.get_running_loop().create_task(self._drain(mv))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _drain(self, mv: ModelVersion) -> None:
        # Requests already holding this version are being received, queued or run: let them finish.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._drain_timeout
        while mv.batcher.active > 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await mv.batcher.stop(timeout=max(deadline - loop.time(), 1.0))
        if self._on_retire is not None:
            self._on_retire(mv)

    async def stop(self, timeout: float) -> None:
        """Stop every batcher, letting queued and running requests finish (up to ``timeout`` s)."""
        batchers = [mv.batcher for versions in self._models.values() for mv in versions.values()]
        await asyncio.gather(*(b.stop(timeout=timeout) for b in batchers))
        if self._retiring:
            await asyncio.wait(list(self._retiring), timeout=timeout)

    # -- lookups -------------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """The version asked for, or the latest loaded one; :class:`ModelNotFoundError` (404) if none."""
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFoundError(f"unknown model {name!r}; loaded models: {sorted(self._models)}")
        if version in (None, ""):
            return versions[max(versions, key=_version_key)]
        mv = versions.get(version)
        if mv is None:
            raise ModelNotFoundError(f"model {name!r} has no loaded version {version!r}; loaded versions: "
                                     f"{sorted(versions, key=_version_key)}")
        return mv

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[str]:
        return sorted(self._models.get(name, {}), key=_version_key)

    def loaded(self) -> list[ModelVersion]:
        return [mv for name in sorted(self._models) for mv in self._models[name].values()]

    def queue_depth(self) -> int:
        return sum(mv.batcher.queue_depth for mv in self.loaded())

    def index(self) -> list[dict[str, Any]]:
        """``POST /v2/repository/index``: every model on disk or loaded, with its state."""
        out = []
        on_disk = self.scan()
        for name in sorted(set(on_disk) | set(self._models)):
            loaded = self._models.get(name, {})
            for version in sorted(set(on_disk.get(name, {})) | set(loaded), key=_version_key):
                entry: dict[str, Any] = {"name": name, "version": version,
                                         "state": "READY" if version in loaded else "UNAVAILABLE"}
                if version not in loaded:
                    entry["reason"] = self._failures.get(name, "not loaded")
                out.append(entry)
            if not on_disk.get(name) and not loaded:
                out.append({"name": name, "state": "UNAVAILABLE",
                            "reason": self._failures.get(name, "no version directory with a model.onnx")})
        return out


def _stamp_or_none(path: str):
    try:
        return _stamp(path)
    except OSError:
        return None
