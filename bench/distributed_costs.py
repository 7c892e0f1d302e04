"""Measures what docs/distributed.md's cost model needs and checks its predictions on this machine:

1. the links: Gloo allreduce and ring send/recv bandwidth between 2 processes (gloo_links.py);
2. data parallel: tokens/s of 1 process x 2 threads against 2 processes x 1 thread at the same
   global batch, and the 2-process step time predicted from a 1-process, 1-thread step at the
   per-rank batch plus the gradient allreduce;
3. sequence parallel: the step time of 2 ranks sharing each sequence (ring attention) predicted
   from the 1-process, 1-thread step at the whole sequence, halved, plus the ring's and the
   allreduce's bytes over the measured links.

    /usr/bin/python3 bench/distributed_costs.py --cli build/longseq [--quick]

Every run is `longseq train` on the copy task with exact causal attention; times are medians of
the step times after the first two steps. Nothing else may run on the machine meanwhile.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_train(cli, tmp, name, model, train, threads, nproc=0, sp=False):
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
    metrics = os.path.join(tmp, name + ".jsonl")
    cmd = [cli, "--threads", str(threads), "train", "--config", path, "--metrics", metrics,
           "--log-every", "1000", "--final-split", "validation"]
    if nproc:
        cmd += ["--nproc", str(nproc)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s failed:\n%s\n%s" % (" ".join(cmd), r.stdout, r.stderr))
    rows = [json.loads(line) for line in open(metrics)]
    steps = [x for x in rows if x["kind"] == "step"]
    tps = statistics.median(x["tokens_per_s"] for x in steps[2:])
    tokens = train["batch_size"] * (1 if sp or not nproc else nproc) * model["T"]
    params = next(int(w) for line in r.stdout.splitlines() if "parameters" in line
                  for w in [line.split(",")[-1].split()[0]])
    peak = [x for x in rows if x["kind"] == "final"][0].get("peak_rss_mib")
    return {"tokens_per_s": tps, "step_s": tokens / tps, "params": params, "peak_mib": peak}


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
    steps = 5 if a.quick else 10
    tmp = tempfile.mkdtemp(prefix="longseq_dist_")
    N = 2
    link = links(N, [1, 4, 16, 64])
    print("# links (Gloo, 127.0.0.1, %d processes): allreduce %.2f GB/s, ring %.2f GB/s at 4 MiB;"
          " %.2f / %.2f at 64 MiB" % (N, bw(link, "allreduce", 4), bw(link, "ring", 4),
                                      bw(link, "allreduce", 64), bw(link, "ring", 64)))
    result = {"links": link}

    # Data parallel: global batch 16 of T = 512.
    dp = {"T": 512, "layers": 4, "C": 128, "H": 4}
    one2 = run_train(a.cli, tmp, "dp_1x2", dp, {"steps": steps, "batch_size": 16}, threads=2)
    two1 = run_train(a.cli, tmp, "dp_2x1", dp, {"steps": steps, "batch_size": 8}, threads=2,
                     nproc=N)
    ref = run_train(a.cli, tmp, "dp_ref", dp, {"steps": steps, "batch_size": 8}, threads=1)
    P = one2["params"]
    ar_bytes = 4 * P * 2 * (N - 1) / N
    t_ar = ar_bytes / (bw(link, "allreduce", min(25, 4 * P / 2**20)) * 1e9)
    lo, hi = ref["step_s"], ref["step_s"] + t_ar
    tokens = 16 * dp["T"]
    print("\n## data parallel: copy T=%d, %d layers, C=%d, %d parameters, global batch 16"
          % (dp["T"], dp["layers"], dp["C"], P))
    print("| run | tokens/s | step s |")
    print("|---|---:|---:|")
    print("| 1 process x 2 threads, batch 16 | %.0f | %.3f |" % (one2["tokens_per_s"],
                                                              one2["step_s"]))
    print("| 2 processes x 1 thread, batch 8 each | %.0f | %.3f |" % (two1["tokens_per_s"],
                                                                    two1["step_s"]))
    print("| 1 process x 1 thread, batch 8 (one rank's compute) | %.0f | %.3f |"
          % (ref["tokens_per_s"], ref["step_s"]))
    print("| prediction for 2 x 1: compute + allreduce of %.1f MiB (%.1f ms), overlapped .. not "
          "| %.0f .. %.0f | %.3f .. %.3f |" % (ar_bytes / 2**20, t_ar * 1e3, tokens / hi,
                                               tokens / lo, lo, hi))
    result["dp"] = {"one_x2": one2, "two_x1": two1, "ref": ref, "t_allreduce_s": t_ar}

    # Sequence parallel: one sequence of T = 4096, batch 1.
    spm = {"T": 4096, "layers": 2, "C": 128, "H": 4}
    sp_ref = run_train(a.cli, tmp, "sp_ref", spm, {"steps": steps, "batch_size": 1}, threads=1)
    sp_one2 = run_train(a.cli, tmp, "sp_1x2", spm, {"steps": steps, "batch_size": 1},
                        threads=2)
    sp_two = run_train(a.cli, tmp, "sp_2x1", spm, {"steps": steps, "batch_size": 1}, threads=2,
                       nproc=N, sp=True)
    block = 1 * (spm["T"] / N) * 2 * spm["C"] * 4  # bytes of one K|V block (float32)
    ring_bytes = spm["layers"] * (3 * N - 2) * block
    t_ring = ring_bytes / (bw(link, "ring", block / 2**20) * 1e9)
    P = sp_ref["params"]
    t_ar = 4 * P * 2 * (N - 1) / N / (bw(link, "allreduce", 4 * P / 2**20) * 1e9)
    lo = sp_ref["step_s"] / N
    hi = lo + t_ring + t_ar
    print("\n## sequence parallel: copy T=%d, %d layers, C=%d, batch 1" %
          (spm["T"], spm["layers"], spm["C"]))
    print("| run | tokens/s | step s | peak MiB per process |")
    print("|---|---:|---:|---:|")
    for name, r in [("1 process x 1 thread", sp_ref), ("1 process x 2 threads", sp_one2),
                    ("2 ranks x 1 thread, ring attention", sp_two)]:
        print("| %s | %.0f | %.3f | %s |" % (name, r["tokens_per_s"], r["step_s"],
                                           ", ".join("%.0f" % m for m in r["peak_mib"] or [])))
    print("| prediction for 2 x 1: half the 1-thread step + ring %.1f MiB (%.1f ms) + allreduce "
          "(%.1f ms), overlapped .. not | %.0f .. %.0f | %.3f .. %.3f | |"
          % (ring_bytes / 2**20, t_ring * 1e3, t_ar * 1e3, spm["T"] / hi, spm["T"] / lo, lo, hi))
    result["sp"] = {"ref": sp_ref, "one_x2": sp_one2, "two_x1": sp_two, "t_ring_s": t_ring,
                    "t_allreduce_s": t_ar}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
