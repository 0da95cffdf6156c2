"""The contract every format backend satisfies, as a pytest suite to subclass.

Built-in backends and third-party plugins run the same checks::

    from rdstd.testing.contract import BackendContract

    class TestMyFormat(BackendContract):
        @pytest.fixture
        def backend(self): return MyBackend()

        @pytest.fixture
        def source_path(self, tmp_path): return write_small_source(tmp_path)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.convert.specs import draft_spec
from rdstd.formats.base import FormatBackend, read_frames
from rdstd.formats.registry import detect
from rdstd.schema.episode import EncodedFrames, VideoFrames


class BackendContract:
    """Checks every backend passes. Subclasses provide the ``backend`` and ``source_path`` fixtures."""

    def test_it_detects_its_own_source(self, backend: FormatBackend, source_path: Path) -> None:
        assert backend.detect(source_path)
        assert detect(source_path).name == backend.name

    def test_it_does_not_claim_an_empty_folder_or_a_stray_file(self, backend: FormatBackend, tmp_path: Path) -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        stray = tmp_path / "notes.txt"
        stray.write_text("not a dataset")
        assert not backend.detect(empty)
        assert not backend.detect(stray)
        assert not backend.detect(tmp_path / "missing")

    def test_info_counts_agree_with_the_episode_refs(self, backend: FormatBackend, source_path: Path) -> None:
        with backend.open(source_path) as source:
            info = source.info()
            refs = source.episode_refs()
        assert info.format == backend.name
        assert info.episodes == len(refs)
        lengths = [r.length for r in refs]
        if info.frames is not None and all(n is not None for n in lengths):
            assert sum(n for n in lengths if n is not None) == info.frames

    def test_episode_keys_are_unique_and_stable_across_opens(self, backend: FormatBackend, source_path: Path) -> None:
        with backend.open(source_path) as first, backend.open(source_path) as second:
            keys = [r.key for r in first.episode_refs()]
            assert len(set(keys)) == len(keys)
            assert keys == [r.key for r in second.episode_refs()]

    def test_episodes_hold_the_keys_and_shapes_info_declares(self, backend: FormatBackend, source_path: Path) -> None:
        with backend.open(source_path) as source:
            info = source.info()
            for ref in source.episode_refs():
                episode = source.read_episode(ref)
                if ref.length is not None:
                    assert episode.length == ref.length
                if any(k.kind == "timestamp" for k in info.keys):  # a clock the source has must reach the episode
                    assert episode.timestamps_s is not None and episode.timestamps_s.shape == (episode.length,)
                for key in info.keys:
                    if key.kind in {"vector", "timestamp"}:
                        values = read_frames(episode.vectors[key.key])
                        assert values.shape[0] == episode.length
                        assert math.prod(values.shape[1:]) == math.prod(key.shape)
                    elif key.kind == "image":
                        stored = episode.images[key.key]
                        frames = stored if isinstance(stored, EncodedFrames | VideoFrames) else read_frames(stored)
                        assert len(frames) == episode.length
                        if not isinstance(frames, EncodedFrames | VideoFrames):
                            assert np.asarray(frames).shape[1:] == key.shape
                    elif key.kind == "text":
                        assert len(episode.texts[key.key]) == episode.length

    def test_it_converts_end_to_end_with_a_drafted_spec(
        self, backend: FormatBackend, source_path: Path, tmp_path: Path
    ) -> None:
        with backend.open(source_path) as source:
            info = source.info()
        spec = draft_spec(info).model_copy(update={"rate_hz": info.rate_hz or 10.0})
        out = tmp_path / "canonical"
        report = convert(source_path, out, format_name=backend.name, spec=spec)
        dataset = rdstd.open(out)
        assert report.episodes_written == info.episodes == dataset.num_episodes
        if info.frames is not None:
            assert len(dataset) == info.frames
        assert dataset.manifest.provenance.source_format == backend.name
