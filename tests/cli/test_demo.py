"""The demo's stats as a client would subtract them: over the windows days=1..90 of every demo
retailer, no two neighbouring answers differ by 1 to 9 carts in any count they show."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from cartpredict.cli import DEMO_ENV_FILE
from cartpredict.privacy.anonymity import K_ANONYMITY
from tests.support.servers import running_server
from tests.support.stats_answers import count_figures

pytestmark = pytest.mark.slow


def demo_keys(env_file: Path) -> dict[str, str]:
    """Each demo retailer's key, from the file `cartpredict demo` writes."""
    keys = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.startswith("DEMO_") and name.endswith("_KEY") and name != "DEMO_KEY":
            keys[name.removesuffix("_KEY").lower()] = value.strip()
    return keys


def test_no_two_windows_of_the_demo_stats_isolate_fewer_than_k_carts(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = {"CARTPREDICT_DATABASE_URL": sqlite_url}
    with running_server(env, command=("demo",), cwd=tmp_path, timeout_s=180) as server:
        keys = demo_keys(tmp_path / DEMO_ENV_FILE)
        assert len(keys) == 3
        pairs, leaks = 0, []
        for retailer_id, key in sorted(keys.items()):
            auth = {"Authorization": f"Bearer {key}"}
            answers = [
                server.get(f"/retailer/{retailer_id}/stats?days={d}", headers=auth).json()
                for d in range(1, 91)
            ]
            assert answers[-1]["totals"] is not None, "the demo's history shows some days"
            for days, (one, other) in enumerate(pairwise(answers), start=1):
                a, b = count_figures(one), count_figures(other)
                pairs += 1
                leaks += [
                    (retailer_id, days, key, a[key], b[key])
                    for key in a.keys() & b.keys()
                    if a[key] is not None
                    and b[key] is not None
                    and 0 < abs(a[key] - b[key]) < K_ANONYMITY
                ]
    print(f"pairs (days=d, days=d+1) compared: {pairs}; figures differing by 1-9 carts: "
          f"{len(leaks)}")  # fmt: skip
    assert pairs == 3 * 89
    assert leaks == []
