"""The bad-input matrix: every subcommand's flags, every config key, every checkpoint file and every
dataset reader given what a careless user or a hostile file would give. Each case must exit
non-zero (not by a signal) within the time limit, print `error: ` and name the argument, key or
file it refuses. Run by ctest (cli.bad_inputs) with LONGSEQ_CLI set to the built tool."""

import gzip
import json
import math
import os
import shutil
import struct
import subprocess

import pytest

CLI = os.environ.get("LONGSEQ_CLI", "longseq")
TIMEOUT = 60  # a case that runs longer is a hang

TINY = {
    "seed": 1,
    "task": {"name": "copy", "options": {"blanks": "4"}},
    "model": {"layers": 1, "mixers": ["exact"], "dim": 8, "heads": 2, "causal": True},
    "train": {"steps": 2, "batch_size": 2, "warmup": 1, "eval_every": 2, "eval_batches": 1},
}


def run(args, env=None):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)


def refused(args, expect, env=None):
    """`expect`: a text the message must contain, or a tuple of texts one of which it must."""
    r = run(args, env)
    assert r.returncode != 0, "accepted silently: longseq %s\n%s" % (" ".join(map(str, args)),
                                                                     r.stdout[-2000:])
    assert 0 < r.returncode < 128, "crashed (%d): %s" % (r.returncode, r.stderr[-2000:])
    assert "error: " in r.stderr, "no `error: ` line:\n" + r.stderr[-2000:]
    wanted = expect if isinstance(expect, tuple) else (expect,)
    assert any(w in r.stderr for w in wanted), "the message does not name %r:\n%s" % (
        expect, r.stderr[-2000:])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny trained run (its config lists every model and train key) and a text file."""
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "tiny.json").write_text(json.dumps(TINY))
    r = run(["train", "--config", d / "tiny.json", "--out", d / "run", "--threads", 1])
    assert r.returncode == 0, r.stderr
    step = (d / "run" / "latest").read_text().strip()
    (d / "text.txt").write_text("hello world, " * 400)
    return {"dir": d, "run": d / "run", "step": d / "run" / step}


def saved_config(work):
    return json.loads((work["step"] / "state.json").read_text())["config"]


def copy_checkpoint(work, name):
    dst = work["dir"] / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(work["step"], dst)
    return dst


# ---- flags of every subcommand ------------------------------------------------------------------

FLAG_CASES = [
    (["--threads", "0", "list"], "--threads"),
    (["--threads", "100000", "list"], "`--threads` 100000 is above the limit"),
    (["--threads", "abc", "list"], "--threads"),
    (["nosuchcommand"], "nosuchcommand"),
    (["list", "--nosuchflag"], "--nosuchflag"),
    (["bench", "--mixers", "nosuch", "--seq-lens", "64"], "unknown mixer 'nosuch'"),
    (["bench", "--mixers", "exact", "--seq-lens", "0"], "`--seq-lens` values must be > 0"),
    (["bench", "--mixers", "exact", "--seq-lens", "-5"], "`--seq-lens` values must be > 0"),
    (["bench", "--mixers", "exact", "--seq-lens", "x"], "--seq-lens"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--batch", "0"], "`--batch` must be > 0"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--heads", "0"], "`--heads` must be > 0"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--head-dim", "0"], "`--head-dim`"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--repeats", "0"], "`--repeats`"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--warmup", "-1"], "`--warmup`"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--mode", "back"], "--mode"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--impl", "gpu"], "--impl"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--opt", "features=3"],
     "expects MIXER.KEY=VALUE"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--opt", "performer.features=3"],
     "`--opt` names mixer 'performer', which is not in `--mixers`"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--max-memory", "abc"], "--max-memory"),
    (["bench", "--mixers", "linformer", "--causal", "--seq-lens", "64"],
     "linformer: `causal` is not supported"),
    (["eval"], "checkpoint"),
    (["eval", "/nonexistent"], "'/nonexistent' is not a directory"),
    (["generate", "/nonexistent", "--prompt-ids", "1"], "'/nonexistent' is not a directory"),
    (["diagnose", "/nonexistent"], "/nonexistent"),
    (["recommend", "--seq-len", "0"], "`--seq-len` must be > 0"),
    (["recommend", "--seq-len", "100", "--quality", "perfect"], "--quality"),
    (["recommend", "--seq-len", "100", "--train", "--infer"], "`--train` or `--infer`, not both"),
    (["recommend", "--seq-len", "100", "--max-ms", "-1"], "`--max-ms` must be >= 0"),
    (["recommend", "--seq-len", "100", "--from", "/nonexistent.json"], "/nonexistent.json"),
    (["train", "--config", "/nonexistent.json"], "cannot read '/nonexistent.json'"),
    (["train", "--resume", "/nonexistent"], "is not a directory"),
    (["train", "--set", "train.stepz=3"], "unknown key `train.stepz`"),
    (["train", "--set", "=3"], "`--set` expects key=value"),
    (["train", "--set", "noequals"], "`--set` expects key=value"),
    (["train", "--keep", "-1", "--out", "/tmp/x"], "`--keep` must be >= 0"),
    (["train", "--save-every", "-1"], "`--save-every` must be >= 0"),
    (["train", "--out", "/proc/nonexistent/run"], "/proc/nonexistent"),
    (["train", "--final-split", "dev"], "--final-split"),
    (["train", "--max-memory", "-1"], "`--max-memory` must be in [0, 1048576] GiB"),
    (["train", "--max-memory", "nan"], "`--max-memory` must be in [0, 1048576] GiB"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--profile", "--profile-top", "0"],
     "`--profile-top` must be > 0"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--trace-dir", "/tmp/t"],
     "`--trace-dir` writes the profiler's traces: it needs `--profile`"),
    (["bench", "--mixers", "exact", "--seq-lens", "64", "--profile", "--trace-dir",
      "/proc/nonexistent/traces"], "`--trace-dir` '/proc/nonexistent/traces'"),
    (["train", "--profile-steps", "-1"], "`--profile-steps` must be in [0, 100000]"),
    (["train", "--profile-steps", "2.5"], "--profile-steps"),
    (["train", "--profile-steps", "1", "--profile-top", "0"], "`--profile-top` must be > 0"),
    (["train", "--profile-dir", "/tmp/p"], "`--profile-dir` is where `--profile-steps` writes"),
    (["train", "--profile-steps", "1", "--nproc", "2"], "`--profile-steps` profiles one process"),
]


@pytest.mark.parametrize("args,expect", FLAG_CASES)
def test_flags(args, expect):
    refused(args, expect)


def test_out_is_a_file_or_a_step_directory(work, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    refused(["train", "--config", work["dir"] / "tiny.json", "--out", f], "is not a directory")
    refused(["train", "--config", work["dir"] / "tiny.json", "--out", work["step"]],
            "is a checkpoint (it holds state.json)")


def test_profile_dir_is_a_file_or_past_the_schedule(work, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    refused(["train", "--config", work["dir"] / "tiny.json", "--profile-steps", "1",
             "--profile-dir", f], "`--profile-dir` '%s'" % f)
    refused(["train", "--config", work["dir"] / "tiny.json", "--profile-steps", "3"],
            "`--profile-steps` 3 needs 3 steps of the schedule, but train.steps leaves 2")


def test_metrics_is_a_directory(work, tmp_path):
    refused(["train", "--config", work["dir"] / "tiny.json", "--metrics", tmp_path],
            "`--metrics`")


def test_generate_prompt_errors(work):
    refused(["generate", work["run"], "--prompt-ids", "1,x"], "--prompt-ids")
    refused(["generate", work["run"], "--prompt-ids", "99999"], "outside the model's vocabulary")
    refused(["generate", work["run"], "--prompt-ids", "1", "--max-new", "-1"], "--max-new")
    refused(["generate", work["run"], "--prompt-ids", "1", "--temperature", "-1"], "--temperature")
    refused(["generate", work["run"], "--prompt-ids", "1", "--top-k", "-3"], "--top-k")


def test_eval_flag_errors(work):
    refused(["eval", work["run"], "--split", "dev"], "--split")
    refused(["eval", work["run"], "--batch-size", "-2"], "`--batch-size` must be >= 0")
    refused(["eval", work["run"], "--max-batches", "-1"], "`--max-batches` must be >= 0")


# ---- every config key: wrong types and ranges, through --set and through a file ----------------


def config_value_cases():
    """(key, value text, why) for each model/train key of a resolved config."""
    config = {
        "model": {"layers": 1, "dim": 8, "heads": 2, "head_dim": 0, "causal": True,
                  "attn_dropout": 0.0, "max_len": 64, "bias": False, "rotary": False,
                  "norm": "layernorm", "ffn_mult": 2, "ffn_chunk": 0, "dropout": 0.0,
                  "positions": "learned", "head": "lm", "num_outputs": 0, "pooling": "mean",
                  "reversible": False, "token_shift": False, "sequence_parallel": False,
                  "vocab_size": 0, "input_dim": 0},
        "train": {"steps": 2, "batch_size": 2, "accumulate": 1, "tbptt": 0, "lr": 1e-3,
                  "min_lr_ratio": 0.1, "warmup": 1, "weight_decay": 0.01, "beta1": 0.9,
                  "beta2": 0.98, "adam_eps": 1e-8, "clip": 1.0, "eval_every": 2,
                  "eval_batches": 1, "max_bad_steps": 10},
    }
    cases = []
    for section, keys in config.items():
        for key, value in keys.items():
            # Named as `model.dim` (type errors) or "model: option `dim`" (range and choices).
            key_name = "%s.%s" % (section, key)
            name = (key_name, "%s: option `%s`" % (section, key))
            if isinstance(value, bool):
                cases.append((key_name, "maybe", name))
                cases.append((key_name, "3", name))
            elif isinstance(value, int):
                cases.append((key_name, "2.7", name))
                cases.append((key_name, '"many"', name))
                cases.append((key_name, "-5", name))
            elif isinstance(value, float):
                cases.append((key_name, '"fast"', name))
                cases.append((key_name, "-1", name))
            else:
                cases.append((key_name, "nosuchvalue", name))
    cases += [("seed", "-1", "seed"), ("seed", "1.5", "seed"), ("seed", '"x"', "seed"),
              ("model.mixers", "nosuch", "unknown mixer 'nosuch'"),
              ("model.mixers", "[]", "mixers"),
              ("task.name", "nosuch", "unknown task 'nosuch'"),
              ("task.options.blanks", "-3", "blanks"),
              ("task.options.blanks", "x", "blanks"),
              ("task.options.nosuch", "3", "nosuch"),
              ("model.mixer_options.exact.nosuch", "3", "nosuch")]
    return cases


@pytest.mark.parametrize("key,value,expect", config_value_cases())
def test_config_values(work, key, value, expect):
    refused(["train", "--config", work["dir"] / "tiny.json", "--set", "%s=%s" % (key, value)],
            expect)


CONFIG_FILES = [
    ("null.json", "null", "must be a JSON object"),
    ("empty.json", "", "is empty"),
    ("blank.json", "   \n", "is empty"),
    ("array.json", "[1, 2]", "must be a JSON object"),
    ("broken.json", '{"train": {', "not valid JSON"),
    ("dup.json", '{"seed": 1, "seed": 2}', 'duplicate key "seed"'),
    ("dup_nested.json", '{"train": {"lr": 1, "lr": 2}}', 'duplicate key "lr"'),
    ("deep.json", '{"x": ' + "[" * 100000 + "]" * 100000 + "}", "nested deeper than"),
    ("deep_objects.json", '{"a":' * 5000 + "1" + "}" * 5000, "nested deeper than"),
    ("wrong_section.json", '{"train": 3}', "`train` must be an object"),
    ("unknown_top.json", '{"trian": {}}', "unknown key `config.trian`"),
]


@pytest.mark.parametrize("name,text,expect", CONFIG_FILES, ids=[c[0] for c in CONFIG_FILES])
def test_config_files(tmp_path, name, text, expect):
    (tmp_path / name).write_text(text)
    refused(["train", "--config", tmp_path / name], expect)


def test_config_is_a_directory_or_a_fifo(tmp_path):
    refused(["train", "--config", tmp_path], "is a directory")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    refused(["train", "--config", fifo], "not a regular file")


# ---- checkpoint files -------------------------------------------------------------------------


def write_safetensors(path, header, data=b""):
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def edit_state(ckpt, change):
    st = json.loads((ckpt / "state.json").read_text())
    change(st)
    (ckpt / "state.json").write_text(json.dumps(st))


def checkpoint_cases():
    def state(change):
        return lambda c: edit_state(c, change)

    def text(name, content):
        return lambda c: (c / name).write_text(content)

    def raw(name, content):
        return lambda c: (c / name).write_bytes(content)

    def fifo(name):
        def make(c):
            (c / name).unlink()
            os.mkfifo(c / name)
        return make

    def remove(name):
        return lambda c: (c / name).unlink()

    return [
        ("state_null", text("state.json", "null"), "must hold a JSON object"),
        ("state_empty", text("state.json", ""), "state.json"),
        ("state_deep", text("state.json", "[" * 100000 + "]" * 100000), "nested deeper than"),
        ("state_dup", text("state.json", '{"step": 1, "step": 2}'), 'duplicate key "step"'),
        ("state_fifo", fifo("state.json"), "not a regular file"),
        ("state_missing_step", state(lambda s: s.pop("step")), "has no `step`"),
        ("state_negative_step", state(lambda s: s.update(step=-1)), "`step` must be an integer >= 0"),
        ("state_float_step", state(lambda s: s.update(step=1.5)), "`step` must be an integer >= 0"),
        ("state_big_step", state(lambda s: s.update(step=10 ** 9)), "is outside this run's"),
        ("state_rng_short", state(lambda s: s.update(rng_state="00ff")), "`rng_state`"),
        ("state_rng_hex", state(lambda s: s.update(rng_state="zz")), "RNG state"),
        ("state_rng_missing", state(lambda s: s.pop("rng_state")), "`rng_state`"),
        ("state_config_missing", state(lambda s: s.pop("config")), "`config`"),
        ("state_config_other", state(lambda s: s["config"]["model"].update(dim=16)),
         "has shape"),
        ("state_skipped_negative", state(lambda s: s.update(skipped_steps=-3)), "skipped_steps"),
        ("model_missing", remove("model.safetensors"), "model.safetensors"),
        ("model_fifo", fifo("model.safetensors"), "model.safetensors"),
        ("model_empty", raw("model.safetensors", b""), "model.safetensors"),
        ("model_truncated", None, "model.safetensors"),
        ("model_deep_header", None, "nested deeper than"),
        ("model_dup_header", None, "duplicate key"),
        ("model_nan", None, "non-finite values"),
        ("model_wrong_shape", None, "model.safetensors"),
        ("optimizer_missing", remove("optimizer.safetensors"), "optimizer.safetensors"),
        ("optimizer_negative_sq", None, "negative second moments"),
        ("optimizer_nan", None, "non-finite values"),
        ("optimizer_bad_name", None, "unexpected entry"),
        ("optimizer_big_index", None, "names parameter"),
        ("optimizer_negative_step", None, "must be an integer step"),
        ("optimizer_incomplete", None, "has optimizer state but no"),
    ]


def tensors_of(path):
    """(header, data) of a safetensors file."""
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), bytearray(blob[8 + n:])


def corrupt_safetensors(ckpt, case):
    model, opt = ckpt / "model.safetensors", ckpt / "optimizer.safetensors"
    if case == "model_truncated":
        model.write_bytes(model.read_bytes()[:-7])
    elif case == "model_deep_header":
        write_safetensors(model, {"x": {"shape": [[[[[]]]]]}})
    elif case == "model_dup_header":
        head = b'{"a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, "a": {}}'
        model.write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * 4)
    elif case in ("model_nan", "optimizer_nan", "optimizer_negative_sq"):
        path = model if case == "model_nan" else opt
        header, data = tensors_of(path)
        name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"
                    and (case == "model_nan" or k.endswith("exp_avg_sq" if "sq" in case else "exp_avg")))
        begin = header[name]["data_offsets"][0]
        data[begin:begin + 4] = struct.pack("<f", -1.0 if "sq" in case else math.nan)
        write_safetensors(path, header, bytes(data))
    elif case == "model_wrong_shape":
        header, data = tensors_of(model)
        name = next(k for k in header if k != "__metadata__" and len(header[k]["shape"]) == 2)
        s = header[name]["shape"]
        header[name]["shape"] = [s[1], s[0]] if s[0] != s[1] else [s[0] * s[1], 1]
        write_safetensors(model, header, bytes(data))
    elif case.startswith("optimizer_"):
        header, data = tensors_of(opt)
        names = [k for k in header if k != "__metadata__"]
        if case == "optimizer_bad_name":
            header["bogus"] = header.pop(names[0])
        elif case == "optimizer_big_index":
            header["param.999." + names[0].split(".", 2)[2]] = header.pop(names[0])
        elif case == "optimizer_negative_step":
            step = next(k for k in names if k.endswith(".step"))
            begin = header[step]["data_offsets"][0]
            data[begin:begin + 8] = struct.pack("<q", -4)
        elif case == "optimizer_incomplete":
            victim = next(k for k in names if k.endswith(".exp_avg_sq"))
            # Drop the entry and its bytes: move later tensors down.
            begin, end = header.pop(victim)["data_offsets"]
            del data[begin:end]
            for k, v in header.items():
                if k != "__metadata__" and v["data_offsets"][0] >= end:
                    v["data_offsets"] = [o - (end - begin) for o in v["data_offsets"]]
        write_safetensors(opt, header, bytes(data))


@pytest.mark.parametrize("case", checkpoint_cases(), ids=lambda c: c[0])
def test_checkpoint_files(work, case):
    name, make, expect = case
    ckpt = copy_checkpoint(work, "ckpt_" + name)
    if make is None:
        corrupt_safetensors(ckpt, name)
    else:
        make(ckpt)
    for cmd in (["eval", ckpt], ["train", "--resume", ckpt, "--out", work["dir"] / ("out_" + name)]):
        refused(cmd, expect)


def test_latest_pointer_errors(work, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "latest").write_text("step_00000009\n")
    refused(["eval", run_dir], "names 'step_00000009', which is missing")
    (run_dir / "latest").write_text("../../etc\n")
    refused(["eval", run_dir], "is malformed")
    (run_dir / "latest").unlink()
    refused(["eval", run_dir], "holds neither a checkpoint")
    os.mkfifo(run_dir / "latest")
    refused(["eval", run_dir], "not a regular file")


# ---- dataset readers --------------------------------------------------------------------------


def idx_images(n, rows=28, cols=28, fill=0):
    return struct.pack(">IIII", 0x803, n, rows, cols) + bytes([fill]) * (n * rows * cols)


def idx_labels(values):
    return struct.pack(">II", 0x801, len(values)) + bytes(values)


def fmnist_dir(tmp_path, train_images=None, train_labels=None, test_images=None,
               test_labels=None, raw=None):
    d = tmp_path / "fmnist"
    d.mkdir(exist_ok=True)
    files = {
        "train-images-idx3-ubyte.gz": train_images or idx_images(20),
        "train-labels-idx1-ubyte.gz": train_labels or idx_labels([1] * 20),
        "t10k-images-idx3-ubyte.gz": test_images or idx_images(10),
        "t10k-labels-idx1-ubyte.gz": test_labels or idx_labels([2] * 10),
    }
    for name, content in files.items():
        data = gzip.compress(content)
        if raw and name in raw:
            data = raw[name](data)
        (d / name).write_bytes(data)
    return d


FMNIST_CASES = [
    ("count_mismatch", dict(train_labels=idx_labels([1] * 19)), "20 images but 19 labels"),
    ("label_range", dict(test_labels=idx_labels([2] * 9 + [200])), "holds label 200"),
    ("bad_magic", dict(train_images=b"\0\0\x08\x04" + idx_images(20)[4:]), "IDX magic"),
    ("short_body", dict(test_images=idx_images(10)[:-100]), "header announces 10 items"),
    ("wrong_size", dict(train_images=idx_images(20, 14, 14)), "expected 28x28"),
    ("truncated_gzip", dict(raw={"train-images-idx3-ubyte.gz": lambda b: b[:-5]}),
     "corrupt or truncated"),
    ("garbage_gzip", dict(raw={"t10k-labels-idx1-ubyte.gz": lambda b: b[:12] + b"\xff" * 20}),
     "corrupt or truncated"),
    ("bomb", dict(train_images=idx_images(20) + b"\0" * (80 << 20)), "decompresses to more than"),
]


@pytest.mark.parametrize("name,kwargs,expect", FMNIST_CASES, ids=[c[0] for c in FMNIST_CASES])
def test_fmnist_files(tmp_path, name, kwargs, expect):
    d = fmnist_dir(tmp_path, **kwargs)
    refused(["train", "--set", "task.name=fmnist", "--set", "task.options.dir=%s" % d,
             "--set", "task.options.valid_size=5", "--set", "model.dim=8", "--set", "model.heads=2",
             "--set", "train.steps=1"], expect)


def test_fmnist_missing_and_special_files(tmp_path):
    d = fmnist_dir(tmp_path)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    args = ["train", "--set", "task.name=fmnist", "--set", "task.options.dir=%s" % d,
            "--set", "train.steps=1"]
    refused(args, "t10k-labels-idx1-ubyte.gz")
    os.mkfifo(d / "t10k-labels-idx1-ubyte.gz")
    refused(args, "not a regular file")


def test_bytes_file_errors(work, tmp_path):
    base = ["train", "--set", "task.name=bytes", "--set", "task.options.length=16",
            "--set", "train.steps=1"]
    refused(base, "option `file` is required")
    refused(base + ["--set", "task.options.file=/nonexistent.txt"], "/nonexistent.txt")
    refused(base + ["--set", "task.options.file=%s" % tmp_path], "is a directory")
    short = tmp_path / "short.txt"
    short.write_text("abc")
    refused(base + ["--set", "task.options.file=%s" % short], "has 3 bytes")
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    refused(base + ["--set", "task.options.file=%s" % fifo], "not a regular file")
    refused(["train", "--set", "task.name=bytes", "--set", "task.options.file=%s" % short,
             "--set", "task.options.length=0"], "`length` must be in [1")


# ---- every mixer option, through bench --opt ----------------------------------------------------


def mixer_option_cases():
    listing = json.loads(subprocess.run([CLI, "list", "--json"], capture_output=True, text=True,
                                        timeout=TIMEOUT).stdout)
    cases = []
    for m in listing["mixers"]:
        for o in m["options"]:
            key = "%s.%s" % (m["name"], o["name"])
            bad = {"int": ["x", "1.5"], "float": ["x"], "bool": ["maybe"],
                   "string": ["nosuchchoice"] if "choices" in o else [],
                   "int list": ["1,x"]}[o["type"]]
            if o.get("range", "").startswith(">"):
                bad.append("-7")
            for value in bad:
                cases.append((m["name"], key, value, "`%s`" % o["name"]))
        cases.append((m["name"], "%s.nosuchoption" % m["name"], "1", "unknown option"))
    return cases


@pytest.mark.parametrize("mixer,key,value,expect", mixer_option_cases())
def test_mixer_options(mixer, key, value, expect):
    refused(["bench", "--mixers", mixer, "--seq-lens", "16", "--heads", "2", "--head-dim", "4",
             "--repeats", "1", "--warmup", "0", "--opt", "%s=%s" % (key, value)], expect)


def test_the_matrix_has_at_least_200_cases():
    n = (len(FLAG_CASES) + len(config_value_cases()) + len(CONFIG_FILES) + len(checkpoint_cases())
         + len(FMNIST_CASES) + len(mixer_option_cases()) + 2 + 2 + 5 + 3 + 4 + 2 + 6)
    assert n >= 200, n
