"""The model card: `assets.extra/export_report.json`, and `python -m export inspect` rendering it.

The card records what an export knows and `saved_model_cli show` does not:
the source checkpoint, task and label map, the versions of TF / tf-text /
transformers, the target tensorflow/serving release and the op list checked
against it, the parity figures, the tokenizer differences, sizes and timings.
It sits in `assets.extra/`, which TF Serving copies along with the version
but never reads.

>>> print(render("models/minilm/1"))
"""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from export._errors import ExportError
from protocol import WARMUP_DIR

__all__ = ["REPORT_FILE", "FORMAT", "package_versions", "model_card", "write_report", "read_report", "render"]

REPORT_FILE = "export_report.json"
FORMAT = 1


def package_versions() -> dict[str, str | None]:
    versions = {}
    for package in ("tensorflow", "tensorflow-text", "transformers", "torch", "tf-keras", "tfserving-transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def model_card(staged, verification, *, version: int, signatures: dict, timings: dict, started: float) -> dict:
    """The card's layout: an export_model's Staged export and its Verification -> the JSON written."""
    import time
    from datetime import datetime, timezone

    from export._summary import directory_size

    options, checkpoint, task = staged.options, staged.checkpoint, staged.task
    path = staged.path
    warmup = verification.warmup
    sizes = {"saved_model_pb_bytes": (path / "saved_model.pb").stat().st_size,
             "variables_bytes": directory_size(path / "variables") if (path / "variables").is_dir() else 0,
             "assets_bytes": directory_size(path / "assets") if (path / "assets").is_dir() else 0,
             "warmup_bytes": warmup["bytes"] if warmup else 0,
             "total_bytes": directory_size(path)}
    from export._verification import VERIFICATION_STEPS as steps

    files = checkpoint.tokenizer_files
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": options.name, "version": version},
        "source": {"path": str(Path(checkpoint.path).resolve()), "model_type": checkpoint.config.model_type,
                   "weights": checkpoint.weights, "architectures": getattr(checkpoint.config, "architectures", None),
                   "tokenizer": {"algorithm": files.algorithm, "files": [p.name for p in files.paths],
                                 "template": getattr(staged.module.tokenizer, "template", None)}},
        "task": task.describe(),
        "labels": dict(enumerate(task.labels)) if getattr(task, "labels", None) else None,
        "options": {"max_length": staged.max_length, "tokenizer": options.tokenizer,
                    "default_signature": options.default_signature,
                    "output_hidden_states": options.output_hidden_states,
                    "output_attentions": options.output_attentions, "verify": options.verify,
                    "max_error": options.max_error, "length_buckets": options.length_buckets,
                    **{k: getattr(options, k) for k in ("aggregation_strategy", "doc_stride", "max_answer_length")
                       if getattr(options, k, None) is not None}},
        "bf16": verification.bf16,
        "length_buckets": verification.length_buckets,
        "versions": package_versions(),
        "target_serving": verification.target_serving,
        "signatures": signatures,
        "ops": verification.ops.as_dict(),
        "parity": verification.parity,
        "tokenizer_parity": verification.tokenizer_parity,
        "pipeline_parity": verification.pipeline_parity,
        "strict_tokenizer": options.strict_tokenizer,
        "warmup": warmup,
        "sizes": sizes,
        "timings": {**timings, "verification": round(sum(timings.get(k, 0.0) for k in steps), 3),
                    "total": round(time.perf_counter() - started, 3)},
    }


def write_report(version_dir: Path, report: dict) -> Path:
    path = Path(version_dir) / WARMUP_DIR / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, **report}, indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8")
    return path


def read_report(version_dir: Path) -> dict | None:
    """The model card of a version directory, or None when it has none (exported elsewhere)."""
    path = Path(version_dir) / WARMUP_DIR / REPORT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from exc


def _seconds(timings: dict) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())


def render(version_dir: str | Path) -> str:
    """What `python -m export inspect` prints: the card's facts, the signatures as a table."""
    from export._summary import format_signatures, read_signatures

    version_dir = _version_dir(version_dir)
    card = read_report(version_dir)
    signatures = read_signatures(version_dir)
    lines = [str(version_dir)]
    if card is None:
        lines += [f"  no {WARMUP_DIR}/{REPORT_FILE}: not exported by python -m export "
                  "(python -m export check PATH checks its ops)", "", format_signatures(signatures)]
        return "\n".join(lines)
    fields = _card_fields(card)
    width = max(len(k) for k, _ in fields) + 2
    lines += [f"  {k.ljust(width)}{v}" for k, v in fields]
    lines += ["", format_signatures(signatures)]
    lines += _parity_sections(card)
    return "\n".join(lines)


def _version_dir(version_dir: str | Path) -> Path:
    """`version_dir` if it holds a SavedModel; an error naming the likely version directory if not."""
    version_dir = Path(version_dir)
    if not version_dir.exists():
        raise ExportError(f"inspect PATH {version_dir}: no such directory")
    if not (version_dir / "saved_model.pb").is_file():
        hint = ""
        numbered = sorted((p for p in version_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                          key=lambda p: int(p.name)) if version_dir.is_dir() else []
        if numbered:
            hint = f"; did you mean {numbered[-1]}?"
        raise ExportError(f"inspect PATH {version_dir}: no saved_model.pb (expected a SavedModel version "
                          f"directory such as models/NAME/1){hint}")
    return version_dir


def _card_fields(card: dict) -> list[tuple[str, str]]:
    """The card's facts as (label, text) rows: source, task, options, ops, sizes, buckets, bf16, warmup."""
    from export._summary import human_size

    source, task, options = card.get("source", {}), card.get("task", {}), card.get("options", {})
    extras = ", ".join(f"{k} {v}" for k, v in task.items() if k not in ("task", "labels"))
    fields = [
        ("exported", f"{card.get('created', '?')} as {card.get('model', {}).get('name', '?')} "
                     f"version {card.get('model', {}).get('version', '?')}"),
        ("source", f"{source.get('path')} ({source.get('model_type')}, {source.get('weights')} weights)"),
        ("task", str(task.get("task")) + (f" ({extras})" if extras else "")),
        ("options", ", ".join(f"{k} {v}" for k, v in options.items())),
        ("versions", ", ".join(f"{k} {v}" for k, v in card.get("versions", {}).items() if v)),
    ]
    labels = card.get("labels")
    if labels:
        fields.append(("labels", ", ".join(f"{i} {name}" for i, name in labels.items())))
    fields += _ops_fields(card)
    sizes = card.get("sizes", {})
    if sizes:
        fields.append(("size", f"{human_size(sizes.get('total_bytes', 0))} (variables "
                               f"{human_size(sizes.get('variables_bytes', 0))}, saved_model.pb "
                               f"{human_size(sizes.get('saved_model_pb_bytes', 0))}, warmup "
                               f"{human_size(sizes.get('warmup_bytes', 0))})"))
    buckets = card.get("length_buckets")
    if "length_buckets" in card:
        fields.append(("length buckets", "off (--no-length-buckets)" if not buckets else
                       f"sub-batches of <= {buckets['policy']['max_tokens']} padded tokens"
                       + (f"; parity {'ok' if buckets['parity']['ok'] else 'FAILED'} within "
                          f"{buckets['parity']['bound']:g}" if buckets.get("parity") else "")))
    bf16 = card.get("bf16")
    if bf16:
        figures = "; ".join(f"{k}: " + ", ".join(f"{n} {v:.6g}" for n, v in f.items())
                            for k, f in bf16["outputs"].items())
        fields.append(("bf16", f"{figures} (CPU bf16: {', '.join(bf16['cpu_bf16_flags']) or 'none'})"))
    warmup = card.get("warmup")
    fields.append(("warmup", f"{warmup['records']} records in {warmup['file']}" if warmup else "none"))
    timings = card.get("timings", {})
    if timings:
        fields.append(("timings", _seconds(timings)))
    return fields


def _ops_fields(card: dict) -> list[tuple[str, str]]:
    ops = card.get("ops")
    if not ops:
        return [("target", f"tensorflow/serving {card.get('target_serving')}: ops not checked")]
    verdict = ("all linked" if not ops["missing"] else f"MISSING {', '.join(sorted(ops['missing']))}")
    return [("target", f"tensorflow/serving {ops['target_serving']}: {ops['count']} op types, {verdict}"),
            ("tf-text ops", ", ".join(ops["tf_text_ops"]) or "none"),
            *(("", note) for note in ops.get("notes", []))]


def _parity_sections(card: dict) -> list[str]:
    """Numeric, tokenizer and (token-level tasks) pipeline parity, each a block after a blank line."""
    from export._parity import format_parity
    from export._tokenizer_parity import format_tokenizer_parity

    lines = ["", format_parity(card["parity"]) if card.get("parity") else "numeric parity: not run (--no-verify)"]
    if card.get("tokenizer_parity"):
        lines += ["", format_tokenizer_parity(card["tokenizer_parity"], card.get("strict_tokenizer", False))]
    if card.get("pipeline_parity"):
        from export._task_parity import format_task_parity

        lines += ["", format_task_parity(card["pipeline_parity"])]
    return lines
