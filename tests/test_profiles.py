"""Profiles: a TOML config file with named settings; flags beat the profile, the profile
beats the environment; bad files and missing profiles are one line and exit 18."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kvtools import write_tree

from kvbackup.errors import ExitCode
from kvbackup.repository import Repository

PROFILE_PASSWORD = "profile password"
ENV_PASSWORD = "env password"
FLAG_PASSWORD = "flag password"


def run(*args: str | os.PathLike[str], env: dict[str, str], expect: int = 0) -> str:
    """Run ``kvbackup`` with exactly ``env`` (plus PATH and the test KDF); return stdout."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("KVBACKUP_", "XDG_"))}
    full.update(**env)
    done = subprocess.run(
        [sys.executable, "-m", "kvbackup", *map(str, args)],
        env=full, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == expect, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout if expect == 0 else done.stderr


@pytest.fixture
def three_repos(tmp_path: Path) -> dict[str, Path]:
    """Repositories for the flag, the profile and the environment, each with a password of
    its own and one snapshot of a source named after it."""
    repos = {}
    for name, password in (("flag", FLAG_PASSWORD), ("profile", PROFILE_PASSWORD),
                           ("env", ENV_PASSWORD)):  # fmt: skip
        src = write_tree(tmp_path / f"src-{name}", {"f": name.encode()})
        with Repository.init(tmp_path / f"repo-{name}", password=password) as repo:
            repo.backup(src)
        repos[name] = tmp_path / f"repo-{name}"
        (tmp_path / f"{name}.pw").write_text(password + "\n")
    return repos


@pytest.fixture
def config(tmp_path: Path, three_repos: dict[str, Path]) -> Path:
    path = tmp_path / "xdg" / "kvbackup" / "config.toml"
    path.parent.mkdir(parents=True)
    src = write_tree(tmp_path / "home", {"a.txt": b"a", "sub/b.txt": b"b"})
    path.write_text(
        "# kvbackup profiles\n"
        "[profiles.home]\n"
        f'repository = "{three_repos["profile"]}"\n'
        f'password_command = "cat {tmp_path / "profile.pw"}"\n'
        f'sources = ["{src}"]\n'
        'tags = ["nightly", "home"]\n'
        "keep_daily = 7\n"
        "\n"
        "[profiles.other]\n"
        'repository = "/nowhere"\n'
    )
    return path


def env_for(tmp_path: Path, three_repos: dict[str, Path], **extra: str) -> dict[str, str]:
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "KVBACKUP_REPO": str(three_repos["env"]),
        "KVBACKUP_PASSWORD": ENV_PASSWORD,
        **extra,
    }


def sources_listed(out: str) -> list[str]:
    return [Path(s["source"]).name for s in json.loads(out)]


def test_profile_beats_the_environment_and_flags_beat_the_profile(
    tmp_path: Path, three_repos: dict[str, Path], config: Path
) -> None:
    env = env_for(tmp_path, three_repos)
    assert sources_listed(run("snapshots", "--json", env=env)) == ["src-env"]
    assert sources_listed(run("-p", "home", "snapshots", "--json", env=env)) == ["src-profile"]
    flagged = run(
        "-p", "home", "snapshots", "--json", "--repo", three_repos["flag"],
        "--password-file", tmp_path / "flag.pw", env=env,
    )  # fmt: skip
    assert sources_listed(flagged) == ["src-flag"]
    # the profile's repository with a flag's password: the wrong password for it
    err = run("-p", "home", "snapshots", "--password-file", tmp_path / "flag.pw", env=env,
              expect=ExitCode.BAD_PASSWORD)  # fmt: skip
    assert err.count("\n") == 1


def test_config_show_names_where_each_setting_comes_from(
    tmp_path: Path, three_repos: dict[str, Path], config: Path
) -> None:
    env = env_for(tmp_path, three_repos)
    shown = json.loads(run("-p", "home", "config", "show", "--json", env=env))
    assert shown["config_file"] == str(config)
    settings = shown["settings"]
    assert settings["repository"] == {
        "value": str(three_repos["profile"]), "origin": f"profile home ({config}:3)"
    }  # fmt: skip
    assert settings["password"]["origin"] == f"profile home ({config}:4)"
    assert settings["tags"]["value"] == ["nightly", "home"]
    assert settings["keep_daily"] == {"value": 7, "origin": f"profile home ({config}:7)"}
    flagged = json.loads(
        run("-p", "home", "config", "show", "--json", "--repo", "/x", "-o", "k=v", env=env)
    )["settings"]
    assert flagged["repository"] == {"value": "/x", "origin": "--repo"}
    assert flagged["store_options"] == {"value": {"k": "v"}, "origin": "--store-option"}
    plain = json.loads(run("config", "show", "--json", env=env))["settings"]
    assert plain["repository"]["origin"] == "KVBACKUP_REPO"
    assert plain["password"]["origin"] == "KVBACKUP_PASSWORD"
    text = run("-p", "home", "config", "show", env=env)
    assert f"repository: {three_repos['profile']}  [profile home ({config}:3)]" in text
    assert PROFILE_PASSWORD not in text


def test_backup_with_a_profile_uses_its_sources_tags_and_repository(
    tmp_path: Path, three_repos: dict[str, Path], config: Path
) -> None:
    env = env_for(tmp_path, three_repos)
    run("-p", "home", "backup", "-q", env=env)
    with Repository.open(three_repos["profile"], password=PROFILE_PASSWORD) as repo:
        latest = repo.snapshots()[-1]
        assert latest.source == str(tmp_path / "home")
        assert latest.tags == ["nightly", "home"]
        assert sorted(os.fsdecode(e.path) for e in repo.entries(latest)) == [
            "a.txt", "sub", "sub/b.txt"
        ]  # fmt: skip
    # a flag still wins: --tag replaces the profile's tags
    run("-p", "home", "backup", "-q", "--tag", "manual", env=env)
    with Repository.open(three_repos["profile"], password=PROFILE_PASSWORD) as repo:
        assert repo.snapshots()[-1].tags == ["manual"]


def test_a_profiles_exclude_patterns_leave_things_out_of_its_backups(
    tmp_path: Path, three_repos: dict[str, Path], config: Path
) -> None:
    config.write_text(config.read_text().replace(
        'keep_daily = 7\n', 'keep_daily = 7\nexclude = ["*.tmp", "cache/", "!keep.tmp"]\n'
    ))  # fmt: skip
    home = tmp_path / "home"
    write_tree(home, {"x.tmp": b"x", "keep.tmp": b"k", "cache/c": b"c", "sub/y.tmp": b"y"})
    env = env_for(tmp_path, three_repos)
    run("-p", "home", "backup", "-q", env=env)
    with Repository.open(three_repos["profile"], password=PROFILE_PASSWORD) as repo:
        latest = repo.snapshots()[-1]
        assert sorted(os.fsdecode(e.path) for e in repo.entries(latest)) == [
            "a.txt", "keep.tmp", "sub", "sub/b.txt"
        ]  # fmt: skip
        assert latest.excludes is not None
        assert latest.excludes["patterns"] == ["*.tmp", "cache/", "!keep.tmp"]
    # a flag wins over the profile, as for every other setting
    run("-p", "home", "backup", "-q", "--exclude", "sub/", env=env)
    with Repository.open(three_repos["profile"], password=PROFILE_PASSWORD) as repo:
        paths = sorted(os.fsdecode(e.path) for e in repo.entries(repo.snapshots()[-1]))
        assert paths == ["a.txt", "cache", "cache/c", "keep.tmp", "x.tmp"]


def test_config_option_and_a_private_file_may_hold_the_password(
    tmp_path: Path, three_repos: dict[str, Path]
) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text(
        f'[profiles.p]\nrepository = "{three_repos["profile"]}"\npassword = "{PROFILE_PASSWORD}"\n'
    )
    path.chmod(0o644)
    env = env_for(tmp_path, three_repos)
    err = run("--config", path, "-p", "p", "snapshots", env=env, expect=ExitCode.CONFIG)
    assert err.count("\n") == 1
    assert f"{path}:3: a password in the config file" in err and "0644" in err
    path.chmod(0o600)
    out = run("--config", path, "-p", "p", "snapshots", "--json", env=env)
    assert sources_listed(out) == ["src-profile"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profiles.home]\nrepository = \n", "not valid TOML: Invalid value (at line 2, column"),
        ("[profiles.home]\nrepository = '/r'\nexclude_caches = true\n",
         ":3: unknown key 'exclude_caches' in profile 'home'"),
        ("[profiles.home]\nsources = '/just/one'\n", ":2: 'sources' in profile 'home' must be"),
        ("verbose = true\n[profiles.home]\n", ":1: unknown key 'verbose'"),
        ("[profiles.home]\nkeep_daily = 'seven'\n",
         ":2: 'keep_daily' in profile 'home' must be a whole number"),
    ],
)  # fmt: skip
def test_a_bad_config_file_is_one_line_naming_the_line(
    tmp_path: Path, three_repos: dict[str, Path], text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    err = run("--config", path, "-p", "home", "snapshots", env=env_for(tmp_path, three_repos),
              expect=ExitCode.CONFIG)  # fmt: skip
    assert err.count("\n") == 1, err
    assert message in err


def test_a_missing_profile_or_config_file_is_one_line_and_exit_18(
    tmp_path: Path, three_repos: dict[str, Path], config: Path
) -> None:
    env = env_for(tmp_path, three_repos)
    err = run("-p", "work", "snapshots", env=env, expect=ExitCode.CONFIG)
    assert err == f"kvbackup: error: {config}: no profile 'work' (profiles: home, other)\n"
    err = run("--config", tmp_path / "none.toml", "-p", "home", "snapshots", env=env,
              expect=ExitCode.CONFIG)  # fmt: skip
    assert "no such config file" in err and err.count("\n") == 1


def test_profile_settings_become_the_defaults_of_backup_and_forget(tmp_path: Path) -> None:
    from kvbackup.cli.profiles import load_profile

    path = tmp_path / "c.toml"
    path.write_text(
        "[profiles.p]\nsources = ['/a', '/b']\nexclude = ['*.tmp']\ntags = ['t']\n"
        "keep_daily = 7\nkeep_within = '30d'\nkeep_tag = 'keep'\nkeep_groups = 2\n"
    )
    defaults = load_profile("p", path).command_defaults()
    assert defaults["backup"] == {"sources": ["/a", "/b"], "exclude": ["*.tmp"], "tags": ["t"]}
    assert defaults["forget"] == {"daily": 7, "within": "30d", "keep_tags": ["keep"], "groups": 2}
