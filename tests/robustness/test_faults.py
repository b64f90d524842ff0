"""A fault-injecting store: transient errors, throttling and timeouts are retried and
cost nothing; truncated and zero-length objects, in transit or at rest, are detected and
never restored as wrong bytes. Every scheduled fault is exercised."""

from __future__ import annotations

from pathlib import Path

from conftest import Trials, trial_guard
from faultstore import (
    FaultStore,
    count_requests,
    counting,
    damage_schedule,
    transient_schedule,
)
from kvbackup_localdir.store import LocalDirStore
from kvtools import SMALL_CHUNKS, SMALL_PACKS
from oracle import differences, make_tree, manifest, mutate
from places import PASSWORD

from kvbackup import Repository
from kvbackup.errors import KvbackupError


def _open(store: object) -> Repository:
    return Repository.open(store, password=PASSWORD)


def _unrestored(errors: list[tuple[str, str]], expected: dict[bytes, object]) -> set[bytes]:
    paths = {p.encode() for p, _ in errors}
    return set(expected) if b"(file list)" in paths else paths


def test_faults_of_every_kind_are_survived_or_detected(trials: Trials) -> None:
    for trial in trials:
        with trial_guard(trials, trial):
            root = trial.workdir / "repo"
            Repository.init(
                LocalDirStore(root, create=True), password=PASSWORD,
                chunker=SMALL_CHUNKS, pack_size=SMALL_PACKS,
            ).close()  # fmt: skip
            src = trial.workdir / "src"
            make_tree(src, trial.rng, files=24, max_size=200_000)
            plain = LocalDirStore(root)

            # transient faults during a backup: retried, the backup is whole
            faulty = FaultStore(plain, transient_schedule(trial.rng, "put"))
            with _open(faulty) as repo:
                first = repo.backup(str(src)).snapshot
            assert faulty.pending == []
            expected = manifest(src)
            with _open(plain) as repo:
                result = repo.restore(first.id, trial.workdir / "out-1")
            assert not result.errors and differences(expected, trial.workdir / "out-1") == []

            # transient and damaging faults while restoring: no wrong bytes, ever
            # (the first pack read is the file list's: damage data packs after it, at seeded
            # positions among the pack reads a restore makes)
            counter = FaultStore(plain, counting("get", "/packs/"))
            with _open(counter) as repo:
                repo.restore(first, trial.workdir / "out-count")
            reads = count_requests(counter)
            assert reads >= 3, f"only {reads} pack reads: the tree is too small"
            schedule = transient_schedule(trial.rng, "get") + damage_schedule(
                trial.rng, "get", "/packs/", after=1, within=reads - 2
            )
            faulty = FaultStore(plain, schedule)
            with _open(faulty) as repo:
                result = repo.restore(first, trial.workdir / "out-2")
            assert faulty.pending == []
            assert result.errors  # the damaged reads cost files, and say so
            unrestored = _unrestored(result.errors, expected)
            assert differences(expected, trial.workdir / "out-2", unrestored) == []

            # objects damaged at rest as they are written: verify finds them, restore never
            # writes wrong bytes, and the next backup (after verify) is whole again
            mutate(src, trial.rng, max_size=200_000)
            faulty = FaultStore(plain, damage_schedule(trial.rng, "put", "/packs/"))
            with _open(faulty) as repo:
                second = repo.backup(str(src), full=True).snapshot  # many pack writes
            assert faulty.pending == []
            expected = manifest(src)
            with _open(plain) as repo:
                report = repo.verify(use_cache=False)
                assert not report.ok
                try:
                    result = repo.restore(second, trial.workdir / "out-3")
                    unrestored = _unrestored(result.errors, expected)
                except KvbackupError:  # its file list was in a damaged pack
                    unrestored = set(expected)
                assert differences(expected, trial.workdir / "out-3", unrestored) == []
                healed = repo.backup(str(src)).snapshot
                result = repo.restore(healed, trial.workdir / "out-4")
                assert not result.errors
                assert differences(expected, trial.workdir / "out-4") == []
                report = repo.verify(use_cache=False)
                assert report.ok, [p.message for p in report.problems]


def test_a_fault_schedule_is_reproducible_from_its_seed() -> None:
    import random

    one = [vars(f) for f in transient_schedule(random.Random(5), "put")]
    two = [vars(f) for f in transient_schedule(random.Random(5), "put")]
    assert one == two


def test_the_fault_store_really_damages_what_it_is_told_to(tmp_path: Path) -> None:
    from faultstore import Fault

    store = FaultStore(LocalDirStore(tmp_path, create=True), [Fault("truncated", "put", 1)])
    store.put("a", b"0123456789")
    assert LocalDirStore(tmp_path).get("a") == b"01234"
    assert store.pending == []
