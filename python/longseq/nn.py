"""Every longseq registry mixer as a torch.nn.Module, and whole longseq models.

The classes are made at import time from the library's registry (the JSON of `longseq list
--json`): their names, options, defaults, choices and docs are the registry's, never typed again
here. Each module holds the C++ module (torch.classes.longseq.Mixer / Model) and registers that
module's own parameter and buffer tensors, under the C++ names ("wq.weight",
"blocks.0.mixer.wq.weight"): the same tensors, not copies. So the C++ forward computes with what
the optimizer updates, gradients land on these parameters, `.to(dtype)` reaches the C++ module,
and state dicts are interchangeable with the checkpoints of `longseq train`.

    layer = longseq.nn.PerformerMixer(dim=64, heads=4, causal=True, features=32)
    y = layer(x)                                   # x [B, T, 64] -> [B, T, 64]
    model = longseq.nn.Model(config_dict)          # as `longseq train --config` builds it
    model, config = longseq.load_checkpoint("runs/x")
"""

import inspect
import json

import torch

_ops = torch.ops.longseq
REGISTRY = json.loads(_ops.registry_json())


# ---- option values: Python <-> the registry's text form ------------------------------------------


def _to_text(spec, value):
    kind = spec["type"]
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError("option `%s` expects a bool, got %r" % (spec["name"], value))
        return "true" if value else "false"
    if kind == "int list":
        if isinstance(value, int):
            value = [value]
        return ",".join(str(int(v)) for v in value)
    if kind == "float":
        return repr(float(value))
    if kind == "int":
        if isinstance(value, bool) or int(value) != value:
            raise TypeError("option `%s` expects an int, got %r" % (spec["name"], value))
        return str(int(value))
    return str(value)


def _from_text(spec):
    text, kind = spec["default"], spec["type"]
    if kind == "bool":
        return text == "true"
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "int list":
        return [int(v) for v in text.split(",")] if text else []
    return text


def _option_doc(spec):
    extra = []
    if "choices" in spec:
        extra.append("one of " + ", ".join(spec["choices"]))
    if "range" in spec:
        extra.append(spec["range"])
    if "rule" in spec:
        extra.append(spec["rule"])
    return "    %s (%s, default %r): %s%s" % (
        spec["name"], spec["type"], _from_text(spec), spec["help"],
        " [" + "; ".join(extra) + "]" if extra else "")


# ---- tensors shared with the C++ module ----------------------------------------------------------


class _Node(torch.nn.Module):
    """A container mirroring one C++ submodule, so state-dict names match the C++ ones."""

    def forward(self, *args):  # pragma: no cover - containers are never called
        raise RuntimeError("longseq: an internal container was called")


def _child(module, path):
    for part in path:
        if part not in module._modules:
            module.add_module(part, _Node())
        module = module._modules[part]
    return module


def _adopt(module, holder):
    """Registers the C++ module's parameters and buffers on `module` under their C++ names."""
    for name, tensor in holder.parameters().items():
        *path, leaf = name.split(".")
        # The very tensor of the C++ module, seen as a Parameter (no copy, no new TensorImpl).
        tensor.__class__ = torch.nn.Parameter
        _child(module, path).register_parameter(leaf, tensor)
    for name, tensor in holder.buffers().items():
        *path, leaf = name.split(".")
        _child(module, path).register_buffer(leaf, tensor)


# ---- mixers --------------------------------------------------------------------------------------


class Mixer(torch.nn.Module):
    """Base of the registry mixers: x [B, T, C] (and key_padding bool [B, T]) -> [B, T, C]."""

    name = None
    _specs = {}

    def __init__(self, **options):
        super().__init__()
        unknown = sorted(set(options) - set(self._specs))
        if unknown:
            raise TypeError("%s: unknown option%s %s; valid options: %s" % (
                self.name, "s" if len(unknown) > 1 else "", ", ".join(unknown),
                ", ".join(self._specs)))
        text = {k: _to_text(self._specs[k], v) for k, v in options.items()}
        self.options = {k: (options[k] if k in options else _from_text(s))
                        for k, s in self._specs.items()}
        self._holder = torch.classes.longseq.Mixer(self.name, json.dumps(text))
        _adopt(self, self._holder)

    def forward(self, x, key_padding=None):
        return self._holder.forward(x, key_padding, self.training)

    def step_unsupported(self):
        """Empty when step() can continue a causal sequence; else why not."""
        return self._holder.step_unsupported()

    def reset_state(self):
        """Starts a new sequence for step()."""
        self._holder.reset_state()

    @torch.no_grad()
    def step(self, x):
        """x [B, n, C]: the next n positions after the last reset_state() -> [B, n, C] (eval)."""
        return self._holder.step(x)

    def extra_repr(self):
        return ", ".join("%s=%r" % kv for kv in self.options.items())


def _class_name(name):
    return "".join(part.capitalize() for part in name.split("_")) + "Mixer"


def _make_mixer_class(entry):
    specs = {s["name"]: s for s in REGISTRY["common_options"]}
    specs.update({s["name"]: s for s in entry["options"]})
    doc = "%s: %s%s.\n\nx [B, T, dim] (key_padding bool [B, T]) -> [B, T, dim].\n\n" \
          "Options:\n%s\n" % (
        entry["name"], entry["description"],
        "" if entry["supports_causal"] else " (non-causal only)",
        "\n".join(_option_doc(s) for s in specs.values()))
    cls = type(_class_name(entry["name"]), (Mixer,), {
        "name": entry["name"], "_specs": specs, "__doc__": doc, "__module__": __name__})
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=_from_text(s))
               for n, s in specs.items()]
    cls.__init__ = _with_signature(Mixer.__init__, inspect.Signature(params))
    return cls


def _with_signature(init, signature):
    def __init__(self, **options):
        init(self, **options)
    __init__.__signature__ = signature
    return __init__


MIXERS = {}
for _entry in REGISTRY["mixers"]:
    MIXERS[_entry["name"]] = globals()[_class_name(_entry["name"])] = _make_mixer_class(_entry)
del _entry


def make_mixer(name, **options):
    """The registry mixer `name` with the given options (an unknown name lists the valid ones)."""
    if name not in MIXERS:
        raise ValueError("unknown mixer '%s'; valid mixers: %s" % (name, ", ".join(MIXERS)))
    return MIXERS[name](**options)


# ---- models --------------------------------------------------------------------------------------


class Model(torch.nn.Module):
    """A whole longseq model (the `model` section of a training config) with its task.

    config: a dict or JSON text in the form of `longseq train --config` (task, model, train); the
    model is built exactly as `longseq train` builds it (same seed, same initial weights).
    forward(inputs, key_padding=None): token ids [B, T] (or features [B, T, F]) -> logits.
    """

    def __init__(self, config=None, _checkpoint=""):
        super().__init__()
        if config is None and not _checkpoint:
            raise TypeError("longseq.nn.Model: give a config (dict or JSON text)")
        text = "" if config is None else (config if isinstance(config, str) else json.dumps(config))
        self._holder = torch.classes.longseq.Model(text, _checkpoint)
        _adopt(self, self._holder)

    @property
    def config(self):
        """The resolved training config (task, model, train) as a dict."""
        return json.loads(self._holder.config_json())

    def forward(self, inputs, key_padding=None):
        return self._holder.forward(inputs, key_padding, self.training)

    def batch(self, split="test", index=0, batch_size=None):
        """Batch `index` of `split` of the model's task, as the CLI draws it:
        (inputs, targets, loss_mask or None, key_padding or None)."""
        if batch_size is None:
            batch_size = self.config["train"]["batch_size"]
        return self._holder.batch(split, index, batch_size)

    @torch.no_grad()
    def evaluate(self, split="test", batch_size=0, max_batches=0):
        """(loss, accuracy or -1, count) on `split`, as `longseq eval` reports them."""
        was_training = self.training
        try:
            return self._holder.evaluate(split, batch_size, max_batches)
        finally:
            self.train(was_training)

    def generate(self, prompt, max_new=64, temperature=1.0, top_k=0, seed=0, use_cache=True):
        """Samples max_new tokens after prompt [B, P] (int64) as `longseq generate` does; returns
        [B, P + max_new]. temperature 0 = greedy. Runs in eval mode without grad."""
        was_training = self.training
        try:
            return self._holder.generate(prompt, max_new, float(temperature), top_k, seed,
                                         use_cache)
        finally:
            self.train(was_training)

    def step_unsupported(self):
        return self._holder.step_unsupported()

    def reset_state(self):
        """Starts a new sequence for step()."""
        self._holder.reset_state()

    @torch.no_grad()
    def step(self, tokens):
        """tokens [B, n]: outputs [B, n, ·] for the next n positions after reset_state(),
        carrying every mixer's decode state (eval mode)."""
        return self._holder.step(tokens)

    def save_checkpoint(self, out_dir, step=0, keep_last=3):
        """Writes a checkpoint of the current weights that `longseq eval`, `longseq generate` and
        `longseq.load_checkpoint` read (atomically: a crash leaves the previous one). Returns its
        directory."""
        return self._holder.save(out_dir, step, keep_last)

    def load_checkpoint(self, path):
        """Loads a checkpoint of the same config into this model's tensors."""
        self._holder.load(path)

    @classmethod
    def from_checkpoint(cls, path):
        """The model of a `longseq train` checkpoint (a step directory or a run's --out)."""
        return cls(None, _checkpoint=path)


def load_checkpoint(path):
    """(model, config) from a checkpoint written by `longseq train` or Model.save_checkpoint."""
    model = Model.from_checkpoint(path)
    return model, model.config


def load_safetensors(path):
    """A safetensors file as {name: tensor} (CPU), read by the library's own validating reader."""
    return dict(_ops.load_safetensors(path))


__all__ = ["Mixer", "MIXERS", "make_mixer", "Model", "load_checkpoint", "load_safetensors",
           "REGISTRY"] + [_class_name(e["name"]) for e in REGISTRY["mixers"]]
