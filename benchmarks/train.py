"""Training speed and memory: ``cartpredict train`` against a plain pandas + scikit-learn pipeline.

For each size (``--retailers``, default 200 and 1,000; ``--days`` 14 of simulated history at the
simulator's default 150 carts a day), one run:

1. simulates the retailers and loads their events into a fresh SQLite database with
   ``cartpredict simulate`` (not timed);
2. runs ``cartpredict train`` on it as a user would (its default executor: every core), timing
   it from launch to exit and sampling the memory of its process tree every 20 ms;
3. runs the peer rig's ``train_reference.py`` (``../shared/peer``) on the same database, in the
   rig's own environment (pandas and scikit-learn; ``--peer-venv``), timed and sampled the same
   way: it reads every event, builds labelled snapshots and fits one LogisticRegression per
   retailer, and nothing else (no validation, no threshold, no evaluation, nothing written);
4. prints a table (events, seconds, events/s, peak memory, the ratios) and the goals, and writes
   every figure to ``--json``.

Peak memory is the largest sum over the process tree, seen by the sampler, of each process's
proportional set size (PSS: its private memory plus its share of pages it shares with others,
so a pool of fitting processes counts in full and the libraries they all map count once), and
the largest single process's ``VmHWM`` (its own peak resident memory).

    make bench-train                            # or: .venv/bin/python benchmarks/train.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cartpredict.ops.loadtest import peak_rss_mb, process_tree

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CARTPREDICT = Path(sys.executable).with_name("cartpredict")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reference = args.peer.resolve() / "train_reference.py"
    peer_python = args.peer_venv / "bin" / "python"
    if not reference.exists():
        raise SystemExit(f"no peer rig at {args.peer}: pass --peer")
    if not peer_python.exists():
        print(f"setting up the peers ({args.peer / 'setup.sh'}) ...", flush=True)
        subprocess.run(["bash", str(args.peer / "setup.sh")], check=True,
                       env={**os.environ, "PEER_VENV": str(args.peer_venv)})  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="cartpredict-bench-train-") as tmp:
        for n in args.retailers:
            db = Path(tmp) / f"train-{n}.db"
            env = {**os.environ, "CARTPREDICT_DATABASE_URL": f"sqlite:///{db}"}
            print(f"simulating {n} retailers x {args.days} days ...", flush=True)
            subprocess.run([str(CARTPREDICT), "simulate", "--retailers", str(n), "--days",
                            str(args.days), "--seed", str(args.seed)],
                           env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
            events = _count_events(db)
            print(f"  {events:,} events; cartpredict train ...", flush=True)
            ours = _timed([str(CARTPREDICT), "train", *args.train_args], env)
            print(f"  {ours['seconds']:.1f} s, peak {ours['tree_mb']:.0f} MB; peer ...", flush=True)
            peer = _timed([str(peer_python), str(reference), str(db)], env)
            print(f"  {peer['seconds']:.1f} s, peak {peer['tree_mb']:.0f} MB", flush=True)
            models = _models(peer["stdout"])
            rows.append({"retailers": n, "events": events, "cartpredict": ours, "peer": peer,
                         "peer_models": models})  # fmt: skip
            db.unlink()
    report = {"days": args.days, "seed": args.seed, "cores": os.cpu_count(), "runs": rows}
    print()
    print(table(report))
    print()
    for line in goals(report):
        print(line)
    if args.json:
        for run in rows:
            for side in ("cartpredict", "peer"):
                run[side].pop("stdout", None)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retailers", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer", type=Path, default=REPO.parent / "shared" / "peer")
    parser.add_argument("--peer-venv", type=Path, default=Path("/tmp/peer-venv"))
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                        help="passed on to cartpredict train (e.g. --workers 1)")  # fmt: skip
    return parser


def _count_events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def _timed(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run to completion; wall time, and the memory of the process tree sampled meanwhile."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    peak = {"tree_mb": 0.0, "largest_mb": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            tree = process_tree(proc.pid)
            peak["tree_mb"] = max(peak["tree_mb"], sum(_pss_mb(p) for p in tree))
            peak["largest_mb"] = max([peak["largest_mb"], *(peak_rss_mb(p) or 0.0 for p in tree)])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{stderr[-3000:]}")
    return {"seconds": round(seconds, 3), **{k: round(v, 1) for k, v in peak.items()},
            "stdout": stdout}  # fmt: skip


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _models(stdout: str) -> int | None:
    found = re.search(r"(\d+) models", stdout)
    return int(found.group(1)) if found else None


def table(report: dict[str, Any]) -> str:
    lines = [
        "| retailers | events | cartpredict s | events/s | peak MB (tree / largest) | "
        "peer s | events/s | peak MB (tree / largest) | speed ratio | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        ours, peer, n = run["cartpredict"], run["peer"], run["events"]
        lines.append(
            f"| {run['retailers']:,} | {n:,} | {ours['seconds']:.1f} | {n / ours['seconds']:,.0f} "
            f"| {ours['tree_mb']:.0f} / {ours['largest_mb']:.0f} | {peer['seconds']:.1f} | "
            f"{n / peer['seconds']:,.0f} | {peer['tree_mb']:.0f} / {peer['largest_mb']:.0f} | "
            f"{peer['seconds'] / ours['seconds']:.2f}× | {ours['tree_mb'] / peer['tree_mb']:.2f}× |"
        )
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> list[str]:
    runs = {run["retailers"]: run for run in report["runs"]}
    out = []

    def check(text: str, ok: bool) -> None:
        out.append(f"- [{'x' if ok else ' '}] {text}")

    if 200 in runs:
        run = runs[200]
        ratio = run["peer"]["seconds"] / run["cartpredict"]["seconds"]
        check(f"≥ 2× the peer's events/s at 200 retailers: {ratio:.2f}×", ratio >= 2)
    if 1000 in runs:
        mb = runs[1000]["cartpredict"]["tree_mb"]
        check(f"peak memory ≤ 400 MB at 1,000 retailers: {mb:.0f} MB", mb <= 400)
    if 200 in runs and 1000 in runs:
        growth = runs[1000]["cartpredict"]["tree_mb"] / runs[200]["cartpredict"]["tree_mb"]
        check(f"memory grows < 1.5× from 200 to 1,000 retailers: {growth:.2f}×", growth < 1.5)
    return out


if __name__ == "__main__":
    sys.exit(main())
