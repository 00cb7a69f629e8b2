"""Will `tensorflow/serving` of a given release load this SavedModel? Check its ops.

TF Serving fails to load a SavedModel whose graph uses an op it does not
link, and it says so only at load time, in production. This module collects
every op type of a SavedModel (the graphs and their function libraries) and
checks it against the ops of the target `tensorflow_model_server`:

- TensorFlow's core ops: the ops registered by a plain `import tensorflow`,
  read in a subprocess that does not import tensorflow_text (so tf-text ops
  are not counted as core); cached per process. For a target other than the
  installed TensorFlow version, the installed core op set stands for the
  target's, and the result says so.
- the tensorflow-text ops the target links: the ops `import tensorflow_text`
  adds, filtered by the facts in `SERVING_TF_TEXT` and `TF_TEXT_OPS_SINCE`.

>>> result = check_ops("models/minilm/1", target="2.20.0")
>>> result.ok, result.missing
(True, [])
"""
from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from export._errors import ExportError

__all__ = [
    "OpCheck",
    "OpSets",
    "SERVING_TF_TEXT",
    "TF_TEXT_OPS_SINCE",
    "PYTHON_ONLY_OPS",
    "check_ops",
    "collect_ops",
    "default_target",
    "op_sets",
    "parse_target",
    "prefetch_op_sets",
]

Version = tuple[int, int, int]

# Which tensorflow-text release's ops each tensorflow/serving release links
# (first serving release, last serving minor, tf-text release).
SERVING_TF_TEXT: list[tuple[str, str, str]] = [
    ("2.12.0", "2.19", "2.12.1"),
    ("2.20.0", "2.20", "2.20.0"),
]

# The first tensorflow/serving release linking a tf-text op, where known, and
# the --tokenizer kind that uses it (None: neither of ours).
TF_TEXT_OPS_SINCE: dict[str, tuple[str, str | None]] = {
    "CaseFoldUTF8": ("2.2.0", "classic"),
    "NormalizeUTF8": ("2.2.0", None),  # both kinds: NFD before stripping accents
    "RegexSplitWithOffsets": ("2.2.0", "classic"),
    "WordpieceTokenizeWithOffsets": ("2.2.0", "classic"),
    "FastWordpieceTokenizeWithOffsets": ("2.10.0", "fast"),
    "FastBertNormalize": ("2.12.0", "fast"),
    "TFText>RoundRobinTrim": ("2.20.0", None),
    "TFText>RoundRobinGenerateMasks": ("2.20.0", None),
    "TFText>Utf8Binarize": ("2.20.0", None),
}

# Registered by the tensorflow pip package's Python runtime, linked by no model server.
PYTHON_ONLY_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

OLDEST_TARGET = "2.2.0"  # the first serving release that links tf-text's BertTokenizer ops

_OPS_SCRIPT = """
import json
import tensorflow
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c

def ops():
    buf = c.TF_GetAllOpList()
    try:
        data = c.TF_GetBuffer(buf)
    finally:
        c.TF_DeleteBuffer(buf)
    op_list = op_def_pb2.OpList()
    op_list.ParseFromString(data)
    return sorted(op.name for op in op_list.op)

core = ops()
import tensorflow_text
print(json.dumps({"core": core, "tf_text": sorted(set(ops()) - set(core))}))
"""


def _parse_version(text: str) -> Version | None:
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    return None if not match else (int(match[1]), int(match[2]), int(match[3] or 0))


def _str(version: Version) -> str:
    return ".".join(map(str, version))


def installed_tf_version() -> str:
    return metadata.version("tensorflow")


def default_target() -> str:
    """The installed tensorflow's version: the tensorflow/serving release the project pins."""
    return installed_tf_version()


def parse_target(target: str) -> Version:
    """A known tensorflow/serving release, or ExportError naming --target-serving."""
    version = _parse_version(str(target))
    newest = _parse_version(installed_tf_version())
    known = f"this check knows tensorflow/serving {OLDEST_TARGET} to {newest[0]}.{newest[1]}.x"
    if version is None:
        raise ExportError(f"--target-serving {target}: not a version; expected X.Y.Z such as "
                          f"{default_target()} ({known})")
    if version < _parse_version(OLDEST_TARGET):
        raise ExportError(f"--target-serving {target}: unknown release; {known} (serving before "
                          f"{OLDEST_TARGET} links no tensorflow-text ops, so no in-graph tokenizer)")
    if version[:2] > newest[:2]:
        raise ExportError(f"--target-serving {target}: newer than the installed tensorflow "
                          f"{installed_tf_version()}, whose op set is all this check knows; {known}")
    return version


@dataclass(frozen=True)
class OpSets:
    """Ops registered by `import tensorflow` and the ones `import tensorflow_text` adds."""

    core: frozenset[str]
    tf_text: frozenset[str]


_pending: subprocess.Popen | None = None


def prefetch_op_sets() -> None:
    """Start reading the op sets in the background (it takes an `import tensorflow`)."""
    global _pending
    if _pending is None and op_sets.cache_info().currsize == 0:
        _pending = subprocess.Popen([sys.executable, "-c", _OPS_SCRIPT], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)


@functools.lru_cache(maxsize=1)
def op_sets() -> OpSets:
    """The installed tensorflow's core ops and tensorflow-text's ops, read in a clean subprocess."""
    global _pending
    prefetch_op_sets()
    proc, _pending = _pending, None
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise ExportError("op check: reading TensorFlow's op registry took over 10 minutes") from None
    if proc.returncode != 0:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"op check: cannot read TensorFlow's op registry in a subprocess: {tail}")
    data = json.loads(out.strip().splitlines()[-1])
    return OpSets(core=frozenset(data["core"]), tf_text=frozenset(data["tf_text"]))


def collect_ops(path: str | Path) -> set[str]:
    """Every op type of a SavedModel: each meta graph's nodes and function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(path) / "saved_model.pb"
    if not pb.is_file():
        raise ExportError(f"{path}: no saved_model.pb (expected a SavedModel version directory "
                          "such as models/NAME/1)")
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(pb.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise ExportError(f"{pb}: not a SavedModel ({exc})") from exc
    ops: set[str] = set()
    for meta_graph in saved.meta_graphs:
        graph = meta_graph.graph_def
        functions = {f.signature.name for f in graph.library.function}
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            ops.update(node.op for node in function.node_def)
        ops -= functions  # a node may call a library function by name
    return ops


@dataclass
class OpCheck:
    """The outcome of checking one SavedModel against one target."""

    target: str
    ops: list[str]
    tf_text_ops: list[str]
    missing: dict[str, str] = field(default_factory=dict)  # op -> why the target lacks it
    fixes: list[str] = field(default_factory=list)  # what would avoid the missing ops
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def oldest_serving(self) -> str:
        """The oldest tensorflow/serving release known to link every tensorflow-text op used."""
        since = [_parse_version(TF_TEXT_OPS_SINCE.get(op, (SERVING_TF_TEXT[0][0],))[0]) for op in self.tf_text_ops]
        return _str(max(since, default=_parse_version(OLDEST_TARGET)))

    def summary(self) -> str:
        head = f"op check: {len(self.ops)} op types ({len(self.tf_text_ops)} tensorflow-text)"
        if self.ok:
            return (f"{head}, all linked by tensorflow/serving {self.target}; its tensorflow-text ops are "
                    f"linked from serving {self.oldest_serving}")
        return f"{head}; {len(self.missing)} not linked by tensorflow/serving {self.target}"

    def error(self) -> str:
        missing = "; ".join(f"{op} ({why})" for op, why in sorted(self.missing.items()))
        fix = f"; to avoid: {' or '.join(self.fixes)}" if self.fixes else ""
        return (f"tensorflow/serving {self.target} does not link {len(self.missing)} op(s) this "
                f"SavedModel uses: {missing}{fix}")

    def as_dict(self) -> dict:
        return {"target_serving": self.target, "count": len(self.ops), "ops": self.ops,
                "tf_text_ops": self.tf_text_ops, "oldest_serving": self.oldest_serving,
                "missing": self.missing, "fixes": self.fixes,
                "notes": self.notes}


def _tf_text_release(target: Version) -> str | None:
    """The tf-text release whose op set the target links, when the facts table says."""
    for first, last_minor, release in SERVING_TF_TEXT:
        if _parse_version(first) <= target and target[:2] <= _parse_version(last_minor)[:2]:
            return release
    return None


def _tf_text_available(op: str, target: Version) -> str | None:
    """None if the target links the tf-text op, else why not."""
    if op in TF_TEXT_OPS_SINCE:
        since = TF_TEXT_OPS_SINCE[op][0]
        return None if target >= _parse_version(since) else f"tensorflow-text op, linked from serving {since}"
    if _tf_text_release(target) is not None:
        return None
    first = SERVING_TF_TEXT[0][0]
    return (f"tensorflow-text op not known to be linked before serving {first}; "
            f"confirmed from {first}")


def check_ops(path: str | Path, target: str | None = None, *, tokenizer: str | None = None) -> OpCheck:
    """Check a SavedModel's ops against tensorflow/serving `target` (default: the installed TF's version).

    `tokenizer` is the export's --tokenizer kind, used to suggest the other
    kind when that would avoid a missing op.
    """
    target = target or default_target()
    version = parse_target(target)
    ops = collect_ops(path)
    sets = op_sets()
    tf_text_ops = sorted(ops & sets.tf_text)
    result = OpCheck(target=target, ops=sorted(ops), tf_text_ops=tf_text_ops)
    installed = installed_tf_version()
    if _parse_version(installed)[:2] != version[:2]:
        result.notes.append(f"core TensorFlow ops: the installed tensorflow {installed}'s op set stands for "
                            f"serving {target}'s")
    release = _tf_text_release(version)
    result.notes.append(f"tensorflow-text ops: serving {target} links tf-text "
                        + (f"{release}'s ops" if release else "ops known from the facts table only"))
    for op in sorted(ops):
        if op in PYTHON_ONLY_OPS:
            result.missing[op] = "Python-only op (tf.py_function / tf.numpy_function); no model server has it"
        elif op in sets.tf_text:
            why = _tf_text_available(op, version)
            if why:
                result.missing[op] = why
        elif op not in sets.core:
            result.missing[op] = "neither a TensorFlow core op nor a tensorflow-text op (a custom op library?)"
    result.fixes = _fixes(result.missing, tokenizer)
    return result


def _fixes(missing: dict[str, str], tokenizer: str | None) -> list[str]:
    """The --tokenizer / --target-serving choices that would avoid every missing op."""
    fixes = []
    if missing and tokenizer == "fast" and all(TF_TEXT_OPS_SINCE.get(op, ("", None))[1] == "fast" for op in missing):
        fixes.append(f"--tokenizer classic (BertTokenizer ops, linked from serving {OLDEST_TARGET})")
    if missing and all("tensorflow-text op" in why for why in missing.values()):
        since = max(_parse_version(TF_TEXT_OPS_SINCE.get(op, (SERVING_TF_TEXT[0][0],))[0]) for op in missing)
        fixes.append(f"--target-serving {_str(since)} or later")
    return fixes
