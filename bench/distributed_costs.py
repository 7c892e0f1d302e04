"""Measures what docs/distributed.md's cost model needs and checks its predictions on this machine:

1. the links: Gloo allreduce and ring send/recv bandwidth between 2 processes (gloo_links.py);
2. data parallel: tokens/s of 1 process x 2 threads against 2 processes x 1 thread at the same
   global batch, and the 2-process step time predicted from the step of one 1-thread process at
   the per-rank batch running beside another (the two share the machine's caches and memory, as
   the ranks do) plus the gradient allreduce over the measured link;
3. sequence parallel: the step time of 2 ranks sharing each sequence (ring attention) predicted
   from the beside-another step at the whole sequence, halved, plus the ring's and the
   allreduce's bytes over the measured links.

On one machine Gloo's loopback "link" is the CPUs copying through the kernel's TCP stack, on the
cores that also compute, so the prediction adds the transfer times instead of overlapping them.

    /usr/bin/python3 bench/distributed_costs.py --cli build/longseq [--quick]

Every run is `longseq train` on the copy task with exact causal attention; times are medians of
the step times after the first three steps. Nothing else may run on the machine meanwhile.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write_config(tmp, name, model, train, sp=False):
    cfg = {
        "seed": 1,
        "task": {"name": "copy", "options": {"blanks": str(model["T"] - 20),
                                             "valid_size": "1", "test_size": "1"}},
        "model": {"layers": model["layers"], "mixers": ["exact"], "dim": model["C"],
                  "heads": model["H"], "causal": True, "sequence_parallel": sp},
        "train": dict({"warmup": 1, "eval_every": 0, "lr": 1e-3}, **train),
    }
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def start_train(cli, tmp, name, model, train, threads, nproc=0, sp=False):
    path = write_config(tmp, name, model, train, sp)
    metrics = os.path.join(tmp, name + ".jsonl")
    cmd = [cli, "--threads", str(threads), "train", "--config", path, "--metrics", metrics,
           "--log-every", "1000", "--final-split", "validation"]
    if nproc:
        cmd += ["--nproc", str(nproc)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return {"proc": proc, "cmd": cmd, "metrics": metrics, "model": model, "train": train,
            "nproc": nproc, "sp": sp}


def collect(run):
    out, err = run["proc"].communicate()
    if run["proc"].returncode != 0:
        sys.exit("%s failed:\n%s\n%s" % (" ".join(run["cmd"]), out, err))
    rows = [json.loads(line) for line in open(run["metrics"])]
    steps = [x for x in rows if x["kind"] == "step"]
    tps = statistics.median(x["tokens_per_s"] for x in steps[3:])
    per_step = 1 if run["sp"] or not run["nproc"] else run["nproc"]
    tokens = run["train"]["batch_size"] * per_step * run["model"]["T"]
    params = next(int(line.split(",")[-1].split()[0]) for line in out.splitlines()
                  if line.endswith("parameters"))
    peak = [x for x in rows if x["kind"] == "final"][0].get("peak_rss_mib")
    return {"tokens_per_s": tps, "step_s": tokens / tps, "params": params, "peak_mib": peak}


def run_train(cli, tmp, name, model, train, threads, nproc=0, sp=False):
    return collect(start_train(cli, tmp, name, model, train, threads, nproc, sp))


def run_two_alone(cli, tmp, name, model, train):
    """Two independent 1-thread processes at once: the step time of one process while another
    computes beside it (shared caches and memory bandwidth), without any communication."""
    runs = [start_train(cli, tmp, "%s_%d" % (name, i), model, train, 1) for i in range(2)]
    res = [collect(r) for r in runs]
    return {"step_s": statistics.mean(r["step_s"] for r in res), "params": res[0]["params"]}


def links(nproc, mib):
    out = tempfile.mktemp(suffix=".json")
    subprocess.run([sys.executable, os.path.join(HERE, "gloo_links.py"), "--nproc", str(nproc),
                    "--mib", ",".join(str(m) for m in mib), "--json", out], check=True,
                   capture_output=True)
    rows = json.load(open(out))["rows"]
    os.unlink(out)
    return rows


def bw(rows, kind, mib):
    """GB/s of `kind` at the measured size nearest `mib` (bus bandwidth)."""
    cands = [r for r in rows if r["kind"] == kind]
    return min(cands, key=lambda r: abs(r["mib"] - mib))["gb_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", default="build/longseq")
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    steps = 6 if a.quick else 12
    tmp = tempfile.mkdtemp(prefix="longseq_dist_")
    N = 2
    link = links(N, [1, 4, 16, 64])
    print("# links (Gloo, 127.0.0.1, %d processes): allreduce %.2f GB/s, ring %.2f GB/s at 4 MiB;"
          " %.2f / %.2f at 64 MiB" % (N, bw(link, "allreduce", 4), bw(link, "ring", 4),
                                      bw(link, "allreduce", 64), bw(link, "ring", 64)))
    result = {"links": link}

    # Data parallel: global batch 16 of T = 512.
    dp = {"T": 512, "layers": 4, "C": 128, "H": 4}
    tr = {"steps": steps, "batch_size": 8}
    one2 = run_train(a.cli, tmp, "dp_1x2", dp, dict(tr, batch_size=16), threads=2)
    two1 = run_train(a.cli, tmp, "dp_2x1", dp, tr, threads=2, nproc=N)
    alone = run_train(a.cli, tmp, "dp_1x1", dp, tr, threads=1)
    side = run_two_alone(a.cli, tmp, "dp_side", dp, tr)
    P = one2["params"]
    ar_mib = 4 * P / 2**20
    t_ar = 4 * P * 2 * (N - 1) / N / (bw(link, "allreduce", min(25, ar_mib)) * 1e9)
    pred = side["step_s"] + t_ar
    tokens = 16 * dp["T"]
    print("\n## data parallel: copy T=%d, %d layers, C=%d, %d parameters, global batch 16"
          % (dp["T"], dp["layers"], dp["C"], P))
    print("| run | tokens/s | step s |")
    print("|---|---:|---:|")
    half = tokens // 2
    rows = [("1 process x 2 threads, batch 16", tokens, one2["step_s"]),
            ("2 processes x 1 thread, batch 8 each (data parallel)", tokens, two1["step_s"]),
            ("1 process x 1 thread, batch 8, alone", half, alone["step_s"]),
            ("1 process x 1 thread, batch 8, beside another (no communication)", half,
             side["step_s"]),
            ("prediction for 2 x 1: beside-another step + allreduce of %.1f MiB (%.1f ms)"
             % (ar_mib, t_ar * 1e3), tokens, pred)]
    for name, n, t in rows:
        print("| %s | %.0f | %.3f |" % (name, n / t, t))
    print("measured / predicted (2 x 1): %.2f" % (two1["step_s"] / pred))
    result["dp"] = {"one_x2": one2, "two_x1": two1, "alone": alone, "side": side,
                    "t_allreduce_s": t_ar, "predicted_step_s": pred}

    # Sequence parallel: one sequence of T = 4096, batch 1.
    spm = {"T": 4096, "layers": 2, "C": 128, "H": 4}
    tr = {"steps": steps, "batch_size": 1}
    sp_alone = run_train(a.cli, tmp, "sp_1x1", spm, tr, threads=1)
    sp_side = run_two_alone(a.cli, tmp, "sp_side", spm, tr)
    sp_one2 = run_train(a.cli, tmp, "sp_1x2", spm, tr, threads=2)
    sp_two = run_train(a.cli, tmp, "sp_2x1", spm, tr, threads=2, nproc=N, sp=True)
    block = 1 * (spm["T"] / N) * 2 * spm["C"] * 4  # bytes of one K|V block (float32)
    ring_bytes = spm["layers"] * (3 * N - 2) * block
    t_ring = ring_bytes / (bw(link, "ring", block / 2**20) * 1e9)
    P = sp_alone["params"]
    t_ar = 4 * P * 2 * (N - 1) / N / (bw(link, "allreduce", 4 * P / 2**20) * 1e9)
    pred = sp_side["step_s"] / N + t_ring + t_ar
    T = spm["T"]
    print("\n## sequence parallel: copy T=%d, %d layers, C=%d, batch 1" % (T, spm["layers"],
                                                                          spm["C"]))
    print("| run | tokens/s | step s | peak MiB per process |")
    print("|---|---:|---:|---:|")
    for name, r in [("1 process x 1 thread, alone", sp_alone),
                    ("1 process x 1 thread, beside another", sp_side),
                    ("1 process x 2 threads", sp_one2),
                    ("2 ranks x 1 thread, ring attention", sp_two)]:
        print("| %s | %.0f | %.3f | %s |" % (name, T / r["step_s"], r["step_s"],
                                           ", ".join("%.0f" % m for m in r.get("peak_mib") or [])))
    print("| prediction for 2 x 1: half the beside-another step + ring %.1f MiB (%.1f ms) + "
          "allreduce (%.1f ms) | %.0f | %.3f | |" % (ring_bytes / 2**20, t_ring * 1e3, t_ar * 1e3,
                                                   T / pred, pred))
    print("measured / predicted (2 x 1): %.2f" % (sp_two["step_s"] / pred))
    result["sp"] = {"alone": sp_alone, "side": sp_side, "one_x2": sp_one2, "two_x1": sp_two,
                    "t_ring_s": t_ring, "t_allreduce_s": t_ar, "predicted_step_s": pred}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
