"""Crash safety (slow label): SIGKILL `longseq train` at random points while it saves a checkpoint
every step, N times (default 100). After each kill the newest checkpoint must load (`longseq
eval`), and after the next start no temporary entry (step_*.tmp.*, *.tmp.*) may be left. Then
SIGINT and SIGTERM must each save exactly once and exit cleanly.

    LONGSEQ_CLI=build/longseq python3 tests/cli/kill_during_save.py [N]
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

CLI = os.environ.get("LONGSEQ_CLI", "longseq")
CONFIG = {
    "seed": 1,
    "task": {"name": "copy", "options": {"blanks": "4"}},
    "model": {"layers": 1, "mixers": ["exact"], "dim": 32, "heads": 2, "causal": True},
    "train": {"steps": 100000, "batch_size": 2, "warmup": 1, "eval_every": 0},
}


def temporaries(run_dir):
    return [n for n in os.listdir(run_dir) if ".tmp." in n] if os.path.isdir(run_dir) else []


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rng = random.Random(7)
    work = tempfile.mkdtemp(prefix="longseq_kill_")
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        json.dump(CONFIG, f)
    run_dir = os.path.join(work, "run")
    base = [CLI, "--threads", "1", "train", "--config", config, "--out", run_dir,
            "--save-every", "1", "--keep", "2", "--log-every", "1000000"]
    loaded = left_before = 0
    for i in range(n):
        p = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.6, 2.5))  # past start-up, into the save-every-step loop
        p.send_signal(signal.SIGKILL)
        p.wait()
        left_before += bool(temporaries(run_dir))
        if os.path.exists(os.path.join(run_dir, "latest")):
            r = subprocess.run([CLI, "eval", run_dir, "--max-batches", "1", "--json"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print("kill %d: the latest checkpoint does not load:\n%s" % (i, r.stderr))
                return 1
            loaded += 1
        # The next start cleans what the killed saves left: start, and stop it at once.
        q = subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline and temporaries(run_dir):
            time.sleep(0.05)
        q.send_signal(signal.SIGKILL)
        q.wait()
        stale = [t for t in temporaries(run_dir) if not t.endswith(".tmp.%d" % q.pid)]
        if stale:
            print("kill %d: temporaries left after the next start: %s" % (i, stale))
            return 1
    print("%d kills: the latest checkpoint loaded after %d (the others came before the first "
          "save), %d kills left temporaries, all removed by the next start" % (n, loaded,
                                                                               left_before))
    # SIGINT and SIGTERM: one save each, a clean exit.
    for sig in (signal.SIGINT, signal.SIGTERM):
        p = subprocess.Popen([CLI, "--threads", "1", "train", "--config", config, "--out", run_dir,
                              "--log-every", "1000000"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        saves = out.count("checkpoint (interrupted) saved")
        if p.returncode != 0 or saves != 1 or "train: interrupted at step" not in out:
            print("%s: exit %d, %d saves\n%s\n%s" % (sig.name, p.returncode, saves, out, err))
            return 1
        print("%s: saved once, exit 0" % sig.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
