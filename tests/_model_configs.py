"""ModelServerConfig text protos for the tests' servers (`--model_config_file`, HandleReloadConfigRequest).

>>> print(model_config_text(config_entry("a", "/m/a", policy="all {}"), config_entry("b", "/m/b", labels={"x": 2})))
model_config_list {
  config { name: "a" base_path: "/m/a" model_platform: "tensorflow" model_version_policy { all {} } }
  config { name: "b" base_path: "/m/b" model_platform: "tensorflow" version_labels { key: "x" value: 2 } }
}
<BLANKLINE>
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["config_entry", "model_config", "model_config_text"]


def config_entry(name: str, base_path, *, policy: str = "", labels: dict[str, int] | None = None) -> str:
    """One `config { ... }` of a model_config_list; `policy` is the inside of model_version_policy."""
    text = f'config {{ name: "{name}" base_path: "{base_path}" model_platform: "tensorflow"'
    if policy:
        text += f" model_version_policy {{ {policy} }}"
    text += "".join(f' version_labels {{ key: "{k}" value: {v} }}' for k, v in (labels or {}).items())
    return text + " }"


def model_config_text(*entries: str) -> str:
    return "model_config_list {\n" + "".join(f"  {entry}\n" for entry in entries) + "}\n"


def model_config(models: dict[str, Path], path: Path, labels: dict[str, dict[str, int]] | None = None) -> Path:
    """Write a config serving `models` ({name: base path}) to `path`, with version labels
    `labels` ({name: {label: version}})."""
    labels = labels or {}
    path.write_text(model_config_text(*(config_entry(name, base, labels=labels.get(name))
                                         for name, base in models.items())))
    return path
