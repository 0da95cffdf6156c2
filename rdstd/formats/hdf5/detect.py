"""Which writer produced an HDF5 file, and why rdstd thinks so: flavor, evidence keys, confidence.

The rules (in order) follow the layouts each writer's code produces (see ``docs/formats/hdf5.md``):

1. ``data/`` with ``demo_N`` groups (robomimic's shape): the first demo by number decides. ``initial_state`` +
   ``states/articulation`` is Isaac Lab (``isaaclab_mimic`` with ``obs/datagen_info``); demo-level
   ``datagen_info`` or ``src_demo_inds`` is MimicGen; ``problem_info``/``bddl_file_name`` is LIBERO; ``env`` (no
   ``env_args``) with a ``model_file`` attr is raw robosuite; ``env_args`` is robomimic. An empty ``data/`` is an
   empty source.
2. ``demo_N`` groups at the root: robomimic-like without ``data/``.
3. ``action`` + ``observations/qpos`` at the root: ALOHA/ACT (one file per episode).
4. ``master/`` + ``puppet/`` or ``observations/rgb_images``: RoboMIND.
5. ``observation/`` + ``action/`` with ``observation/timestamp`` and ``observation/robot_state``: DROID raw.
6. Numbered groups at the root (``Trial0``…): one episode per group (RoboHive traces).
7. A 1-d integer ``episode_ends`` dataset anywhere (exclusive ends): steps concatenated, split by that index.
8. Datasets only, sharing their first dimension: one episode per file (D4RL-style); sharing their first *two*
   dimensions: episodes stacked on axis 0 (a guess, said with a low confidence).

Anything else is ``unknown``: opening it says what the file holds and that a spec must map it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from rdstd.formats.hdf5.h5 import import_h5py, natural_key

Layout = Literal["demo_groups", "root_groups", "one_episode", "stacked", "concatenated", "empty", "unknown"]
#: Names of an index dataset that splits concatenated steps into episodes (exclusive ends, as replay buffers write).
INDEX_NAMES = ("episode_ends",)

_DEMO = re.compile(r"^demo_(\d+)$")
_NUMBERED = re.compile(r"^([A-Za-z_]+?)_?(\d+)$")


@dataclass(frozen=True)
class Detection:
    """A file's flavor, the keys and attributes that show it, how sure the rule is, and its episode layout."""

    flavor: str
    evidence: list[str]
    confidence: float
    layout: Layout
    #: Where the episode groups live ("data" or "" for the root) for the group layouts.
    group: str = ""
    #: For the concatenated layout: the path of the episode index dataset.
    index: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The detection as ``rdstd info`` shows it."""
        return {
            "flavor": self.flavor,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "layout": self.layout,
        }


def demo_names(group: Any) -> list[str]:
    """The ``demo_N`` members of ``group``, ordered by N (lexical order puts demo_10 before demo_2)."""
    return sorted((n for n in group if _DEMO.match(n)), key=lambda n: int(n[5:]))


def numbered_groups(group: Any) -> list[str]:
    """Root groups that share one name stem followed by a number (``Trial0``, ``Trial1`` …), in numeric order."""
    h5py = import_h5py()
    names = [n for n in group if isinstance(group.get(n), h5py.Group) and _NUMBERED.match(n)]
    stems = Counter(_NUMBERED.match(n).group(1) for n in names)  # type: ignore[union-attr]
    if not stems:
        return []
    stem = stems.most_common(1)[0][0]
    picked = [n for n in names if _NUMBERED.match(n).group(1) == stem]  # type: ignore[union-attr]
    return sorted(picked, key=natural_key)


def classify(file: Any) -> Detection:
    """The flavor of an opened ``h5py.File`` (see the module docs for the rules)."""
    h5py = import_h5py()
    data = file.get("data")
    if isinstance(data, h5py.Group):
        demos = demo_names(data)
        if demos:
            return _demo_flavor(data, data[demos[0]], "data")
        if not len(data):
            return Detection("empty", ["data/ (no demo_N groups)"], 0.9, "empty", "data")
    demos = demo_names(file)
    if demos:
        return Detection("robomimic_like", [f"{demos[0]}/ at the root (no data/ group)"], 0.5, "demo_groups", "")
    keys = set(file.keys())
    if "action" in file and "observations/qpos" in file:
        evidence = ["action", "observations/qpos"]
        flavor = "aloha"
        if "base_action" in file:
            evidence.append("base_action")
            flavor = "mobile_aloha"
        if "compress" in file.attrs:
            evidence.append("@compress")
        return Detection(flavor, evidence, 0.9, "one_episode")
    if {"master", "puppet"} <= keys or "observations/rgb_images" in file:
        evidence = sorted(k for k in ("master", "puppet") if k in keys)
        if "observations/rgb_images" in file:
            evidence.append("observations/rgb_images")
        return Detection("robomind", evidence, 0.85, "one_episode")
    if {"observation", "action"} <= keys and "observation/timestamp" in file and "observation/robot_state" in file:
        return Detection(
            "droid_raw", ["observation/timestamp", "observation/robot_state", "action/"], 0.9, "one_episode"
        )
    groups = numbered_groups(file)
    if groups:
        first = file[groups[0]]
        flavor = "robohive_trace" if "env_infos" in first and "time" in first else "numbered_groups"
        evidence = [f"{groups[0]}/ … {groups[-1]}/ ({len(groups)} numbered groups)"]
        if flavor == "robohive_trace":
            evidence += [f"{groups[0]}/env_infos", f"{groups[0]}/time"]
        return Detection(flavor, evidence, 0.8 if flavor == "robohive_trace" else 0.6, "root_groups", "")
    return _flat(file)


def _demo_flavor(data: Any, demo: Any, group: str) -> Detection:
    name = demo.name.rsplit("/", 1)[-1]
    where = f"{group}/{name}"
    if "initial_state" in demo and "states/articulation" in demo:
        evidence = [f"{where}/initial_state", f"{where}/states/articulation"]
        if "obs/datagen_info" in demo:
            return Detection("isaaclab_mimic", [*evidence, f"{where}/obs/datagen_info"], 0.95, "demo_groups", group)
        return Detection("isaaclab", evidence, 0.9, "demo_groups", group)
    if "datagen_info" in demo or "src_demo_inds" in demo.attrs:
        evidence = [f"{where}/datagen_info" if "datagen_info" in demo else f"{where}@src_demo_inds"]
        return Detection("mimicgen", evidence, 0.9, "demo_groups", group)
    if "problem_info" in data.attrs or "bddl_file_name" in data.attrs:
        evidence = [f"{group}@{a}" for a in ("problem_info", "bddl_file_name") if a in data.attrs]
        return Detection("libero", evidence, 0.9, "demo_groups", group)
    if "env" in data.attrs and "env_args" not in data.attrs and "model_file" in demo.attrs:
        evidence = [f"{group}@env", f"{where}@model_file", f"no {group}@env_args"]
        if "env_info" in data.attrs:
            evidence.insert(1, f"{group}@env_info")
        return Detection("robosuite_raw", evidence, 0.9, "demo_groups", group)
    if "env_args" in data.attrs:
        return Detection("robomimic", [f"{group}@env_args", f"{where}/"], 0.85, "demo_groups", group)
    return Detection("robomimic_like", [f"{where}/ (no env_args)"], 0.5, "demo_groups", group)


def _index(file: Any) -> str:
    """The path of an ``episode_ends`` index dataset (1-d integers), or ""."""
    from rdstd.formats.hdf5.h5 import walk

    for path, ds in walk(file):
        if path.rsplit("/", 1)[-1] in INDEX_NAMES and ds.ndim == 1 and ds.dtype.kind in "iu":
            return str(path)
    return ""


def _flat(file: Any) -> Detection:
    h5py = import_h5py()
    index = _index(file)
    if index:
        return Detection("concatenated", [f"{index} (episode ends)"], 0.7, "concatenated", index=index)
    datasets = {n: file[n] for n in file if isinstance(file.get(n), h5py.Dataset)}
    if not datasets or len(datasets) != len(file.keys()):
        return Detection("unknown", sorted(file.keys())[:8], 0.0, "unknown")
    firsts = Counter(int(d.shape[0]) for d in datasets.values() if d.ndim >= 1)
    multi = [d for d in datasets.values() if d.ndim >= 3]
    if multi and len({tuple(d.shape[:2]) for d in multi}) == 1 and len(multi) >= len(datasets) / 2:
        episodes, steps = multi[0].shape[:2]
        evidence = [f"{n} {list(d.shape)}" for n, d in datasets.items() if d.ndim >= 3][:4]
        notes = [
            f"read as {episodes} episodes of {steps} steps stacked on axis 0 (every ≥3-d dataset shares its first "
            "two dimensions); the file does not say so"
        ]
        return Detection("stacked_arrays", evidence, 0.5, "stacked", notes=notes)
    if firsts and firsts.most_common(1)[0][1] == len(datasets):
        evidence = [f"{n} {list(d.shape)}" for n, d in datasets.items()][:5]
        flavor = "d4rl" if {"observations", "actions"} <= set(datasets) else "flat_arrays"
        return Detection(flavor, evidence, 0.7 if flavor == "d4rl" else 0.5, "one_episode")
    return Detection("unknown", sorted(datasets)[:8], 0.0, "unknown")
