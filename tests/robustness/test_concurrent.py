"""2, 4 and 8 concurrent backups, of the same and of different sources, on every built-in
store kind (with and without conditional writes): every snapshot a backup reported
restores its own source."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Trials, trial_guard
from oracle import differences, make_tree, manifest
from places import ALL_KINDS, init, open_repo, repository_url

#: (writers, how their sources are shared): "same" one source, "different" one each,
#: "mixed" pairs of writers share a source.
CASES = [(2, "same"), (2, "different"), (4, "mixed"), (8, "mixed")]


def _source_of(writer: int, sharing: str) -> int:
    return {"same": 0, "different": writer, "mixed": writer // 2}[sharing]


def _run_concurrently(url: str, sources: list[Path]) -> list[str | BaseException]:
    """One backup per source, each through its own repository handle, started together."""
    handles = [open_repo(url) for _ in sources]
    start = threading.Barrier(len(sources), timeout=60)
    results: list[str | BaseException] = [RuntimeError("did not run")] * len(sources)

    def run(n: int) -> None:
        try:
            start.wait()
            results[n] = handles[n].backup(str(sources[n])).snapshot.id
        except BaseException as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    for handle in handles:
        handle.close()
    return results


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_concurrent_backups_each_restore_their_own_source(
    kind: str, trials: Trials, request: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for trial in trials:
        with trial_guard(trials, trial):
            url = repository_url(kind, request, trial.workdir, monkeypatch)
            init(url)
            reported: dict[str, Any] = {}
            for writers, sharing in CASES:
                trees: dict[int, Path] = {}
                for n in range(writers):
                    which = _source_of(n, sharing)
                    if which not in trees:
                        trees[which] = trial.workdir / f"src-{writers}-{sharing}-{which}"
                        make_tree(trees[which], trial.rng, files=5, max_size=30_000)
                sources = [trees[_source_of(n, sharing)] for n in range(writers)]
                results = _run_concurrently(url, sources)
                failed = [r for r in results if isinstance(r, BaseException)]
                assert not failed, failed
                ids = [str(r) for r in results]
                assert len(set(ids)) == writers, f"{writers} backups reported ids {ids}"
                reported.update(
                    (i, (src, manifest(src))) for i, src in zip(ids, sources, strict=True)
                )
            with open_repo(url) as repo:
                listed = {s.id: s for s in repo.snapshots() if s.complete}
                assert set(reported) <= set(listed), set(reported) - set(listed)
                for n, (snap_id, (_src, expected)) in enumerate(sorted(reported.items())):
                    target = trial.workdir / f"out-{n}"
                    result = repo.restore(listed[snap_id], target)
                    assert not result.errors, result.errors
                    assert differences(expected, target) == [], snap_id
