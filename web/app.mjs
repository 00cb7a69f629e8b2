// The page: loads a converted model (?model=models/NAME, default models/minilm) and its tokenizer,
// then shows the cosine similarity of two texts' embeddings (feature extraction) or the label and
// score of text A (classification). Runs on TF.js's WebAssembly backend (?backend=cpu|webgl to change).
import {Tokenizer} from "./node_modules/@huggingface/tokenizers/dist/tokenizers.min.mjs";
import {cosine, loadModel} from "./embed.mjs";

const tf = window.tf;
const params = new URLSearchParams(location.search);
const modelDir = (params.get("model") || "models/minilm").replace(/\/$/, "");
const $ = (id) => document.getElementById(id);

async function start() {
  const backend = params.get("backend") || "wasm";
  if (backend === "wasm") tf.wasm.setWasmPaths("node_modules/@tensorflow/tfjs-backend-wasm/dist/");
  await tf.setBackend(backend);
  await tf.ready();
  const model = await loadModel({tf, Tokenizer, load: (file) => fetch(`${modelDir}/${file}`).then(ok)});
  const classify = model.info.task === "text-classification";
  document.querySelectorAll(".pair").forEach((el) => { el.hidden = classify; });
  $("run").textContent = classify ? "Classify" : "Compare";
  $("status").textContent = `${modelDir}: ${model.info.task}, ${model.info.quantization} weights, ` +
                            `TF.js ${tf.version.tfjs} on ${tf.getBackend()}`;
  const run = async () => {
    $("run").disabled = true;
    const t0 = performance.now();
    if (classify) {
      const [{label, score}] = await model.classify([$("text-a").value]);
      show(`${label} (${score.toFixed(4)})`, score, {label, score});
    } else {
      const [a, b] = await model.embed([$("text-a").value, $("text-b").value]);
      const similarity = cosine(a, b);
      show(`similarity ${similarity.toFixed(4)}`, Math.max(0, similarity), {similarity});
    }
    $("result").title = `${(performance.now() - t0).toFixed(0)} ms`;
    $("run").disabled = false;
  };
  $("run").addEventListener("click", run);
  await run();
  document.body.dataset.ready = "true";
}

function ok(response) {
  if (!response.ok) throw new Error(`${response.url}: HTTP ${response.status}`);
  return response;
}

function show(text, fraction, values) {
  $("result").textContent = text;
  $("result").dataset.values = JSON.stringify(values);
  $("meter").style.width = `${(100 * fraction).toFixed(1)}%`;
}

start().catch((err) => {
  $("status").textContent = `error: ${err.message}`;
  document.body.dataset.ready = "error";
});
