"""The index of ``rdstd.checks`` entry points: used while the installed distributions stay the same, searched
again when one is installed, removed or edited; off with RDSTD_PLUGIN_INDEX=0; never a reason to miss a plugin."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from rdstd.validate import plugin_index
from rdstd.validate.registry import registry

GROUP = "rdstd.checks"


def _install(site: Path, dist: str, points: str) -> Path:
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{points}\n")
    return info


@pytest.fixture
def searches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A folder on sys.path for dist-infos, the cache in tmp_path, and a log of every real entry-point search."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("RDSTD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(plugin_index.ENV, raising=False)
    log: list[str] = []

    def searching(**kwargs: str) -> metadata.EntryPoints:
        log.append(kwargs["group"])
        return metadata.entry_points(**kwargs)

    monkeypatch.setattr(plugin_index, "entry_points", searching)
    yield log


def _names(site: Path) -> list[str]:
    return sorted(ep.name for ep, _ in plugin_index.plugin_entry_points(GROUP))


def test_the_index_serves_while_nothing_is_installed_and_follows_every_change(
    searches: list[str], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    info = _install(site, "acme_checks", "acme = acme_checks:Check")
    assert _names(site) == ["acme"] and searches == [GROUP]
    assert plugin_index.index_path().is_file()
    found = plugin_index.plugin_entry_points(GROUP)
    assert searches == [GROUP], "the second run is served by the index"
    assert [(ep.name, ep.value, origin) for ep, origin in found] == [
        ("acme", "acme_checks:Check", "plugin acme_checks 0.1")
    ]
    _install(site, "other_checks", "other = other_checks:Check")  # installed
    assert _names(site) == ["acme", "other"] and len(searches) == 2
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nacme2 = acme_checks:Check2\n")  # edited in place
    assert _names(site) == ["acme2", "other"] and len(searches) == 3
    shutil.rmtree(info)  # removed
    assert _names(site) == ["other"] and len(searches) == 4
    assert _names(site) == ["other"] and len(searches) == 4


def test_the_index_can_be_turned_off_and_an_unwritable_cache_loses_nothing(
    searches: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _install(site, "acme_checks", "acme = acme_checks:Check")
    monkeypatch.setenv(plugin_index.ENV, "0")
    assert _names(site) == ["acme"] and _names(site) == ["acme"] and len(searches) == 2
    assert not plugin_index.index_path().exists()
    monkeypatch.delenv(plugin_index.ENV)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("RDSTD_CACHE", str(blocked))
    assert _names(site) == ["acme"] and _names(site) == ["acme"] and len(searches) == 4


def test_a_corrupt_index_is_searched_past(searches: list[str], tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install(site, "acme_checks", "acme = acme_checks:Check")
    assert _names(site) == ["acme"]
    plugin_index.index_path().write_text("{not json")
    assert _names(site) == ["acme"] and len(searches) == 2
    assert _names(site) == ["acme"] and len(searches) == 2  # rewritten


def test_a_plugin_found_through_the_index_is_loaded_and_named(searches: list[str], tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install(site, "acme_checks", "acme = tests.validate.test_engine:LongEpisodes")
    for _ in range(2):  # searched, then from the index
        registry.cache_clear()
        try:
            found = registry()
            assert found.origins["ACME1"] == "plugin acme_checks 0.1"
        finally:
            registry.cache_clear()
    assert searches == [GROUP]
