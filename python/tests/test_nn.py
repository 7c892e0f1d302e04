"""longseq.nn from Python: one module per registry mixer (options from the registry), the C++
module's own tensors as parameters (gradients land on them, dtype moves reach C++), decoding with
step(), and whole models that share checkpoints, evaluation and generation with the CLI."""

import json
import math
import os
import subprocess

import pytest
import torch

import longseq
from longseq import nn

CLI = os.environ.get("LONGSEQ_CLI", "longseq")

TINY = {
    "seed": 3,
    "task": {"name": "copy", "options": {"blanks": "6"}},
    "model": {"layers": 2, "mixers": ["exact", "lstm"], "dim": 16, "heads": 2, "causal": True,
              "ffn_mult": 2},
    "train": {"steps": 4, "batch_size": 4, "lr": 3e-3, "warmup": 1, "eval_every": 4,
              "eval_batches": 2},
}


def run_cli(*args):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, "longseq %s failed:\n%s\n%s" % (" ".join(map(str, args)), r.stdout,
                                                              r.stderr)
    return r.stdout


# ---- mixers --------------------------------------------------------------------------------------


def test_every_registry_mixer_has_a_module_with_the_registrys_options():
    names = [m["name"] for m in nn.REGISTRY["mixers"]]
    assert sorted(nn.MIXERS) == sorted(names)
    assert "exact" in names and "performer" in names and "s6" in names
    perf = nn.MIXERS["performer"]
    spec = {o["name"]: o for o in next(m for m in nn.REGISTRY["mixers"]
                                       if m["name"] == "performer")["options"]}
    import inspect
    sig = inspect.signature(perf.__init__)
    assert sig.parameters["features"].default == int(spec["features"]["default"])
    assert "features" in perf.__doc__ and spec["features"]["help"] in perf.__doc__
    assert sig.parameters["dim"].default == int(
        next(o for o in nn.REGISTRY["common_options"] if o["name"] == "dim")["default"])


@pytest.mark.parametrize("name", sorted(nn.MIXERS))
def test_mixer_forward_backward_and_causality(name):
    entry = next(m for m in nn.REGISTRY["mixers"] if m["name"] == name)
    causal = entry["supports_causal"]
    torch.manual_seed(0)
    extra = {"window": 4} if name == "longformer" else {}
    layer = nn.make_mixer(name, dim=8, heads=2, max_len=32, causal=causal, seed=1, **extra)
    x = torch.randn(2, 11, 8)
    y = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    params = dict(layer.named_parameters())
    assert params and all(isinstance(p, torch.nn.Parameter) for p in params.values())
    y.square().sum().backward()
    got = [n for n, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0]
    assert got, "no parameter received a gradient"
    if causal:
        layer.eval()
        x2 = x.clone()
        x2[:, 7:] += 10
        with torch.no_grad():
            assert torch.equal(layer(x)[:, :7], layer(x2)[:, :7])


def test_parameters_are_the_cpp_modules_own_tensors():
    layer = nn.ExactMixer(dim=8, heads=2, bias=True)
    x = torch.randn(1, 5, 8)
    before = layer(x).detach()
    with torch.no_grad():
        layer.wo.weight.zero_()          # an in-place update, as an optimizer makes
        layer.wo.bias.fill_(1.0)
    assert torch.equal(layer(x), torch.ones(1, 5, 8))
    assert not torch.equal(before, torch.ones(1, 5, 8))
    layer.double()                        # replaces every tensor's data: C++ sees float64
    assert layer(x.double()).dtype == torch.float64


def test_an_optimizer_trains_a_mixer():
    torch.manual_seed(0)
    layer = nn.PerformerMixer(dim=8, heads=2, causal=True, features=16, seed=2)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    x, target = torch.randn(4, 9, 8), torch.randn(4, 9, 8)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (layer(x) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_mixer_options_are_checked_by_the_library():
    with pytest.raises(TypeError, match="unknown option featurez; valid options: .*features"):
        nn.PerformerMixer(featurez=3)
    with pytest.raises(RuntimeError, match="performer: option `features` must be > 0, got 0"):
        nn.PerformerMixer(features=0)
    with pytest.raises(RuntimeError,
                       match="performer: option `kernel` must be one of softmax, relu"):
        nn.PerformerMixer(kernel="gelu")
    with pytest.raises(ValueError, match="unknown mixer 'nosuch'; valid mixers: exact"):
        nn.make_mixer("nosuch")


@pytest.mark.parametrize("name", ["exact", "performer", "lstm", "mingru", "s6", "lmu", "linear"])
def test_mixer_step_continues_forward(name):
    layer = nn.make_mixer(name, dim=8, heads=2, causal=True, max_len=32, seed=4)
    assert layer.step_unsupported() == ""
    layer.eval()
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        full = layer(x)
    layer.reset_state()
    parts = [layer.step(x[:, :4]), layer.step(x[:, 4:5]), layer.step(x[:, 5:])]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


# ---- models, checkpoints and the CLI -------------------------------------------------------------


def cross_entropy(logits, targets, mask):
    losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                               reduction="none", ignore_index=-100)
    mask = mask.flatten() & (targets.flatten() != -100)
    return (losses * mask).sum() / mask.sum(), mask.sum()


def python_loss(model, split, batches, batch_size):
    """The mean per-position loss over `batches`, computed here from the model's logits."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(batches):
            inputs, targets, mask, kp = model.batch(split, i, batch_size)
            loss, n = cross_entropy(model(inputs, kp), targets, mask)
            total += loss.item() * n.item()
            count += n.item()
    return total / count


def cli_eval(path, batches, batch_size):
    out = run_cli("eval", path, "--split", "test", "--max-batches", batches, "--batch-size",
                  batch_size, "--json")
    return json.loads(out.strip().splitlines()[-1])


def test_a_cli_trained_checkpoint_gives_the_same_logits_in_python(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    run_cli("train", "--config", config, "--out", tmp_path / "run", "--threads", 1)
    model, cfg = longseq.load_checkpoint(str(tmp_path / "run"))
    assert cfg["model"]["mixers"] == ["exact", "lstm"]
    want = cli_eval(tmp_path / "run", 2, 4)
    got = python_loss(model, "test", 2, 4)
    assert math.isclose(got, want["loss"], rel_tol=1e-5), (got, want)
    # The state dict is the C++ one: a plain load_state_dict of the checkpoint's weights.
    step_dir = os.path.join(str(tmp_path / "run"), open(tmp_path / "run" / "latest").read().strip())
    weights = longseq.load_safetensors(os.path.join(step_dir, "model.safetensors"))
    assert set(weights) == set(model.state_dict())
    fresh = nn.Model(cfg)
    fresh.load_state_dict(weights)
    assert math.isclose(python_loss(fresh, "test", 2, 4), want["loss"], rel_tol=1e-5)


def test_a_python_trained_model_evaluates_the_same_in_the_cli(tmp_path):
    torch.manual_seed(0)
    model = nn.Model(TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(4):
        inputs, targets, mask, kp = model.batch("train", step, 4)
        loss, _ = cross_entropy(model(inputs, kp), targets, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = model.save_checkpoint(str(tmp_path / "py"), step=4)
    assert os.path.isdir(path)
    got = python_loss(model, "test", 2, 4)
    want = cli_eval(tmp_path / "py", 2, 4)
    assert math.isclose(got, want["loss"], rel_tol=1e-5), (got, want)
    assert want["step"] == 4
    # And back: Python reads its own checkpoint.
    again, _ = longseq.load_checkpoint(str(tmp_path / "py"))
    assert math.isclose(python_loss(again, "test", 2, 4), got, rel_tol=1e-6)


def test_generate_in_python_equals_the_cli(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    config = dict(TINY, task={"name": "bytes", "options": {"file": str(text), "length": "32"}},
                  model=dict(TINY["model"], mixers=["exact", "performer"]))
    (tmp_path / "lm.json").write_text(json.dumps(config))
    run_cli("train", "--config", tmp_path / "lm.json", "--out", tmp_path / "lm", "--threads", 1)
    model, _ = longseq.load_checkpoint(str(tmp_path / "lm"))
    for temperature in (0, 0.8):
        out = run_cli("generate", tmp_path / "lm", "--prompt-ids", "1,2,3", "--max-new", 6,
                      "--temperature", temperature, "--top-k", 3, "--seed", 11, "--json")
        cli_tokens = json.loads(out.strip().splitlines()[-1])["tokens"]
        py = model.generate(torch.tensor([[1, 2, 3]]), max_new=6, temperature=temperature,
                            top_k=3, seed=11)
        assert py[0].tolist() == cli_tokens
    # step() carries every mixer's decode state: the same logits as the whole-sequence forward.
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    model.eval()
    with torch.no_grad():
        full = model(tokens)
    model.reset_state()
    steps = torch.cat([model.step(tokens[:, :3]), model.step(tokens[:, 3:])], 1)
    assert torch.allclose(steps, full, atol=1e-5)


def test_model_errors_name_the_problem(tmp_path):
    with pytest.raises(RuntimeError, match="unknown key"):
        nn.Model(dict(TINY, model=dict(TINY["model"], dimm=3)))
    with pytest.raises(RuntimeError, match="is not a directory"):
        longseq.load_checkpoint(str(tmp_path / "missing"))
    model = nn.Model(TINY)
    with pytest.raises(RuntimeError, match=r"expected `step` in \[0, train.steps = 4\], got 9"):
        model.save_checkpoint(str(tmp_path / "x"), step=9)
