"""The link terms of docs/distributed.md's cost model, measured on this machine: Gloo's allreduce
and ring send/recv (the two collectives longseq's data and sequence parallelism use) between N
processes on 127.0.0.1, through Debian's python3-torch (the same c10d and Gloo as LibTorch).

    /usr/bin/python3 bench/gloo_links.py [--nproc 2] [--mib 1,4,16,64] [--json out.json]

Prints, per message size, the time per call and the bus bandwidth: allreduce moves
2(N-1)/N bytes per byte of buffer through each rank's link (ring allreduce), a ring exchange
sends and receives the buffer once.
"""

import argparse
import json
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, n, port, sizes, reps, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=n)
    rows = []
    for mib in sizes:
        x = torch.ones(mib * (1 << 20) // 4)
        y = torch.empty_like(x)
        for kind in ("allreduce", "ring"):
            def once():
                if kind == "allreduce":
                    dist.all_reduce(x)
                else:
                    r = dist.irecv(y, (rank - 1) % n)
                    s = dist.isend(x, (rank + 1) % n)
                    s.wait()
                    r.wait()
            once()  # warm-up (connections, buffers)
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                once()
            dist.barrier()
            secs = (time.perf_counter() - t0) / reps
            moved = x.numel() * 4 * (2 * (n - 1) / n if kind == "allreduce" else 1)
            rows.append({"kind": kind, "mib": mib, "ms": secs * 1e3, "gb_per_s": moved / secs / 1e9})
    if rank == 0:
        out.put(rows)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--mib", default="1,4,16,64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    sizes = [int(m) for m in a.mib.split(",")]
    mp.start_processes(worker, args=(a.nproc, port, sizes, a.reps, q), nprocs=a.nproc,
                       start_method="spawn")
    rows = q.get()
    print("# Gloo on 127.0.0.1, %d processes, 1 thread each" % a.nproc)
    print("%-9s %6s %10s %10s" % ("kind", "MiB", "ms", "GB/s"))
    for r in rows:
        print("%-9s %6d %10.2f %10.2f" % (r["kind"], r["mib"], r["ms"], r["gb_per_s"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"nproc": a.nproc, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
