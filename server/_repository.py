"""Models and their versions: policies, labels, file-system polling, lifecycle.

Follows TF Serving's ServerCore with the AvailabilityPreservingPolicy: numeric
version directories under each model's `base_path` are listed, the model's
`model_version_policy` (`latest {num_versions}` - default latest 1 -,
`all {}`, `specific {versions}`) picks the aspired ones, new versions are
loaded (and warmed up) before versions that are no longer aspired are
unloaded, and old versions are only unloaded once an aspired version is
AVAILABLE - so a version that fails to load leaves the previous one serving.
Unloading waits for requests in flight on that version.

>>> repo = Repository(loader=lambda name, version, path: ...)   # doctest: +SKIP
>>> repo.apply_config(single_model_config("m", "/models/m"))    # doctest: +SKIP
>>> servable = repo.acquire("m")                                 # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time

import grpc

from ._errors import FailedPrecondition, InvalidArgument, NotFound, ServingError

__all__ = ["Repository", "VersionStatus", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"]

log = logging.getLogger("server")

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass
class VersionStatus:
    """One version's state, and the error that ended it (None when OK)."""
    version: int
    state: str = START
    error: ServingError | None = None
    servable: object = None


@dataclasses.dataclass
class _Model:
    name: str
    config: object = None  # ModelConfig proto; None once removed from the config
    versions: dict = dataclasses.field(default_factory=dict)  # version -> VersionStatus
    labels: dict = dataclasses.field(default_factory=dict)  # label -> version


def list_versions(base_path: str) -> dict[int, str] | None:
    """{version: directory path} of the numeric subdirectories of `base_path`
    (None when it cannot be listed). The path is the one found on disk: a
    version may be spelled `00000123`, and is never rebuilt from the number."""
    try:
        names = sorted(os.listdir(base_path))
    except OSError:
        return None
    found: dict[int, str] = {}
    for n in names:
        path = os.path.join(base_path, n)
        if n.isascii() and n.isdigit() and os.path.isdir(path):
            found.setdefault(int(n), path)
    return found


def aspired_versions(config, on_disk: list[int]) -> list[int]:
    """The versions the model's `model_version_policy` wants, of those on disk."""
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return list(on_disk)
    if kind == "specific":
        wanted = set(policy.specific.versions)
        return [v for v in on_disk if v in wanted]
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
    return sorted(on_disk)[-n:]


class Repository:
    """The served models. `loader(name, version, path)` returns a loaded,
    warmed-up servable (with `.acquire()`, `.release()`, `.unload()`) or raises."""

    def __init__(self, loader, *, max_num_load_retries: int = 5, load_retry_interval: float = 60.0,
                 allow_labels_for_unavailable: bool = False, on_state=None):
        self._loader = loader
        self._retries = max_num_load_retries
        self._retry_interval = load_retry_interval
        self._allow_unavailable_labels = allow_labels_for_unavailable
        self._on_state = on_state  # callback(name, version, state) for metrics
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()        # guards _models and version states
        self._sync_lock = threading.Lock()   # one sync (poll or reload) at a time
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- requests -----------------------------------------------------------
    def acquire(self, name: str, version: int | None = None, label: str | None = None):
        """The servable a request names, acquired (call `.release()` after use).
        Raises TF Serving's errors for unknown models, versions and labels."""
        with self._lock:
            model = self._models.get(name)
            if label:
                if model is None or label not in model.labels:
                    raise InvalidArgument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            if version is None:
                candidates = sorted((v for v, s in model.versions.items() if s.state == AVAILABLE),
                                    reverse=True) if model else []
                for v in candidates:
                    if model.versions[v].servable.acquire():
                        return model.versions[v].servable
                raise NotFound(f"Servable not found for request: Latest({name})")
            status = model.versions.get(version) if model else None
            if status is not None and status.state == AVAILABLE and status.servable.acquire():
                return status.servable
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")

    def resolve_label(self, name: str, label: str) -> int:
        with self._lock:
            model = self._models.get(name)
            if model is None or label not in model.labels:
                raise InvalidArgument(f"Unrecognized servable version label: {label}")
            return model.labels[label]

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        """Version states of a model, newest first (GetModelStatus semantics)."""
        if label:
            version = self.resolve_label(name, label)
        with self._lock:
            model = self._models.get(name)
            if model is None or not model.versions:
                raise NotFound(f"Could not find any versions of model {name}")
            if version is not None:
                if version not in model.versions:
                    raise NotFound(f"Could not find version {version} of model {name}")
                return [dataclasses.replace(model.versions[version])]
            return [dataclasses.replace(s) for _, s in sorted(model.versions.items(), reverse=True)]

    def available(self) -> dict[str, list[int]]:
        """AVAILABLE versions per model."""
        with self._lock:
            return {n: sorted(v for v, s in m.versions.items() if s.state == AVAILABLE)
                    for n, m in self._models.items()}

    def model_names(self) -> list[str]:
        with self._lock:
            return [n for n, m in self._models.items() if m.config is not None]

    # -- configuration --------------------------------------------------------
    def apply_config(self, server_config) -> None:
        """Serve exactly the models of a `ModelServerConfig`: load new ones (and
        wait for them), update policies and labels, unload removed ones.
        Raises if a new model's versions fail to load or a label is invalid."""
        configs = {c.name: c for c in server_config.model_config_list.config}
        with self._sync_lock:
            with self._lock:
                removed = [m for n, m in self._models.items() if n not in configs and m.config is not None]
                added = []
                for name, cfg in configs.items():
                    model = self._models.get(name)
                    if model is None:
                        model = self._models[name] = _Model(name)
                    if model.config is None:
                        added.append(name)
                    model.config = cfg
                for model in removed:
                    model.config = None
                    model.labels = {}
            errors = []
            for name in configs:
                errors += self._sync(self._models[name])
            for model in removed:
                self._sync(model)
            errors = [e for name, e in errors if name in added]
            if errors:
                raise errors[0]
            self._apply_labels(configs)

    def _apply_labels(self, configs) -> None:
        with self._lock:
            for name, cfg in configs.items():
                model = self._models[name]
                labels = dict(cfg.version_labels)
                for label, version in labels.items():
                    status = model.versions.get(version)
                    if not self._allow_unavailable_labels and (status is None or status.state != AVAILABLE):
                        raise FailedPrecondition(
                            f"Request to assign label to version {version} of model {name}, which is "
                            f"not currently available for inference (label {label!r}); load the "
                            f"version first or start with --allow_version_labels_for_unavailable_models")
                model.labels = labels

    # -- polling ------------------------------------------------------------
    def poll(self) -> None:
        """Compare every model with its base path once: load new versions, unload old ones."""
        with self._sync_lock:
            with self._lock:
                models = [m for m in self._models.values() if m.config is not None]
            for model in models:
                self._sync(model)

    def start_polling(self, interval: float) -> None:
        """Poll the file system every `interval` seconds in a background thread."""
        if interval <= 0 or self._poller is not None:
            return

        def loop():
            while not self._stop.wait(interval):
                try:
                    self.poll()
                except Exception:  # a bad poll must not stop polling
                    log.exception("file system poll failed")
        self._poller = threading.Thread(target=loop, name="fs-poll", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling and unload every version."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        with self._sync_lock:
            for model in list(self._models.values()):
                for status in list(model.versions.values()):
                    if status.state == AVAILABLE:
                        self._unload(model, status)

    # -- lifecycle ----------------------------------------------------------
    def _set(self, model: _Model, status: VersionStatus, state: str, error=None) -> None:
        with self._lock:
            status.state, status.error = state, error
        if self._on_state is not None:
            self._on_state(model.name, status.version, state)

    def _sync(self, model: _Model) -> list[tuple[str, ServingError]]:
        """Bring one model in line with its config and disk; returns load errors."""
        if model.config is None:
            aspired = []
        else:
            on_disk = list_versions(model.config.base_path)
            if on_disk is None:
                log.warning("File system source: base path %s for servable %s does not exist or "
                            "cannot be listed; keeping what is loaded", model.config.base_path, model.name)
                return []
            aspired = aspired_versions(model.config, sorted(on_disk))
            if not on_disk:
                log.warning("No versions of servable %s found under base path %s. Did you forget "
                            "to name your leaf directory as a number (eg. '/1/')?",
                            model.name, model.config.base_path)
        errors = []
        for version in aspired:
            status = model.versions.get(version)
            if status is not None and status.state in (AVAILABLE, LOADING):
                continue
            if status is not None and status.state == END and status.error is not None:
                continue  # failed before; TF Serving does not retry until it is re-aspired
            errors += self._load(model, version, on_disk[version])
        with self._lock:
            aspired_set = set(aspired)
            for v, s in model.versions.items():
                if v not in aspired_set and s.state == END and s.error is not None:
                    s.error = None  # no longer aspired: may be retried if it comes back
            any_available = any(model.versions[v].state == AVAILABLE for v in aspired
                                if v in model.versions)
            to_unload = [s for v, s in model.versions.items()
                         if v not in aspired_set and s.state == AVAILABLE
                         and (any_available or model.config is None)]
        for status in to_unload:
            self._unload(model, status)
        return errors

    def _load(self, model: _Model, version: int, path: str) -> list[tuple[str, ServingError]]:
        status = VersionStatus(version)
        with self._lock:
            model.versions[version] = status
        self._set(model, status, START)
        self._set(model, status, LOADING)
        attempt = 0
        while True:
            try:
                servable = self._loader(model.name, version, path)
                break
            except Exception as e:  # any load error is reported in the model status
                err = e if isinstance(e, ServingError) else ServingError(
                    f"Failed to load servable version {{name: {model.name} version: {version}}} "
                    f"from {path}: {type(e).__name__}: {e}", grpc.StatusCode.UNKNOWN)
                if attempt >= self._retries or self._stop.is_set():
                    log.error("Loading servable: {name: %s version: %d} failed: %s",
                              model.name, version, err)
                    self._set(model, status, END, err)
                    return [(model.name, err)]
                attempt += 1
                log.warning("Loading servable version {name: %s version: %d} failed, retrying "
                            "(%d of %d) in %.1fs: %s", model.name, version, attempt, self._retries,
                            self._retry_interval, err)
                time.sleep(self._retry_interval)
        with self._lock:
            status.servable = servable
        self._set(model, status, AVAILABLE)
        log.info("Successfully loaded servable version {name: %s version: %d}", model.name, version)
        return []

    def _unload(self, model: _Model, status: VersionStatus) -> None:
        self._set(model, status, UNLOADING)
        status.servable.unload()  # waits for requests still using it
        with self._lock:
            status.servable = None
        self._set(model, status, END)
        log.info("Unloaded servable version {name: %s version: %d}", model.name, status.version)
