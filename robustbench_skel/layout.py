"""Skeleton layouts: which joints a clip holds and how they connect.

Every clip in the program is a float tensor ``(N, C=3, T, V, M)`` in metres (batch, xyz, frames,
joints, persons). A :class:`SkeletonLayout` names the ``V`` joints and gives the kinematic tree
(``parents``) used for bones, forward kinematics and imperceptibility metrics, plus the graph edge
list that graph-convolutional victims were published with (which is not always the anatomical tree:
ST-GCN chains hand tip -> thumb -> hand, for instance).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "SkeletonLayout",
    "NTU25",
    "HDM05_25",
    "OPENPOSE18",
    "COCO17",
    "NWUCLA20",
    "LAYOUTS",
    "get_layout",
]


@dataclass(frozen=True)
class SkeletonLayout:
    """A named joint set with its kinematic tree.

    ``parents[j]`` is the parent of joint ``j`` in the kinematic tree; the root is its own parent.
    ``gcn_edges`` are the ``(child, parent)`` pairs of the graph the published models were trained
    with (0-based); they default to the kinematic tree.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    center: int
    gcn_edges: tuple[tuple[int, int], ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        v = len(self.joint_names)
        if len(self.parents) != v:
            raise ValueError(f"layout {self.name}: {v} joint names but {len(self.parents)} parents")
        roots = [j for j, p in enumerate(self.parents) if p == j]
        if len(roots) != 1:
            raise ValueError(f"layout {self.name}: expected exactly one root, found {roots}")
        if not 0 <= self.center < v:
            raise ValueError(f"layout {self.name}: centre joint {self.center} out of range")
        for j in range(v):  # every joint must reach the root without a cycle
            seen, k = set(), j
            while self.parents[k] != k:
                if k in seen:
                    raise ValueError(f"layout {self.name}: cycle in parents through joint {j}")
                seen.add(k)
                k = self.parents[k]
        for a, b in self.gcn_edges:
            if not (0 <= a < v and 0 <= b < v):
                raise ValueError(f"layout {self.name}: graph edge ({a}, {b}) out of range")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def root(self) -> int:
        return next(j for j, p in enumerate(self.parents) if p == j)

    @cached_property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """``(child, parent)`` pairs of the kinematic tree, root excluded."""
        return tuple((j, p) for j, p in enumerate(self.parents) if p != j)

    @cached_property
    def graph_edges(self) -> tuple[tuple[int, int], ...]:
        """Edges for graph models: the published list when known, else the kinematic tree."""
        return self.gcn_edges or self.bones

    @cached_property
    def topological_order(self) -> tuple[int, ...]:
        """Joints ordered so that every parent comes before its children (root first)."""
        depth = [0] * self.num_joints
        for j in range(self.num_joints):
            k = j
            while self.parents[k] != k:
                depth[j] += 1
                k = self.parents[k]
        return tuple(sorted(range(self.num_joints), key=lambda j: (depth[j], j)))

    def adjacency(self) -> np.ndarray:
        """Symmetric binary adjacency ``(V, V)`` of :attr:`graph_edges`, no self loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in self.graph_edges:
            if i != j:
                a[i, j] = a[j, i] = 1.0
        return a

    def index(self, joint_name: str) -> int:
        return self.joint_names.index(joint_name)


def _one_based(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((a - 1, b - 1) for a, b in pairs)


# NTU RGB+D (Kinect v2), 25 joints. Parents follow the anatomical tree (hand tip and thumb both hang
# off the hand); the GCN edge list is the one ST-GCN, 2s-AGCN, MS-G3D and CTR-GCN were trained with.
NTU25 = SkeletonLayout(
    name="ntu25",
    joint_names=(
        "spine_base", "spine_mid", "neck", "head",
        "left_shoulder", "left_elbow", "left_wrist", "left_hand",
        "right_shoulder", "right_elbow", "right_wrist", "right_hand",
        "left_hip", "left_knee", "left_ankle", "left_foot",
        "right_hip", "right_knee", "right_ankle", "right_foot",
        "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip", "right_thumb",
    ),
    parents=tuple(p - 1 for p in (1, 1, 21, 3, 21, 5, 6, 7, 21, 9, 10, 11, 1, 13, 14, 15, 1, 17, 18, 19, 2, 8, 8, 12, 12)),
    center=20,
    gcn_edges=_one_based([
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
        (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
    ]),
    description="NTU RGB+D 60/120 Kinect v2 skeleton, 25 joints, metres",
)

# HDM05 as mapped to 25 joints by the BEAT / TASAR data (root = joint 10). Joint names are positional:
# the source gives the tree, not names.
HDM05_25 = SkeletonLayout(
    name="hdm05",
    joint_names=tuple(f"hdm05_joint_{i}" for i in range(25)),
    parents=(10, 0, 1, 2, 3, 10, 5, 6, 7, 8, 10, 10, 11, 12, 13, 13, 15, 16, 17, 18, 13, 20, 21, 22, 23),
    center=12,
    gcn_edges=(
        (10, 11), (11, 12), (12, 13), (13, 14), (13, 15), (15, 16), (16, 17), (17, 18), (18, 19), (13, 20),
        (20, 21), (21, 22), (22, 23), (23, 24), (10, 0), (0, 1), (1, 2), (2, 3), (3, 4), (10, 5), (5, 6), (6, 7),
        (7, 8), (8, 9),
    ),
    description="HDM05 motion capture mapped to 25 joints (BEAT/TASAR files)",
)

OPENPOSE18 = SkeletonLayout(
    name="openpose18",
    joint_names=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ),
    parents=(1, 1, 1, 2, 3, 1, 5, 6, 2, 8, 9, 5, 11, 12, 0, 0, 14, 15),
    center=1,
    gcn_edges=(
        (4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1), (2, 1),
        (0, 1), (15, 0), (14, 0), (17, 15), (16, 14),
    ),
    description="OpenPose 18-joint 2D layout of Kinetics-skeleton (x, y, score)",
)

COCO17 = SkeletonLayout(
    name="coco17",
    joint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle",
    ),
    parents=(0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    center=0,
    gcn_edges=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6), (5, 0), (6, 0),
        (1, 0), (3, 1), (2, 0), (4, 2),
    ),
    description="COCO 17-keypoint 2D layout (HRNet skeletons in PYSKL/mmaction2)",
)

NWUCLA20 = SkeletonLayout(
    name="nw-ucla20",
    joint_names=(
        "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow", "left_wrist",
        "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee",
        "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle", "right_foot",
    ),
    parents=tuple(p - 1 for p in (1, 1, 2, 3, 3, 5, 6, 7, 3, 9, 10, 11, 1, 13, 14, 15, 1, 17, 18, 19)),
    center=2,
    gcn_edges=_one_based([
        (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11), (13, 1),
        (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
    ]),
    description="Northwestern-UCLA Kinect v1 skeleton, 20 joints",
)

LAYOUTS: dict[str, SkeletonLayout] = {l.name: l for l in (NTU25, HDM05_25, OPENPOSE18, COCO17, NWUCLA20)}


def get_layout(name: str) -> SkeletonLayout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton layout {name!r}; known: {', '.join(sorted(LAYOUTS))}") from None
