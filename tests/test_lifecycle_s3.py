"""forget + prune on both S3 servers (moto and rclone): every kept snapshot restores
identically and the freed group is gone from the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kvtools import kvb_json, open_repo
from lifecycle_tools import build_history, check_kept, keys_under


@pytest.mark.parametrize("server", ["moto_s3", "rclone_s3"])
def test_forget_and_prune_on_s3(
    server: str, request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = request.getfixturevalue(server)
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    url = f"s3://{s3.new_bucket()}/repo"
    src, ids = build_history(url, tmp_path)
    repo = open_repo(url)
    dead_group = repo.core.load_snapshot(ids[0]).group
    objects_before = len(keys_under(repo, "groups/"))
    repo.close()
    out = kvb_json("forget", "-r", url, "--keep-last", "1", "--prune", cache=tmp_path / "c")
    assert out["prune"]["groups_deleted"] == [dead_group]
    assert out["prune"]["packs_repacked"] > 0
    repo = open_repo(url)
    assert keys_under(repo, f"groups/{dead_group}/") == []
    assert len(keys_under(repo, "groups/")) < objects_before
    repo.close()
    check_kept(url, {ids[2]: src}, tmp_path)
