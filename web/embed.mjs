// The TF.js side of an exported model, shared by the page (index.html) and Node (verify.mjs, bench.mjs).
//
// A converted model directory (written by `python -m export tfjs`) holds:
//   model.json + group1-shard*.bin   the graph of the SavedModel's `tokens` signature (int32 ids in)
//   tokenizer.json, tokenizer_config.json   the checkpoint's tokenizer, read by @huggingface/tokenizers
//   tfjs_model.json                  what the page needs to know: task, max_length, inputs, outputs, labels
//
//   const model = await loadModel({tf, Tokenizer, load: (file) => fetch(`models/minilm/${file}`)});
//   const [a, b] = await model.embed(["a sentence", "another one"]);   // Float32Array(384) each
//
// `tf` and `Tokenizer` are passed in so that the same code runs with the browser's and Node's imports.

/** Cosine similarity of two vectors. */
export function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

/**
 * Where the text's tokens go inside the tokenizer's special-token template ([CLS] x [SEP], <s> x </s>):
 * found by encoding a one-word text with and without special tokens, so truncation keeps the template's
 * tokens whatever the family (tokenizers.js does not truncate).
 */
function templateOf(tokenizer) {
  const withSpecial = tokenizer.encode("a").ids;
  const bare = tokenizer.encode("a", {add_special_tokens: false}).ids;
  const start = withSpecial.findIndex((_, i) => bare.every((id, j) => withSpecial[i + j] === id));
  return {prefix: start, suffix: withSpecial.length - start - bare.length};
}

/**
 * Encodes texts as the SavedModel's in-graph tokenizer does: special tokens, truncation to `maxLength`
 * (longest-first for one sequence: the text's tail goes, the template stays), padding to the longest row.
 */
export function encodeBatch(tokenizer, texts, maxLength, padId = 0) {
  const template = templateOf(tokenizer);
  const rows = texts.map((text) => {
    const enc = tokenizer.encode(text, {return_token_type_ids: true});
    let ids = enc.ids, types = enc.token_type_ids ?? ids.map(() => 0);
    if (ids.length > maxLength) {
      const keep = maxLength - template.suffix;
      ids = ids.slice(0, keep).concat(ids.slice(ids.length - template.suffix));
      types = types.slice(0, keep).concat(types.slice(types.length - template.suffix));
    }
    return {ids, types};
  });
  const width = Math.max(1, ...rows.map((r) => r.ids.length));
  const shape = [texts.length, width];
  const inputIds = new Int32Array(texts.length * width).fill(padId);
  const attentionMask = new Int32Array(texts.length * width);
  const tokenTypeIds = new Int32Array(texts.length * width);
  rows.forEach((row, r) => {
    row.ids.forEach((id, c) => {
      inputIds[r * width + c] = id;
      attentionMask[r * width + c] = 1;
      tokenTypeIds[r * width + c] = row.types[c];
    });
  });
  return {shape, input_ids: inputIds, attention_mask: attentionMask, token_type_ids: tokenTypeIds,
          ids: rows.map((r) => r.ids)};
}

/** Loads a converted model directory; `load(file)` returns a fetch-like Response for a file in it. */
export async function loadModel({tf, Tokenizer, load}) {
  const json = async (file) => (await load(file)).json();
  const [info, tokenizerJson, tokenizerConfig] = await Promise.all(
    [json("tfjs_model.json"), json("tokenizer.json"), json("tokenizer_config.json")]);
  const graph = await tf.loadGraphModel({
    load: async () => {
      const topology = await json("model.json");
      const buffers = await Promise.all(topology.weightsManifest.flatMap((group) => group.paths)
        .map(async (path) => (await load(path)).arrayBuffer()));
      const weightData = concat(buffers);
      return {modelTopology: topology.modelTopology, weightSpecs: topology.weightsManifest.flatMap((g) => g.weights),
              weightData, format: topology.format, generatedBy: topology.generatedBy,
              convertedBy: topology.convertedBy, signature: topology.signature,
              userDefinedMetadata: topology.userDefinedMetadata, modelInitializer: topology.modelInitializer};
    },
  });
  const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  return new TfjsModel(tf, graph, tokenizer, info);
}

function concat(buffers) {
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out.buffer;
}

export class TfjsModel {
  constructor(tf, graph, tokenizer, info) {
    this.tf = tf;
    this.graph = graph;
    this.tokenizer = tokenizer;
    this.info = info;
  }

  encode(texts) {
    return encodeBatch(this.tokenizer, texts, this.info.max_length, this.info.pad_id ?? 0);
  }

  /** Runs the graph on texts; returns {output name: {data: TypedArray, shape}} for the wanted outputs. */
  async run(texts, outputs = this.info.outputs) {
    const tf = this.tf;
    const enc = this.encode(texts);
    const feeds = {};
    for (const name of this.info.inputs) {
      feeds[this.info.input_nodes?.[name] ?? name] = tf.tensor(enc[name], enc.shape, "int32");
    }
    const nodes = outputs.map((o) => this.info.output_nodes?.[o] ?? o);
    // execute() runs synchronously; a graph with control flow or dynamic shapes needs executeAsync().
    let result;
    try {
      result = this.graph.execute(feeds, nodes);
    } catch (err) {
      if (!/executeAsync/.test(err.message)) throw err;
      result = await this.graph.executeAsync(feeds, nodes);
    }
    if (!Array.isArray(result)) result = [result];
    const out = {};
    for (let i = 0; i < outputs.length; i++) {
      out[outputs[i]] = {data: await result[i].data(), shape: result[i].shape};
      result[i].dispose();
    }
    Object.values(feeds).forEach((t) => t.dispose());
    return out;
  }

  /** One Float32Array per text: the export's pooled (and normalised, if it normalises) embedding. */
  async embed(texts) {
    const {embedding} = await this.run(texts, ["embedding"]);
    const dim = embedding.shape[1];
    return texts.map((_, i) => embedding.data.slice(i * dim, (i + 1) * dim));
  }

  /** Classification: [{label, score}] per text, from the exported probabilities and label map. */
  async classify(texts) {
    const {probabilities} = await this.run(texts, ["probabilities"]);
    const n = probabilities.shape[1];
    return texts.map((_, i) => {
      const row = probabilities.data.slice(i * n, (i + 1) * n);
      const best = row.indexOf(Math.max(...row));
      return {label: this.info.labels?.[best] ?? String(best), score: row[best]};
    });
  }
}
