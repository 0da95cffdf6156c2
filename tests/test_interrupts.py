"""Ctrl-C and SIGTERM never cut an output's lock-taking or its swap into place in two, and an interrupt that lands
before an output's ``with`` block leaves nothing behind either (the CI once saw SIGTERM land in such a window)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

import rdstd
from rdstd.cli import app
from rdstd.cli.app import Terminated, main
from rdstd.errors import UsageError
from rdstd.io.interrupts import held_interrupts
from rdstd.store import output
from rdstd.store import writer as writer_module
from rdstd.testing.fixtures import make_zarr_replay_buffer
from tests.store.helpers import write_dataset


def zarr_source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "rb.zarr"
    make_zarr_replay_buffer(path, [5, 6], image_hw=(8, 8))
    return path


def test_a_signal_inside_the_block_is_delivered_when_it_ends() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt) as caught, held_interrupts(note=lambda: "the step was finished"):
        signal.raise_signal(signal.SIGINT)
        steps.append("after the signal")
    assert steps == ["after the signal"], "the block ran to its end"
    assert caught.value.__notes__ == ["the step was finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler is put back"


def test_the_handler_in_place_decides_what_a_held_signal_does() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with held_interrupts():
            signal.raise_signal(signal.SIGTERM)  # ignored before the block: still ignored after it
        seen: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
        with held_interrupts():
            signal.raise_signal(signal.SIGTERM)
            assert seen == [], "not while the block runs"
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_error_in_the_block_does_not_swallow_the_signal_and_gets_no_note() -> None:
    with pytest.raises(KeyboardInterrupt) as caught, held_interrupts(note=lambda: "finished"):
        signal.raise_signal(signal.SIGINT)
        raise OSError("the step failed")
    assert isinstance(caught.value.__context__, OSError)
    assert not getattr(caught.value, "__notes__", None)


def test_nested_blocks_deliver_once_at_the_outer_end_and_other_threads_are_left_alone() -> None:
    order: list[str] = []
    with pytest.raises(KeyboardInterrupt), held_interrupts():
        with held_interrupts():
            signal.raise_signal(signal.SIGINT)
        order.append("inner ended, still held")
    assert order == ["inner ended, still held"]
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            with held_interrupts():
                order.append("thread")
        except BaseException as exc:  # signal.signal would raise ValueError outside the main thread
            errors.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors == [] and order[-1] == "thread"


def test_an_interrupt_during_the_swap_lets_the_overwrite_finish_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = write_dataset(tmp_path / "ds", 2)
    real = output.fsync_dir

    def interrupted(path: Path) -> None:
        if path == out.parent:  # the sync right after the swap: the old dataset is not removed yet
            signal.raise_signal(signal.SIGINT)
        real(path)

    monkeypatch.setattr(output, "fsync_dir", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:
        write_dataset(out, 3, overwrite=True)
    assert caught.value.__notes__ == [f"{out} was complete before the signal came and is in place"]
    assert rdstd.open(out).num_episodes == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"], "the old dataset removed, the lock released"


def test_an_interrupt_between_taking_the_lock_and_the_with_block_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = zarr_source(tmp_path)
    begin = output.Output.begin

    def begun_then_interrupted(*args: object, **kwargs: object) -> output.Output:
        begin(*args, **kwargs)  # type: ignore[arg-type]
        raise Terminated  # as if SIGTERM came before the writer stored it

    monkeypatch.setattr(output.Output, "begin", begun_then_interrupted)
    out = tmp_path / "out"
    assert main(["convert", str(source), str(out)]) == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"], "no temporary folder, no lock"
    assert output.abandon_unfinished() == []


@pytest.mark.parametrize(("handler", "code"), [(app._on_sigterm, 143), (signal.default_int_handler, 130)])
def test_an_interrupt_while_click_parses_the_line_is_still_said(
    handler: Callable[[int, FrameType | None], None],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Interrupting:
        def __format__(self, spec: str) -> str:
            handler(signal.SIGTERM, None)  # as the signal's handler runs: inside click's handling of --version
            return ""

    monkeypatch.setattr(rdstd, "__version__", Interrupting())
    assert main(["--version"]) == code
    assert "nothing of this run was left behind" in capsys.readouterr().err


def test_an_interrupt_after_a_convert_finished_names_the_output_as_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rdstd.cli.commands import convert

    source = zarr_source(tmp_path)
    out = tmp_path / "out"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the summary is printed after the dataset is in place

    monkeypatch.setattr(convert, "emit", interrupted)
    assert main(["convert", str(source), str(out)]) == 130
    assert f"{out} was complete before the signal came and is in place" in capsys.readouterr().err
    assert rdstd.open(out).num_episodes == 2


def _interrupt_main_while_it_waits(events: list[str], done: str, real: Callable[..., None]) -> Callable[..., None]:
    """A helper-thread step that Ctrl-Cs the main thread once it is waiting for it, then does its work."""

    def step(*args: object) -> None:
        time.sleep(0.3)  # the main thread is blocked on this step's future by now
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        time.sleep(0.3)  # an abort that does not wait removes the folder meanwhile
        real(*args)
        events.append(done)

    return step


def _record_removal(events: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = output._remove

    def remove(path: Path) -> None:
        events.append("folder removed")
        real(path)

    monkeypatch.setattr(output, "_remove", remove)


def test_an_interrupt_while_a_row_group_is_written_waits_for_it_before_removing_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr(writer_module, "ROW_GROUP_MIN_BYTES", 1)
    monkeypatch.setattr(
        writer_module, "_write_group", _interrupt_main_while_it_waits(events, "written", writer_module._write_group)
    )
    _record_removal(events, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "ds", 3, row_group_frames=4)  # the second episode waits for the first one's groups
    assert events[:2] == ["written", "folder removed"]
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_while_a_shard_closes_waits_for_it_before_removing_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr(
        writer_module, "_finish_shard", _interrupt_main_while_it_waits(events, "closed", writer_module._finish_shard)
    )
    _record_removal(events, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "ds", 2, shard_bytes=1)  # each episode closes its shard in the background
    assert events[:2] == ["closed", "folder removed"]
    assert list(tmp_path.iterdir()) == []


def test_an_aborted_output_cannot_be_committed_and_a_second_abort_does_nothing(tmp_path: Path) -> None:
    out = output.Output.begin(tmp_path / "ds", is_kind=lambda _: False, kind="test output")
    out.abort()
    out.abort()
    with pytest.raises(UsageError, match="already finished"):
        out.commit()
    assert list(tmp_path.iterdir()) == [] and output.abandon_unfinished() == []
