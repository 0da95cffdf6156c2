"""Outputs are built aside, renamed into place, locked, and never destructive."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import rdstd
from rdstd.errors import IncompleteDatasetError, OutputError, OutputLockedError, UsageError
from rdstd.io import atomic, write_errors
from rdstd.store import DatasetWriter, layout, output
from tests.store.helpers import FEATURES, PROVENANCE, make_episode, write_dataset


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_failed_overwrite_leaves_the_existing_dataset_byte_for_byte(tmp_path: Path) -> None:
    out = write_dataset(tmp_path / "ds")
    before = snapshot(out)
    with pytest.raises(RuntimeError), DatasetWriter(out, FEATURES, PROVENANCE, overwrite=True) as writer:
        writer.add(make_episode(7, 30))
        raise RuntimeError("the conversion failed half-way")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"], "no temporary sibling, no lock"


def test_an_overwrite_swaps_the_new_dataset_in_and_removes_the_old(tmp_path: Path) -> None:
    out = write_dataset(tmp_path / "ds", episodes=2)
    write_dataset(out, episodes=3, overwrite=True)
    assert rdstd.open(out).num_episodes == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_without_renameat2_the_swap_is_two_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    out = write_dataset(tmp_path / "ds", episodes=2)
    write_dataset(out, episodes=1, overwrite=True)
    assert rdstd.open(out).num_episodes == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_death_between_the_two_renames_is_undone_by_the_next_run(tmp_path: Path) -> None:
    out = write_dataset(tmp_path / "ds", episodes=2)
    before = snapshot(out)
    pid = dead_pid()
    out.rename(tmp_path / f".ds.rdstd-old-{pid}")  # the first rename happened, the second did not
    (tmp_path / f".ds.rdstd-tmp-{pid}").mkdir()
    lock = {"pid": pid, "host": socket.gethostname(), "started_utc": "2026-01-01T00:00:00+00:00", "command": "x"}
    output.lock_path(out).write_text(json.dumps(lock))
    with pytest.raises(UsageError, match="already there"):
        DatasetWriter(out, FEATURES, PROVENANCE)  # the old dataset is back in place, so this needs --overwrite
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_an_output_that_overlaps_the_source_is_refused(tmp_path: Path, where: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "data.bin").write_bytes(b"precious")
    out = {"same": source, "inside": source / "out", "parent": tmp_path}[where]
    with pytest.raises(UsageError, match="overlaps the source"):
        DatasetWriter(out, FEATURES, PROVENANCE, overwrite=True, sources=[source])
    assert (source / "data.bin").read_bytes() == b"precious"
    assert not (source / "out").exists()


def test_overlap_is_seen_through_symbolic_links_and_dot_dot(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (tmp_path / "link").symlink_to(source)
    with pytest.raises(UsageError, match="overlaps"):
        DatasetWriter(tmp_path / "link" / "out", FEATURES, PROVENANCE, sources=[source])
    with pytest.raises(UsageError, match="overlaps"):
        DatasetWriter(tmp_path / "x" / ".." / "src", FEATURES, PROVENANCE, sources=[source])


def test_a_folder_of_the_users_is_never_replaced_even_with_overwrite(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / layout.MANIFEST).write_text("not json")  # a file of that name does not make it a dataset
    with pytest.raises(UsageError, match="is not a canonical rdstd dataset"):
        DatasetWriter(mine, FEATURES, PROVENANCE, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert not layout.is_dataset(mine)


def test_a_plain_file_at_the_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(UsageError, match="not a folder"):
        DatasetWriter(tmp_path / "out", FEATURES, PROVENANCE, overwrite=True)
    assert (tmp_path / "out").read_text() == "a file"


def test_an_empty_folder_is_written_into_place(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    write_dataset(tmp_path / "out")
    assert rdstd.open(tmp_path / "out").num_episodes == 2


def test_missing_parent_folders_are_made_and_removed_again_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), DatasetWriter(tmp_path / "a" / "b" / "ds", FEATURES, PROVENANCE):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with DatasetWriter(out, FEATURES, PROVENANCE) as first:
        first.add(make_episode(0, 4))
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()} on {socket.gethostname()}, since "):
            DatasetWriter(out, FEATURES, PROVENANCE, overwrite=True)
        with pytest.raises(IncompleteDatasetError, match="writing it right now"):
            rdstd.open(out)
    assert rdstd.open(out).num_episodes == 1


def test_two_processes_writing_one_output_one_is_refused_naming_the_other(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); from pathlib import Path\n"
            "from rdstd.store import DatasetWriter\nfrom tests.store.helpers import FEATURES, PROVENANCE\n"
            "w = DatasetWriter(Path(sys.argv[2]), FEATURES, PROVENANCE)\nprint('locked', flush=True)\n"
            "sys.stdin.readline()\nw.close()",
            str(Path(__file__).resolve().parents[2]),
            str(out),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError) as err:
            DatasetWriter(out, FEATURES, PROVENANCE, overwrite=True)
        assert f"pid {holder.pid} on {socket.gethostname()}" in err.value.message
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert rdstd.open(out).num_episodes == 0


def test_disk_errors_become_output_errors_naming_the_path(tmp_path: Path) -> None:
    full = write_errors.output_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(full, OutputError) and "disk is full" in full.message and str(tmp_path) in full.message
    arrow = write_errors.output_error(
        OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space"), tmp_path
    )
    assert arrow is not None and "disk is full" in arrow.message
    assert write_errors.output_error(OSError(errno.EROFS, "ro"), tmp_path) is not None
    assert write_errors.output_error(OSError(errno.ENOENT, "gone"), tmp_path) is None
    assert write_errors.output_error(pa.ArrowInvalid("bad"), tmp_path) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_an_unwritable_parent_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(OutputError, match="permission denied"):
        DatasetWriter(tmp_path / "ro" / "ds", FEATURES, PROVENANCE)


def test_a_close_that_fails_aborts_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path) -> None:  # the episode table's fsync (the files of close are fsynced together)
        if path.name.startswith(f".{layout.EPISODES}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path)

    real = atomic.fsync_file
    monkeypatch.setattr(atomic, "fsync_file", full)
    with pytest.raises(OutputError, match="disk is full"), DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as w:
        w.add(make_episode(0, 4))
    assert list(tmp_path.iterdir()) == []


def test_a_lock_from_another_host_does_not_hide_a_complete_dataset(tmp_path: Path) -> None:
    out = write_dataset(tmp_path / "ds")
    lock = {"pid": 1, "host": "elsewhere", "started_utc": "2026-01-01T00:00:00+00:00", "command": "rdstd convert"}
    output.lock_path(out).write_text(json.dumps(lock))
    assert rdstd.open(out).num_episodes == 2, "a node that died mid-overwrite left the old dataset whole"
    with DatasetWriter(out, FEATURES, PROVENANCE, overwrite=True) as writer:  # its flock died with it: taken over
        writer.add(make_episode(0, 3))
    assert writer.recovered is not None and "elsewhere" in writer.recovered
    assert rdstd.open(out).num_episodes == 1


def test_a_failed_second_rename_puts_the_old_dataset_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = write_dataset(tmp_path / "ds")
    before = snapshot(out)
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if output.TEMP_MARK in self.name:
            raise OSError(errno.EIO, "I/O error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OutputError, match="I/O error"):
        write_dataset(out, episodes=1, overwrite=True)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_the_files_of_close_are_fsynced_before_any_is_renamed_and_the_manifest_comes_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = atomic.fsync_file, Path.replace

    def fsync(path: Path) -> None:
        events.append(("fsync", path.name))
        real_fsync(path)

    def replace(self: Path, target: str | os.PathLike[str]) -> Path:
        events.append(("rename", Path(target).name))
        return real_replace(self, target)

    monkeypatch.setattr(atomic, "fsync_file", fsync)
    monkeypatch.setattr(Path, "replace", replace)
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer:
        writer.add(make_episode(0, 4))
        events.clear()  # from here: close
    names = [layout.EPISODES, layout.TASKS, layout.STATS, layout.MANIFEST]
    renames = [name for kind, name in events if kind == "rename" and name in names]
    assert renames == names
    last_fsync = max(i for i, (kind, name) in enumerate(events) if kind == "fsync" and name.endswith(f"-{os.getpid()}"))
    first_rename = min(i for i, (kind, name) in enumerate(events) if kind == "rename" and name in names)
    assert last_fsync < first_rename
    assert rdstd.open(tmp_path / "ds").num_episodes == 1
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".")]
