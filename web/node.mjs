// Runs a converted model in Node with the pure-JS (cpu) or WebAssembly (wasm) TF.js backend.
//
//   node web/node.mjs run   --model web/models/minilm --texts texts.json [--backend wasm]   > out.json
//   node web/node.mjs bench --model web/models/minilm --texts texts.json --batch-sizes 1,8 --seconds 5
//
// `run` prints {backend, ids, outputs: {name: rows}} for every text (the export checks it against the
// SavedModel); `bench` discards a warm-up run, then prints texts/s and latency per batch size.
import {readFile} from "node:fs/promises";
import {createRequire} from "node:module";
import path from "node:path";
import {parseArgs} from "node:util";

import * as tf from "@tensorflow/tfjs";
import {setWasmPaths} from "@tensorflow/tfjs-backend-wasm";
import {Tokenizer} from "@huggingface/tokenizers";

import {loadModel} from "./embed.mjs";

const require = createRequire(import.meta.url);

async function useBackend(name) {
  if (name === "wasm") {
    // Node reads the .wasm binaries from the package directory (no network).
    setWasmPaths(path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm")) + "/");
  }
  if (!(await tf.setBackend(name))) throw new Error(`TF.js backend ${name} is not available`);
  await tf.ready();
}

function fileLoader(dir) {
  return async (file) => {
    const bytes = await readFile(path.join(dir, file));
    return {json: async () => JSON.parse(bytes.toString("utf8")),
            arrayBuffer: async () => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)};
  };
}

function rows(output) {
  const [n, ...rest] = output.shape;
  const width = rest.reduce((a, b) => a * b, 1);
  return Array.from({length: n}, (_, i) => Array.from(output.data.slice(i * width, (i + 1) * width)));
}

async function run(model, texts, batchSize) {
  const ids = [];
  const outputs = Object.fromEntries(model.info.outputs.map((o) => [o, []]));
  for (let i = 0; i < texts.length; i += batchSize) {
    const batch = texts.slice(i, i + batchSize);
    ids.push(...model.encode(batch).ids);
    const result = await model.run(batch);
    for (const [name, value] of Object.entries(result)) outputs[name].push(...rows(value));
  }
  return {ids, outputs};
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function bench(model, texts, batchSizes, seconds) {
  const results = [];
  for (const batchSize of batchSizes) {
    const batch = (i) => Array.from({length: batchSize}, (_, j) => texts[(i * batchSize + j) % texts.length]);
    await model.run(batch(0));  // warm-up: shader/kernel set-up and weight upload, discarded
    const latencies = [];
    const start = performance.now();
    for (let i = 1; performance.now() - start < seconds * 1000 || latencies.length < 3; i++) {
      const t0 = performance.now();
      await model.run(batch(i));
      latencies.push(performance.now() - t0);
    }
    const elapsed = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    results.push({batch_size: batchSize, requests: latencies.length,
                  texts_per_s: (latencies.length * batchSize) / elapsed,
                  p50_ms: percentile(latencies, 0.5), p90_ms: percentile(latencies, 0.9)});
  }
  return results;
}

async function main() {
  const {positionals, values} = parseArgs({
    allowPositionals: true,
    options: {model: {type: "string"}, texts: {type: "string"}, backend: {type: "string", default: "cpu"},
              "batch-size": {type: "string", default: "8"}, "batch-sizes": {type: "string", default: "1,8"},
              seconds: {type: "string", default: "5"}},
  });
  const command = positionals[0];
  if (!["run", "bench"].includes(command) || !values.model || !values.texts) {
    console.error("usage: node web/node.mjs run|bench --model DIR --texts FILE.json [--backend cpu|wasm]");
    process.exit(2);
  }
  await useBackend(values.backend);
  const model = await loadModel({tf, Tokenizer, load: fileLoader(values.model)});
  const texts = JSON.parse(await readFile(values.texts, "utf8"));
  const out = command === "run"
    ? await run(model, texts, Number(values["batch-size"]))
    : {bench: await bench(model, texts, values["batch-sizes"].split(",").map(Number), Number(values.seconds))};
  process.stdout.write(JSON.stringify({backend: tf.getBackend(), ...out}) + "\n");
}

main().catch((err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
