"""The plugin contract catches a plugin author's mistakes, end to end through `kvbackup`.

Each third-party plugin here is a real distribution: a module and a ``.dist-info`` folder
with an entry point of the ``kvbackup`` group, found on ``PYTHONPATH`` by the real command.
Each mistake gets a one-line error naming the plugin and a distinct exit code, and never
leaves a folder or a half-made repository behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from helpers import PASSWORD, cli_env, kvbackup, make_tree, snapshot_of

from kvbackup import PluginError, hookimpl
from kvbackup.errors import ExitCode
from kvbackup.registry import PluginRegistry

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """\
import io
from dataclasses import dataclass

from kvbackup import hookimpl
from kvbackup.store import MappingStore

STORES = {}


def open_demo(url, options):
    return STORES.setdefault(url, MappingStore({}, description=url))


class Reverse:
    name = "demo-rev"
    authenticates = False

    def encode(self, data, aad):
        return data[::-1]

    def decode(self, data, aad):
        return data[::-1]
"""


def install_plugin(
    site: Path,
    body: str,
    *,
    dist: str = "kvbackup-demo",
    module: str = "kvbackup_demo",
    entry_point: str = "demo",
    requires: tuple[str, ...] = (),
) -> dict[str, str]:
    """Make ``module`` (PRELUDE + ``body``) an installed distribution under ``site``;
    return the environment in which `kvbackup` sees it."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(PRELUDE + textwrap.dedent(body))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(metadata)
    (info / "entry_points.txt").write_text(f"[kvbackup]\n{entry_point} = {module}\n")
    return cli_env(PYTHONPATH=str(site))


def run(*args: object, env: dict[str, str], code: int) -> subprocess.CompletedProcess[str]:
    done = kvbackup(*args, env=env, check=False)
    assert done.returncode == code, done.stderr
    return done


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in done.stderr.splitlines() if line.startswith("kvbackup: error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


# ------------------------------------------------------------------ registration mistakes

MISSPELLED_HOOK = """
@hookimpl
def kvbackup_register_store(register):
    register("demo", open_demo, schemes=("demo",))
"""

MISSPELLED_KEYWORD = """
@hookimpl
def kvbackup_register_stores(register):
    register("demo", open_demo, schemes=("demo",), prority=5)
"""


def test_a_misspelled_hook_makes_the_plugin_unavailable_by_name(tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site", MISSPELLED_HOOK)
    reason = (
        "kvbackup_register_store is not a kvbackup hook (did you mean kvbackup_register_stores?)"
    )
    listing = run("plugins", env=env, code=0)
    assert f"unavailable demo               kvbackup-demo 0.1      {reason}" in listing.stdout
    done = run("init", "demo://x", env=env, code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: no store plugin serves demo:// (plugin may not be installed: see "
        f"`kvbackup plugins`; unavailable: plugin 'demo': {reason})"
    )
    assert f"kvbackup: warning: plugin 'demo' is unavailable: {reason}" in done.stderr


def test_a_misspelled_register_keyword_is_a_plugin_error_naming_the_plugin(
    tmp_path: Path,
) -> None:
    env = install_plugin(tmp_path / "site", MISSPELLED_KEYWORD)
    reason = (
        "kvbackup_register_stores: TypeError: register() got an unexpected keyword argument "
        "'prority'"
    )
    done = run("init", "demo://x", env=env, code=ExitCode.PLUGIN)
    assert error_line(done).endswith(f"unavailable: plugin 'demo': {reason})")
    rows = json.loads(run("plugins", "--json", env=env, code=0).stdout)
    assert {"kind": "unavailable", "name": "demo", "plugin": "demo",
            "distribution": "kvbackup-demo 0.1", "reason": reason} in rows  # fmt: skip


def test_a_hook_function_without_hookimpl_is_reported(tmp_path: Path) -> None:
    env = install_plugin(
        tmp_path / "site",
        """
        def kvbackup_register_stores(register):
            register("demo", open_demo, schemes=("demo",))
        """,
    )
    listing = run("plugins", env=env, code=0)
    assert "kvbackup_register_stores is not marked with @hookimpl" in listing.stdout


def test_a_broken_plugin_leaves_every_other_command_working(tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site", 'raise RuntimeError("broken on import")\n')
    listing = run("plugins", env=env, code=0)
    assert (
        "unavailable demo               kvbackup-demo 0.1      RuntimeError: broken on import"
        in listing.stdout
    )
    assert "store      local" in listing.stdout
    src, repo = make_tree(tmp_path / "src"), tmp_path / "repo"
    done = run("init", repo, env=env, code=0)
    assert done.stderr.strip() == (
        "kvbackup: warning: plugin 'demo' is unavailable: RuntimeError: broken on import"
    )
    run("backup", src, "--repo", repo, env=env, code=0)
    run("restore", "latest", tmp_path / "out", "--repo", repo, env=env, code=0)
    assert snapshot_of(tmp_path / "out") == snapshot_of(src)


def test_a_plugin_missing_an_optional_package_names_the_extra_to_install(
    tmp_path: Path,
) -> None:
    env = install_plugin(
        tmp_path / "site",
        "import kvbackup_demo_cloud_sdk\n",
        requires=('kvbackup-demo-cloud-sdk>=1; extra == "cloud"',),
    )
    listing = run("plugins", env=env, code=0)
    assert (
        "needs the module 'kvbackup_demo_cloud_sdk', which is not installed "
        "(pip install 'kvbackup-demo[cloud]')" in listing.stdout
    )


def test_a_missing_s3fs_names_the_fsspec_extra(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "s3fs"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 's3fs'\", name='s3fs')\n"
    )
    env = cli_env(PYTHONPATH=str(shadow.parent))
    done = run("init", "fsspec::s3://bucket/repo", env=env, code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: fsspec::s3://bucket/repo: Install s3fs to access S3 "
        "(pip install 'kvbackup[fsspec]')"
    )


def test_a_url_whose_store_plugin_is_not_installed_says_so(tmp_path: Path) -> None:
    done = run("init", "nosuchstore://bucket/repo", env=cli_env(), code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: no store plugin serves nosuchstore:// (plugin may not be installed: "
        "see `kvbackup plugins`)"
    )


def test_a_url_of_a_broken_store_plugin_does_not_fall_through_to_fsspec(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "shadow" / "kvbackup_s3"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("kvbackup_s3 is broken here")\n')
    env = cli_env(PYTHONPATH=str(shadow.parent))
    done = run("init", "s3://bucket/repo", env=env, code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: no store plugin serves s3:// (plugin may not be installed: see "
        "`kvbackup plugins`; unavailable: plugin 'kvbackup_s3': ImportError: kvbackup_s3 is "
        "broken here)"
    )


def test_a_built_in_also_published_as_an_entry_point_registers_once(tmp_path: Path) -> None:
    env = install_plugin(
        tmp_path / "site", "", dist="kvbackup-extra", entry_point="local", module="unused_mod"
    )
    (tmp_path / "site" / "kvbackup_extra-0.1.dist-info" / "entry_points.txt").write_text(
        "[kvbackup]\nlocal = kvbackup_localdir\n"
    )
    rows = json.loads(run("plugins", "--json", env=env, code=0).stdout)
    assert [r["name"] for r in rows if r["kind"] == "store"].count("local") == 1
    assert not [r for r in rows if r["kind"] == "unavailable"]


def test_a_plugin_clashing_with_a_built_in_is_set_aside(tmp_path: Path) -> None:
    env = install_plugin(
        tmp_path / "site",
        """
        @hookimpl
        def kvbackup_register_stores(register):
            register("local", open_demo, schemes=("demo",))
        """,
    )
    listing = run("plugins", env=env, code=0)
    assert (
        "unavailable demo               kvbackup-demo 0.1      store 'local' is registered by "
        "both plugin 'kvbackup_localdir' and plugin 'demo'" in listing.stdout
    )
    run("init", tmp_path / "repo", env=env, code=0)


# ------------------------------------------------------------------ what factories return

WRONG_NAME = """
class Misnamed(Reverse):
    name = "reverse"


@hookimpl
def kvbackup_register_transforms(register):
    register("demo-rev", lambda options, keys: Misnamed(), role="compression")
"""

COMPRESSOR_AS_CIPHER = """
class NotACipher(Reverse):
    name = "democrypt"


@hookimpl
def kvbackup_register_transforms(register):
    register("democrypt", lambda options, keys: NotACipher(), role="encryption")
"""

FAILING_FACTORIES = """
def failing(*args):
    raise ValueError("the factory gave up")


@hookimpl
def kvbackup_register_stores(register):
    register("demo", failing, schemes=("demo",))


@hookimpl
def kvbackup_register_transforms(register):
    register("demo-fail", failing, role="compression")
"""


def test_a_transform_named_unlike_its_registration_is_refused_at_init(tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site", WRONG_NAME)
    repo = tmp_path / "repo"
    done = run("init", repo, "--compression", "demo-rev", env=env, code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: transform 'demo-rev' (plugin 'demo') made a transform named "
        "'reverse': its name must be the registered one, or backups written with it could "
        "not be restored"
    )
    assert not repo.exists()


def test_a_compressor_registered_as_the_encryption_step_is_a_clear_error(
    tmp_path: Path,
) -> None:
    env = install_plugin(tmp_path / "site", COMPRESSOR_AS_CIPHER)
    repo = tmp_path / "repo"
    done = run("init", repo, "--encryption", "democrypt", env=env, code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: transform 'democrypt' (plugin 'demo') is registered for the "
        "encryption role but does not authenticate (authenticates = False): an encryption "
        "transform must be an AEAD"
    )
    assert not repo.exists()


def test_a_transform_of_the_wrong_role_is_a_usage_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    done = run("init", repo, "--encryption", "zstd", env=cli_env(), code=ExitCode.USAGE)
    assert error_line(done) == (
        "kvbackup: error: transform 'zstd' is a compression transform: it cannot be the "
        "encryption step (encryption transforms: aes-256-gcm, chacha20-poly1305)"
    )
    done = run("init", repo, "--compression", "aes-256-gcm", env=cli_env(), code=ExitCode.USAGE)
    assert "transform 'aes-256-gcm' is a encryption transform" not in done.stderr
    assert error_line(done).startswith(
        "kvbackup: error: transform 'aes-256-gcm' is an encryption transform: it cannot be "
        "the compression step"
    )
    assert not repo.exists()


def test_a_failing_store_factory_is_a_plugin_error_not_an_internal_one(tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site", FAILING_FACTORIES)
    done = run("init", "demo://x", env=env, code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: store 'demo' (plugin 'demo') failed: ValueError: the factory gave up"
    )


def test_a_failing_transform_factory_leaves_no_folder(tmp_path: Path) -> None:
    env = install_plugin(tmp_path / "site", FAILING_FACTORIES)
    repo = tmp_path / "new" / "repo"
    done = run("init", repo, "--compression", "demo-fail", env=env, code=ExitCode.PLUGIN)
    assert error_line(done) == (
        "kvbackup: error: transform 'demo-fail' (plugin 'demo') failed: ValueError: the "
        "factory gave up"
    )
    assert not (tmp_path / "new").exists()


def test_init_that_cannot_get_a_password_leaves_no_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    env = {k: v for k, v in cli_env().items() if k != "KVBACKUP_PASSWORD"}
    repo = tmp_path / "new" / "repo"
    done = run("init", repo, "--password-file", tmp_path / "empty", env=env,
               code=ExitCode.BAD_PASSWORD)  # fmt: skip
    assert error_line(done) == f"kvbackup: error: password file {tmp_path / 'empty'} is empty"
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------ options


def test_an_unknown_store_option_is_a_usage_error_listing_the_valid_ones(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    done = run("init", repo, "-o", "fsyn=false", env=cli_env(), code=ExitCode.USAGE)
    assert error_line(done) == (
        "kvbackup: error: store 'local': unknown option 'fsyn' "
        "(valid options: concurrency, create, fsync)"
    )
    assert not repo.exists()
    done = run("init", repo, "-o", "concurrency=0", env=cli_env(), code=ExitCode.USAGE)
    assert error_line(done) == (
        "kvbackup: error: store 'local': option concurrency: 0 is out of range (1..)"
    )


def test_a_bad_compression_level_at_init_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "new" / "repo"
    done = run("init", repo, "--compression-level", "99", env=cli_env(), code=ExitCode.USAGE)
    assert error_line(done) == (
        "kvbackup: error: transform 'zstd': option level: 99 is out of range (1..22)"
    )
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("zstd:99", "transform 'zstd': option level: 99 is out of range (1..22)"),
        ("zstd:abc", "transform 'zstd': option level: not an integer: 'abc'"),
        ("nosuch", "unknown transform 'nosuch'"),
        ("chacha20-poly1305", "transform 'chacha20-poly1305' is an encryption transform"),
    ],
)
def test_a_bad_compression_for_one_backup_leaves_no_incomplete_snapshot(
    tmp_path: Path, value: str, message: str
) -> None:
    src, repo = make_tree(tmp_path / "src"), tmp_path / "repo"
    run("init", repo, env=cli_env(), code=0)
    code = ExitCode.PLUGIN if value == "nosuch" else ExitCode.USAGE
    done = run("backup", src, "--repo", repo, "--compression", value, env=cli_env(), code=code)
    assert error_line(done).startswith(f"kvbackup: error: {message}")
    assert not (repo / "snapshots").exists() and not (repo / "groups").exists()


def test_an_unknown_source_option_is_a_usage_error(tmp_path: Path) -> None:
    src, repo = make_tree(tmp_path / "src"), tmp_path / "repo"
    run("init", repo, env=cli_env(), code=0)
    done = run(
        "backup", src, "--repo", repo, "--source-option", "one_fs=yes",
        env=cli_env(), code=ExitCode.USAGE,
    )  # fmt: skip
    assert error_line(done) == (
        "kvbackup: error: source 'directory': unknown option 'one_fs' "
        "(valid options: one_file_system)"
    )
    done = run(
        "backup", src, "--repo", repo, "--source-option", "one_file_system=maybe",
        env=cli_env(), code=ExitCode.USAGE,
    )  # fmt: skip
    assert error_line(done) == (
        "kvbackup: error: source 'directory': option one_file_system: not a boolean: 'maybe' "
        "(use true or false)"
    )
    assert not (repo / "snapshots").exists()
    run("backup", src, "--repo", repo, "--source-option", "one_file_system=true",
        env=cli_env(), code=0)  # fmt: skip
    assert len(list((repo / "snapshots").iterdir())) >= 1


# ------------------------------------------------------------------ built-ins without autoload


def test_without_autoload_init_backup_and_restore_still_work(tmp_path: Path) -> None:
    env = cli_env(KVBACKUP_DISABLE_PLUGIN_AUTOLOAD="1")
    src, repo = make_tree(tmp_path / "src"), tmp_path / "repo"
    created = run("init", repo, env=env, code=0)
    assert "transforms: zstd, chacha20-poly1305" in created.stdout
    run("backup", src, "--repo", repo, env=env, code=0)
    run("restore", "latest", tmp_path / "out", "--repo", repo, env=env, code=0)
    assert snapshot_of(tmp_path / "out") == snapshot_of(src)


def test_a_source_checkout_without_an_install_has_the_built_ins(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    for part in ("kvbackup", "plugins"):
        shutil.copytree(ROOT / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    # -S: no site processing, so neither the editable install nor its finder is seen; the
    # dependencies come from site-packages, kvbackup from the checkout.
    path = os.pathsep.join([str(checkout), sysconfig.get_paths()["purelib"]])
    env = cli_env(PYTHONPATH=path, KVBACKUP_DISABLE_PLUGIN_AUTOLOAD="1")
    src, repo = make_tree(tmp_path / "src"), tmp_path / "repo"

    def checkout_kvbackup(*args: object) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-S", "-m", "kvbackup", *map(str, args)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    rows = json.loads(checkout_kvbackup("plugins", "--json").stdout)
    assert {(r["kind"], r["name"]) for r in rows} >= {
        ("store", "local"), ("source", "directory"), ("transform", "zstd"),
        ("transform", "chacha20-poly1305"),
    }  # fmt: skip
    where = subprocess.run(
        [sys.executable, "-S", "-c", "import kvbackup.registry as r; r.PluginRegistry();"
         "import kvbackup_localdir; print(kvbackup_localdir.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert where == str(checkout / "plugins" / "kvbackup_localdir" / "__init__.py")
    checkout_kvbackup("init", repo)
    checkout_kvbackup("backup", src, "--repo", repo)
    checkout_kvbackup("restore", "latest", tmp_path / "out", "--repo", repo)
    assert snapshot_of(tmp_path / "out") == snapshot_of(src)


# ------------------------------------------------------------------ the Python API


def test_a_plugin_given_to_the_registry_fails_at_once_naming_it() -> None:
    class Misspelled:
        @hookimpl
        def kvbackup_register_transform(self, register):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(
        PluginError,
        match=r"^plugin 'mine': kvbackup_register_transform is not a kvbackup hook "
        r"\(did you mean kvbackup_register_transforms\?\)$",
    ):
        PluginRegistry(defaults=False, autoload=False).register(Misspelled(), name="mine")

    class BadKeyword:
        @hookimpl
        def kvbackup_register_transforms(self, register):  # type: ignore[no-untyped-def]
            register("x", lambda o, k: None, roel="compression")

    registry = PluginRegistry(defaults=False, autoload=False)
    registry.register(BadKeyword(), name="mine")
    expected = (
        "plugin 'mine': kvbackup_register_transforms: TypeError: register() got an "
        "unexpected keyword argument 'roel'"
    )
    with pytest.raises(PluginError) as info:
        registry.all("transform")
    assert str(info.value) == expected


def test_registration_arguments_are_checked() -> None:
    class BadSchemes:
        @hookimpl
        def kvbackup_register_stores(self, register):  # type: ignore[no-untyped-def]
            register("x", lambda url, options: None, schemes="s3")

    registry = PluginRegistry(defaults=False, autoload=False)
    registry.register(BadSchemes(), name="mine")
    with pytest.raises(PluginError, match="schemes must be a tuple of strings, not 's3'"):
        registry.all("store")


def test_repository_init_with_a_bad_level_touches_no_store() -> None:
    from kvbackup import OptionError, Repository

    store: dict[str, bytes] = {}
    with pytest.raises(OptionError, match=r"option level: 42 is out of range \(1..22\)"):
        Repository.init(store, password=PASSWORD, compression_level=42)
    assert store == {}


def test_a_failing_accepts_is_a_plugin_error_naming_the_plugin() -> None:
    class Picky:
        @hookimpl
        def kvbackup_register_sources(self, register):  # type: ignore[no-untyped-def]
            register("picky", lambda spec, options: None, accepts=lambda spec: 1 / 0)

    registry = PluginRegistry(plugins=[Picky()], autoload=False)
    with pytest.raises(PluginError) as info:
        registry.source_for("/some/path")
    assert str(info.value) == (
        "source 'picky' (plugin 'Picky'): accepts() failed: ZeroDivisionError: division by zero"
    )
