"""The `tf.Module` that a SavedModel is saved from, and its serving signatures.

>>> module = ServingModule(tf_model, tokenizer, FeatureExtraction(), architecture_for("bert"))
>>> tf.saved_model.save(module, "models/minilm/1", signatures=module.signatures(default="text"))

Signatures (all with dynamic batch and sequence length):

- `text`: `text` [batch] string -> tokenizer -> model -> post-processing.
- `text_pair` (tasks that take pairs): `text`, `text_pair` [batch] strings.
- `tokens`: `input_ids`, `attention_mask` (and `token_type_ids`) int32 [batch, seq].
- `tokens_int64`: the same in int64.
- `embeds`: `inputs_embeds` float32 [batch, seq, hidden] plus the masks.
- `token_count`: `text` [batch] string -> `token_count` int32 [batch], the
  tokens `text` feeds the model per row (special tokens in, after truncation),
  without running the model: usage accounting (the gateway's `usage`).
- `serving_default`: `text`, or with `default="tokens"` the `tokens` inputs and
  exactly the outputs of Transformers' own SavedModel (`logits`, or
  `last_hidden_state` and `pooler_output`; our richer outputs stay on `tokens`).

With `hidden_states` / `attentions` on, every signature also returns those,
each stacked into one batch-major tensor: [batch, layers + 1, seq, hidden]
and [batch, layers, heads, seq, seq].
"""
from __future__ import annotations

import tensorflow as tf

from protocol import DEFAULT_SIGNATURE
from signatures._architectures import Architecture
from signatures._buckets import BucketPolicy, run_in_buckets
from signatures._relative_buckets import use_exact_relative_buckets
from signatures._tasks import Task
from signatures._tokenizer import Tokenizer

__all__ = ["ServingModule", "DEFAULT_SIGNATURE_CHOICES"]

DEFAULT_SIGNATURE_CHOICES = ("text", "tokens")


class ServingModule(tf.Module):
    """Holds the TF model, the tokenizer and the task; builds the signatures.

    Architectures that need it get their model made graph-safe here, in place
    (`Architecture.exact_relative_buckets`), before anything is traced.
    """

    def __init__(self, model, tokenizer: Tokenizer, task: Task, architecture: Architecture,
                 *, hidden_states: bool = False, attentions: bool = False,
                 length_buckets: BucketPolicy | None = None):
        super().__init__(name="serving")
        if architecture.exact_relative_buckets:
            use_exact_relative_buckets(model)
        self.model = model
        self.tokenizer = tokenizer
        self._task = task
        self._architecture = architecture
        self._hidden_states = hidden_states
        self._attentions = attentions
        self._length_buckets = length_buckets  # None: string signatures run the batch as one

    def run(self, attention_mask: tf.Tensor, token_type_ids: tf.Tensor | None, *,
            input_ids: tf.Tensor | None = None, inputs_embeds: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """Model + task post-processing + the optional stacked extras."""
        outputs = self._call_model(attention_mask, token_type_ids, input_ids, inputs_embeds)
        result = self._task.outputs(outputs, attention_mask)
        return self._add_extras(result, outputs)

    def transformers_outputs(self, attention_mask: tf.Tensor, token_type_ids: tf.Tensor | None, *,
                             input_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """Exactly the outputs of Transformers' own `serving_default`: the model
        output's fields (`logits`; `last_hidden_state`, `pooler_output`...), so
        clients written for that export read the same names and row format."""
        outputs = self._call_model(attention_mask, token_type_ids, input_ids, None)
        fields = {k: v for k, v in outputs.items()
                  if v is not None and k not in ("hidden_states", "attentions")}
        return self._add_extras(fields, outputs)

    def _call_model(self, attention_mask, token_type_ids, input_ids, inputs_embeds):
        kwargs = {"attention_mask": attention_mask}
        if self._architecture.uses_token_type_ids:
            kwargs["token_type_ids"] = token_type_ids
        return self.model(input_ids=input_ids, inputs_embeds=inputs_embeds,
                          output_hidden_states=self._hidden_states,
                          output_attentions=self._attentions, training=False, **kwargs)

    def _add_extras(self, result: dict, outputs) -> dict:
        if self._hidden_states:
            result["hidden_states"] = tf.stack(outputs.hidden_states, axis=1)
        if self._attentions:
            result["attentions"] = tf.stack(outputs.attentions, axis=1)
        return result

    def _text_result(self, encoded: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """What a string signature returns for the tokenizer's packed `encoded` batch."""
        if self._length_buckets is None:
            return self._text_outputs(encoded)
        return run_in_buckets(encoded, self._text_outputs, max_tokens=self._length_buckets.max_tokens,
                              min_fill=self._length_buckets.min_fill)

    def _text_outputs(self, encoded: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        result = self.run(encoded["attention_mask"], encoded.get("token_type_ids"), input_ids=encoded["input_ids"])
        keep = self._task.text_outputs
        extras = ("hidden_states", "attentions")
        return {k: v for k, v in result.items() if keep is None or k in keep or k in extras}

    def signatures(self, default: str = "text") -> dict[str, tf.types.experimental.ConcreteFunction]:
        """Every serving signature, keyed by name, `serving_default` included."""
        if default not in DEFAULT_SIGNATURE_CHOICES:
            raise ValueError(f"default signature must be one of {DEFAULT_SIGNATURE_CHOICES}, got {default!r}")
        uses_types = self._architecture.uses_token_type_ids
        hidden_size = self.model.config.hidden_size

        def token_specs(dtype):
            names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_types else [])
            return [tf.TensorSpec([None, None], dtype, name=n) for n in names]

        def tokens_fn(dtype):
            def tokens(input_ids, attention_mask, token_type_ids=None):
                cast = lambda t: None if t is None else tf.cast(t, tf.int32)  # noqa: E731
                return self.run(cast(attention_mask), cast(token_type_ids), input_ids=cast(input_ids))
            return tf.function(tokens, input_signature=token_specs(dtype))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def text(text):
            return self._text_result(self.tokenizer(text))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def token_count(text):
            return {"token_count": tf.reduce_sum(self.tokenizer(text)["attention_mask"], axis=1)}

        embeds_specs = [tf.TensorSpec([None, None, hidden_size], tf.float32, name="inputs_embeds"),
                        tf.TensorSpec([None, None], tf.int32, name="attention_mask")]
        if uses_types:
            embeds_specs.append(tf.TensorSpec([None, None], tf.int32, name="token_type_ids"))

        @tf.function(input_signature=embeds_specs)
        def embeds(inputs_embeds, attention_mask, token_type_ids=None):
            return self.run(attention_mask, token_type_ids, inputs_embeds=inputs_embeds)

        custom = self._task.text_signatures(self)  # token-level tasks bring their own `text`
        result = {
            "text": custom.pop("text") if "text" in custom else text.get_concrete_function(),
            "tokens": tokens_fn(tf.int32).get_concrete_function(),
            "tokens_int64": tokens_fn(tf.int64).get_concrete_function(),
            "embeds": embeds.get_concrete_function(),
            "token_count": token_count.get_concrete_function(),
        }
        if self._task.takes_pairs:
            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                          tf.TensorSpec([None], tf.string, name="text_pair")])
            def text_pair(text, text_pair):
                return self._text_result(self.tokenizer(text, text_pair))
            result["text_pair"] = text_pair.get_concrete_function()
        if default == "tokens":
            @tf.function(input_signature=token_specs(tf.int32))
            def transformers_tokens(input_ids, attention_mask, token_type_ids=None):
                return self.transformers_outputs(attention_mask, token_type_ids, input_ids=input_ids)
            result[DEFAULT_SIGNATURE] = transformers_tokens.get_concrete_function()
        else:
            result[DEFAULT_SIGNATURE] = result[default]
        return result
