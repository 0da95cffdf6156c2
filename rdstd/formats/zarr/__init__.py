"""zarr replay buffers (Diffusion Policy, UMI): ``data/<key>`` concatenated over steps, ``meta/episode_ends``.

Stores are zarr v2 (``.zarray`` JSON) or v3 (``zarr.json``), as a folder or a ``.zarr.zip``. Array metadata is
read as JSON first (:mod:`.store`), so codecs are known before zarr touches them: stores whose chunks use
imagecodecs (JPEG-XL, JPEG 2000, as UMI writes) get those codecs registered on demand, with an error naming
the extra when imagecodecs is missing. Per-step arrays are handed out as frame views read a chunk at a time
(:mod:`.frames`); absent chunks follow the fill-value rule documented there and in ``docs/formats/zarr.md``.
The backend is :mod:`.reader`.
"""

from rdstd.formats.zarr.reader import ZarrReplayBuffer, ZarrReplayBufferBackend, classify_layout

__all__ = ["ZarrReplayBuffer", "ZarrReplayBufferBackend", "classify_layout"]
