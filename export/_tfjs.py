"""`python -m export tfjs`: an exported version as a TensorFlow.js graph model, verified.

    python -m export tfjs models/minilm/1 --output web/models/minilm [--quantize float16|uint16|uint8]

writes `model.json` and weight shards of at most 4 MB, the checkpoint's
tokenizer files for `@huggingface/tokenizers`, `tfjs_model.json` (what the page
needs: task, inputs, outputs, labels, max length) and `conversion_report.json`.

The steps, each of which stops the command with a message naming the cause:

1. The signature (`tokens`, int32 ids: TF.js has no tensorflow-text ops and no
   int64) is re-saved alone into a temporary SavedModel, so the converter sees
   only the graph the browser runs.
2. Its ops are checked against the converter's own op lists
   (`tensorflowjs/op_list/*.json`) before conversion: an unsupported op is
   named, not met halfway through.
3. The real converter (`tensorflowjs_converter` 4.22) runs in its own virtual
   environment, `.venv-tfjs/`: it pins TensorFlow <= 2.19 (through
   tensorflow-decision-forests) and cannot share one with TensorFlow 2.20.
   The command creates it when missing (`make venv-tfjs` does the same).
4. Node runs the converted model with the JS tokenizer (web/node.mjs, the
   WebAssembly backend) on the export's parity corpus; its token ids are compared
   with the SavedModel's in-graph tokenizer and its outputs with the
   SavedModel's `text` signature (float32 must agree within `--max-error`,
   1e-4; quantized weights report their cosine similarity instead).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export._errors import ExportError, VerificationError

__all__ = ["QUANTIZATIONS", "TFJS_VENV", "WEB_DIR", "TfjsOptions", "convert_to_tfjs", "ensure_tfjs_venv",
           "converter_ops", "signature_ops", "node_run"]

REPO = Path(__file__).resolve().parent.parent
WEB_DIR = REPO / "web"
TFJS_VENV = Path(os.environ.get("TFJS_VENV", REPO / ".venv-tfjs"))
TFJS_REQUIREMENTS = WEB_DIR / "requirements-tfjs.txt"
QUANTIZATIONS = ("float32", "float16", "uint16", "uint8")
SHARD_BYTES = 4 * 1024 * 1024  # browsers cache files up to a size; 4 MB shards stay well under it
# Graph plumbing that freezing resolves before the converter maps ops: not kernels TF.js must have.
_FROZEN_AWAY = frozenset({"Placeholder", "Const", "Identity", "IdentityN", "NoOp", "StatefulPartitionedCall",
                          "PartitionedCall", "ReadVariableOp", "VarHandleOp", "_Arg", "_Retval"})
# Ops the SavedModel has that the converted graph does not: what replaces each.
_REPLACED = {"ResourceGather": "GatherV2, by freezing", "Erfc": "1 - Erf, rewritten before converting",
             "Assert": "stripped (debug op)", "CheckNumerics": "stripped (debug op)", "Print": "stripped (debug op)"}


@dataclass
class TfjsOptions:
    path: str | Path  # an exported version directory
    output: str | Path
    quantize: str = "float32"
    signature: str = "tokens"
    max_error: float = 1e-4
    verify: bool = True


def ensure_tfjs_venv(log=print) -> Path:
    """The converter's own environment, created on first use."""
    converter = TFJS_VENV / "bin" / "tensorflowjs_converter"
    if converter.exists():
        return converter
    log(f"creating {TFJS_VENV} for tensorflowjs_converter (tensorflowjs 4.22 needs TensorFlow <= 2.19, so it "
        "cannot share .venv with TensorFlow 2.20); this downloads about 1 GB once ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(TFJS_VENV)], check=True)
        subprocess.run([str(TFJS_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r",
                        str(TFJS_REQUIREMENTS)], check=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(TFJS_VENV, ignore_errors=True)
        raise ExportError(f"could not create {TFJS_VENV} ({exc}); run `make venv-tfjs` to see pip's output") from exc
    return converter


def converter_ops(venv: Path = TFJS_VENV) -> frozenset[str]:
    """The TensorFlow ops tensorflowjs_converter maps, from the op lists it ships."""
    lists = sorted(venv.glob("lib/python3*/site-packages/tensorflowjs/op_list/*.json"))
    if not lists:
        raise ExportError(f"no tensorflowjs op lists under {venv}; recreate it with `make venv-tfjs`")
    return frozenset(op["tfOpName"] for path in lists for op in json.loads(path.read_text()))


def signature_ops(saved_model_dir: Path, signature: str) -> set[str]:
    """The op types one signature runs: its call node's function and every function that calls."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    meta = proto.meta_graphs[0]
    if signature not in meta.signature_def:
        raise ExportError(f"--signature {signature!r}: not in {saved_model_dir} "
                          f"(it has {', '.join(sorted(meta.signature_def))})")
    functions = {f.signature.name: f for f in meta.graph_def.library.function}
    nodes = {n.name: n for n in meta.graph_def.node}
    ops: set[str] = set()
    seen: set[str] = set()

    def visit(node_defs):
        for node in node_defs:
            ops.add(node.op)
            for value in node.attr.values():
                names = [value.func.name] if value.HasField("func") else [f.name for f in value.list.func]
                for name in names:
                    if name and name not in seen and name in functions:
                        seen.add(name)
                        visit(functions[name].node_def)

    outputs = [t.name.split(":")[0] for t in meta.signature_def[signature].outputs.values()]
    visit([nodes[name] for name in outputs if name in nodes])
    return ops - _FROZEN_AWAY - set(_REPLACED)


def _read_card(path: Path) -> dict:
    from export._report import read_report

    card = read_report(path)
    if card is None:
        raise ExportError(f"tfjs PATH {path}: no model card (assets.extra/export_report.json); "
                          "convert a version written by python -m export")
    return card


def _frozen_graph(path: Path, signature: str, out: Path) -> dict:
    """One signature frozen (variables as constants) into a GraphDef, rewritten where TF.js lacks a kernel.

    Returns {"inputs": {name: node}, "outputs": {name: node}}. Freezing here, with the TensorFlow that
    wrote the SavedModel, means the converter's older TensorFlow only imports a plain graph.
    """
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the ops of the SavedModel's other signatures)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(path))
    if signature not in loaded.signatures:
        raise ExportError(f"--signature {signature!r}: not in {path} (it has {', '.join(sorted(loaded.signatures))})")
    fn = loaded.signatures[signature]
    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    _rewrite_for_tfjs(graph_def)
    out.write_bytes(graph_def.SerializeToString())
    kwargs = fn.structured_input_signature[1]
    inputs = {key: spec.name for key, spec in kwargs.items()}
    flat = tf.nest.flatten(frozen.structured_outputs, expand_composites=True)
    names = tf.nest.flatten({k: k for k in fn.structured_outputs})
    # Strings (a classifier's `label`) stay out: TF.js runs the numbers, the page maps ids to labels.
    outputs = {name: tensor.name.split(":")[0] for name, tensor in zip(names, flat) if tensor.dtype != tf.string}
    return {"inputs": inputs, "outputs": outputs}


def _rewrite_for_tfjs(graph_def) -> None:
    """Erfc (GELU's exact form in TensorFlow) has no TF.js kernel: Erfc(x) = 1 - Erf(x).

    The difference is float32 rounding near erf(x) = 1, where GELU multiplies it by a
    small x: below 1e-7 in the activations.
    """
    from tensorflow.core.framework import node_def_pb2, types_pb2
    from tensorflow.python.framework import tensor_util

    for nodes in [graph_def.node] + [f.node_def for f in graph_def.library.function]:
        for node in [n for n in nodes if n.op == "Erfc"]:
            dtype = node.attr["T"].type
            one = node_def_pb2.NodeDef(name=node.name + "/one", op="Const")
            one.attr["dtype"].type = dtype
            one.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(
                1.0, dtype=types_pb2.DataType.Name(dtype).replace("DT_", "").lower()))
            erf = node_def_pb2.NodeDef(name=node.name + "/erf", op="Erf", input=list(node.input))
            erf.attr["T"].type = dtype
            node.op = "Sub"
            del node.input[:]
            node.input.extend([one.name, erf.name])
            nodes.extend([one, erf])


def _run_converter(converter: Path, frozen: Path, outputs: list[str], out: Path, quantize: str, log) -> None:
    cmd = [str(converter), "--input_format=tf_frozen_model", "--output_format=tfjs_graph_model",
           f"--output_node_names={','.join(outputs)}", "--strip_debug_ops=True",
           f"--weight_shard_size_bytes={SHARD_BYTES}"]
    if quantize != "float32":
        cmd += [f"--quantize_{quantize}=*"]
    cmd += [str(frozen), str(out)]
    log(f"converting ({quantize}) with {converter.name} ...")
    done = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise ExportError(f"tensorflowjs_converter failed (exit {done.returncode}):\n{tail}")


def _copy_tokenizer(card: dict, out: Path) -> int:
    """The checkpoint's fast tokenizer, saved for tokenizers.js; returns its pad id."""
    from export._tokenizer_parity import hf_tokenizer

    source = Path(card["source"]["path"])
    if not source.is_dir():
        raise ExportError(f"the checkpoint this version was exported from ({source}) is gone; "
                          "the JS tokenizer needs its tokenizer files")
    tokenizer = hf_tokenizer(source)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(Path(tmp) / name, out / name)
    return int(tokenizer.pad_token_id or 0)


def _page_info(card: dict, names: dict, out: Path, pad_id: int, quantize: str) -> dict:
    """tfjs_model.json: what embed.mjs needs to feed and read the graph model."""
    labels = card.get("labels")  # {"0": "NEGATIVE", ...} for classifiers
    info = {
        "task": card["task"]["task"],
        "max_length": card["options"]["max_length"],
        "pad_id": pad_id,
        "quantization": quantize,
        "inputs": sorted(names["inputs"]),
        "outputs": sorted(names["outputs"]),
        "input_nodes": names["inputs"],
        "output_nodes": names["outputs"],
        "labels": [labels[str(i)] for i in range(len(labels))] if labels else None,
        "source": str(card.get("source", {}).get("path", "")),
    }
    (out / "tfjs_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def node_run(model_dir: Path, texts: list[str], backend: str = "wasm", batch_size: int = 8) -> dict:
    """Runs web/node.mjs on texts; {ids, outputs: {name: [rows]}}."""
    _check_web_deps()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    try:
        done = subprocess.run(["node", str(WEB_DIR / "node.mjs"), "run", "--model", str(Path(model_dir).resolve()), "--texts", f.name,
                               "--backend", backend, "--batch-size", str(batch_size)],
                              capture_output=True, text=True, cwd=WEB_DIR)
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        raise ExportError(f"node web/node.mjs failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_web_deps() -> None:
    if shutil.which("node") is None:
        raise ExportError("node is not installed; the TF.js check runs the model in Node.js (>= 18)")
    if not (WEB_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        raise ExportError(f"{WEB_DIR}/node_modules is missing: run `make web-deps` (npm ci --prefix web)")


def _in_graph_ids(card: dict, texts: list[str]) -> list[list[int]]:
    """The SavedModel's own tokenizer, rebuilt from the checkpoint as the export built it."""
    import tensorflow as tf

    from export._source import Checkpoint

    options = card["options"]
    tok = Checkpoint.open(card["source"]["path"]).build_tokenizer(options["max_length"],
                                                                   kind=options.get("tokenizer", "fast"))
    encoded = tok(tf.constant(texts))
    mask = encoded["attention_mask"].numpy().astype(bool)
    return [row[m].tolist() for row, m in zip(encoded["input_ids"].numpy(), mask)]


def _reference_outputs(path: Path, texts: list[str], outputs: list[str]) -> dict[str, np.ndarray]:
    """The SavedModel's `text` signature, loaded as TF Serving loads it."""
    from export._serving_session import ServingSession

    session = ServingSession.load(path)
    try:
        result = {name: [] for name in outputs}
        for i in range(0, len(texts), 8):
            out = session.run("text", {"text": np.array(texts[i:i + 8], dtype=object)})
            for name in outputs:
                if name in out:
                    result[name].append(out[name])
        return {k: np.concatenate(v) for k, v in result.items() if v}
    finally:
        session.close()


def _verify(card: dict, path: Path, out: Path, info: dict, options: TfjsOptions) -> dict:
    from export._tokenizer_parity import CORPUS

    texts = [text for _, text in CORPUS]
    js = node_run(out, texts)
    graph_ids = _in_graph_ids(card, texts)
    differ = [i for i, (a, b) in enumerate(zip(js["ids"], graph_ids)) if a != b]
    tokenizer = {"texts": len(texts), "mismatches": len(differ),
                 "examples": [{"text": texts[i], "js": js["ids"][i], "in_graph": graph_ids[i]} for i in differ[:5]]}
    compared = [o for o in ("embedding", "probabilities", "logits") if o in info["outputs"]]
    reference = _reference_outputs(path, texts, compared)
    numeric = {}
    for name in compared:
        ours = np.asarray(js["outputs"][name], dtype=np.float32).reshape(reference[name].shape)
        same_ids = [i for i in range(len(texts)) if i not in differ]  # a different tokenisation is another input
        diff = np.abs(ours[same_ids] - reference[name][same_ids])
        a, b = ours.reshape(len(texts), -1), reference[name].reshape(len(texts), -1)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        numeric[name] = {"max_abs_error": float(diff.max()) if diff.size else 0.0,
                         "min_cosine": float(cos[same_ids].min()) if same_ids else None,
                         "mean_cosine": float(cos[same_ids].mean()) if same_ids else None}
    worst = max((v["max_abs_error"] for v in numeric.values()), default=0.0)
    ok = options.quantize != "float32" or worst <= options.max_error
    return {"ok": ok, "backend": js["backend"], "tokenizer": tokenizer, "numeric": numeric,
            "max_error_allowed": options.max_error if options.quantize == "float32" else None}


def _sizes(out: Path) -> dict:
    shards = sorted(out.glob("group*-shard*"))
    return {"model_json_bytes": (out / "model.json").stat().st_size,
            "weights_bytes": sum(p.stat().st_size for p in shards), "shards": len(shards),
            "largest_shard_bytes": max((p.stat().st_size for p in shards), default=0)}


def convert_to_tfjs(options: TfjsOptions, log=print) -> dict:
    """Converts, checks and reports; returns the report (also written as conversion_report.json)."""
    path, out = Path(options.path), Path(options.output)
    if options.quantize not in QUANTIZATIONS:
        raise ExportError(f"--quantize {options.quantize!r}: choose one of {', '.join(QUANTIZATIONS)}")
    if not (path / "saved_model.pb").is_file():
        raise ExportError(f"tfjs PATH {path}: no saved_model.pb (expected a version directory such as models/NAME/1)")
    card = _read_card(path)
    started = time.perf_counter()
    converter = ensure_tfjs_venv(log)
    ops = signature_ops(path, options.signature)
    missing = sorted(ops - converter_ops())
    if missing:
        raise VerificationError(f"signature {options.signature!r} uses ops TensorFlow.js cannot run: {', '.join(missing)} "
                          "(checked against tensorflowjs 4.22's op lists before converting); convert the `tokens` "
                          "signature, which takes token ids")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        names = _frozen_graph(path, options.signature, Path(tmp) / "frozen.pb")
        _run_converter(converter, Path(tmp) / "frozen.pb", list(names["outputs"].values()), out, options.quantize, log)
    pad_id = _copy_tokenizer(card, out)
    info = _page_info(card, names, out, pad_id, options.quantize)
    report = {"source": str(path), "signature": options.signature, "quantization": options.quantize,
              "ops": sorted(ops), **_sizes(out), "convert_seconds": round(time.perf_counter() - started, 1)}
    if options.verify:
        log("checking the converted model in Node against the SavedModel ...")
        report["verification"] = _verify(card, path, out, info, options)
    (out / "conversion_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if options.verify and not report["verification"]["ok"]:
        worst = max(v["max_abs_error"] for v in report["verification"]["numeric"].values())
        raise VerificationError(f"TF.js outputs differ from the SavedModel's by {worst:.2e} "
                                f"(> --max-error {options.max_error:g}); report: {out / 'conversion_report.json'}")
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['quantization']}: {report['shards']} shard(s), {report['weights_bytes'] / 2**20:.1f} MiB "
             f"weights (largest shard {report['largest_shard_bytes'] / 2**20:.2f} MiB), {len(report['ops'])} op types, "
             f"{report['convert_seconds']}s"]
    v = report.get("verification")
    if v:
        t = v["tokenizer"]
        lines.append(f"  JS tokenizer vs in-graph tokenizer: {t['mismatches']} of {t['texts']} texts differ")
        for e in t["examples"]:
            lines.append(f"    {e['text'][:60]!r}: js {e['js'][:12]} ... vs in-graph {e['in_graph'][:12]} ...")
        for name, n in v["numeric"].items():
            lines.append(f"  {name}: max abs error {n['max_abs_error']:.2e}, min cosine {n['min_cosine']:.6f} "
                         f"({v['backend']} backend)")
    return "\n".join(lines)
