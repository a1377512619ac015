"""Throughput of `Model.root_posterior` on a large batch, next to `jghm bench bp`.

Same model (the symmetric random family: --states, --children, --depth, vocabulary = states,
flip 0.3, --seed), same batch (pairs sampled with --seed, sampling not timed), same count
(--reps timed calls, mean and best): one `root_posterior("image", images)` call per rep, with
its checks of the tokens and its output array included.

    python bench_posterior.py --threads 2 --compare target/release/jghm
"""

import argparse
import json
import os
import subprocess
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=10)
    ap.add_argument("--children", type=int, default=3)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="worker threads (RAYON_NUM_THREADS)")
    ap.add_argument("--compare", metavar="JGHM", help="also run `JGHM bench bp` with the same settings")
    a = ap.parse_args()
    if a.threads:
        os.environ["RAYON_NUM_THREADS"] = str(a.threads)  # before the thread pool starts
    import jghm

    model = jghm.Model.random(a.states, a.children, a.depth, seed=a.seed)
    images, _ = model.sample(a.batch, seed=a.seed)
    model.root_posterior("image", images[:1000])  # warm-up: threads started
    times = []
    for _ in range(a.reps):
        start = time.perf_counter()
        model.root_posterior("image", images)
        times.append(time.perf_counter() - start)
    mean = sum(times) / len(times)
    ours = {"posteriors_per_second": a.batch / mean, "posteriors_per_second_best": a.batch / min(times)}
    out = {"python": ours}
    if a.compare:
        cmd = [a.compare, "--json", "bench", "bp", "--states", str(a.states), "--children", str(a.children),
               "--depth", str(a.depth), "--batch", str(a.batch), "--reps", str(a.reps), "--seed", str(a.seed)]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        rust = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        out["rust"] = {k: rust[k] for k in ("posteriors_per_second", "posteriors_per_second_best")}
        out["ratio_mean"] = ours["posteriors_per_second"] / rust["posteriors_per_second"]
        out["ratio_best"] = ours["posteriors_per_second_best"] / rust["posteriors_per_second_best"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
