"""Dataset readers for the files users hold: NTU (three formats), HDM05, Kinetics-skeleton, NW-UCLA.

Every format is written in its exact on-disk form into ``tmp_path`` (a handful of samples) and read
back through the registered source and through ``run`` on the command line; bad inputs must end in
one clear :class:`UserError`, and pickles must never run code.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from robustbench_skel.commands.cli import main
from robustbench_skel.datasets.safe_pickle import load_pickle
from robustbench_skel.errors import UserError
from robustbench_skel.layout import HDM05_25, NTU25, NWUCLA20, OPENPOSE18
from robustbench_skel.run.record import read_record
from robustbench_skel.registry import DATASETS, VICTIMS

from conftest import TinyVictim


@VICTIMS.register("tiny-test-victim-any-layout")
class AnyLayoutTinyVictim(TinyVictim):
    description = "test-only tiny victim for every layout"
    layouts = ("ntu25", "hdm05", "openpose18", "nw-ucla20")


def load(name: str, path, split: str = "test"):
    return DATASETS.get(name)()(split, path)


def onehot(labels, k: int) -> np.ndarray:
    y = np.zeros((len(labels), k))
    y[np.arange(len(labels)), labels] = 1.0
    return y


def folder(tmp_path: Path, *parts: str) -> Path:
    d = tmp_path.joinpath("files", *parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------------------------------------
# NTU: CTR-GCN-family .npz


def write_ctrgcn_npz(path: Path, k: int = 60, t: int = 300, compressed: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.normal(0, 0.5, (2, t, 150)).astype(np.float32),
        "y_train": onehot([1, k - 1], k),
        "x_test": rng.normal(0, 0.5, (5, t, 150)).astype(np.float32),
        "y_test": onehot([0, 3, 7, k - 1, 2], k),
    }
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


def test_ctrgcn_npz_is_memory_mapped_and_round_trips(tmp_path):
    path = folder(tmp_path) / "NTU60_CS.npz"
    arrays = write_ctrgcn_npz(path)
    ds = load("ntu60-xsub", path)
    assert isinstance(ds.clips, np.memmap) and not ds.clips.flags.owndata
    assert ds.clips.shape == (5, 3, 300, 25, 2) and ds.layout is NTU25 and ds.num_classes == 60
    assert ds.labels.tolist() == [0, 3, 7, 59, 2] and ds.labels.dtype == np.int64
    assert ds.sample_ids == tuple(f"test-{i:06d}" for i in range(5))
    assert ds.class_names[0] == "drink water" and ds.class_names[59] == "walking apart from each other"
    assert ds.notes["memory_mapped"] and ds.version == "ctrgcn-npz"
    x = arrays["x_test"]
    for i, c, t, v, m in [(0, 0, 0, 0, 0), (4, 2, 299, 24, 1), (2, 1, 17, 5, 1), (3, 0, 150, 20, 0)]:
        assert ds.clips[i, c, t, v, m] == x[i, t, m * 75 + v * 3 + c]  # person-major, then joint, then xyz
    expected = x.reshape(5, 300, 2, 25, 3).transpose(0, 4, 1, 3, 2)
    sub = ds.subset(np.array([3, 0]))
    np.testing.assert_array_equal(sub.clips, expected[[3, 0]])
    assert sub.labels.tolist() == [59, 0] and not isinstance(sub.clips, np.memmap)
    train = load("ntu60-xsub", path, "train")
    assert train.labels.tolist() == [1, 59] and train.sample_ids[0] == "train-000000"
    np.testing.assert_array_equal(np.asarray(train.clips), arrays["x_train"].reshape(2, 300, 2, 25, 3).transpose(0, 4, 1, 3, 2))


def test_compressed_npz_is_read_whole_with_a_note(tmp_path):
    path = folder(tmp_path) / "NTU120_CSet.npz"
    arrays = write_ctrgcn_npz(path, k=120, t=20, compressed=True)
    ds = load("ntu120-xset", path)
    assert not isinstance(ds.clips, np.memmap) and ds.notes["memory_mapped"] is False and "compressed" in ds.notes["memory_note"]
    np.testing.assert_array_equal(ds.clips, arrays["x_test"].reshape(5, 20, 2, 25, 3).transpose(0, 4, 1, 3, 2))
    assert ds.labels.tolist() == [0, 3, 7, 119, 2] and ds.num_classes == 120


@pytest.mark.parametrize(
    "case,needle",
    [
        ("width", "one-hot labels over 120 classes"),
        ("family", "looks like xview data by its name"),
        ("shape", "expected (N, T, 150)"),
        ("keys", "expected arrays 'x_test' and 'y_test'"),
        ("beat", "--dataset npz"),
        ("count", "5 clips in x_test but 4 labels"),
    ],
)
def test_bad_ctrgcn_npz(tmp_path, case, needle):
    d = folder(tmp_path)
    path = d / ("NTU60_CV.npz" if case == "family" else "ntu.npz")
    x = np.zeros((5, 20, 150), np.float32)
    y = onehot([0, 1, 2, 3, 4], 60)
    if case == "width":
        y = onehot([0, 1, 2, 3, 4], 120)
    elif case == "shape":
        x = np.zeros((5, 20, 149), np.float32)
    elif case == "count":
        y = y[:4]
    if case == "keys":
        np.savez(path, x_train=x, y_train=y)
    elif case == "beat":
        np.savez(path, clips=x, classes=y)
    else:
        np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(UserError, match=None) as err:
        load("ntu60-xsub", path)
    assert needle in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# NTU: ST-GCN / 2s-AGCN / MS-G3D .npy + _label.pkl


def write_pair(d: Path, prefix: str, clips: np.ndarray, names, labels, data_name: str = "{p}_data_joint.npy", protocol=4):
    np.save(d / data_name.format(p=prefix), clips)
    with open(d / f"{prefix}_label.pkl", "wb") as f:
        pickle.dump((list(names), list(labels)), f, protocol=protocol)


def py2_label_pickle(names: list[bytes], labels: list[int]) -> bytes:
    """A protocol-2 pickle as Python 2 writes a (names, labels) tuple of 8-bit ``str`` names."""
    out = bytearray(b"\x80\x02]q\x00(")  # PROTO 2, EMPTY_LIST, BINPUT, MARK
    for n in names:
        out += b"U" + bytes([len(n)]) + n  # SHORT_BINSTRING
    out += b"e]q\x01("  # APPENDS, EMPTY_LIST, BINPUT, MARK
    for label in labels:
        out += b"K" + bytes([label])  # BININT1
    out += b"e\x86q\x02."  # APPENDS, TUPLE2, BINPUT, STOP
    return bytes(out)


def ntu_clips(n: int, t: int = 20, v: int = 25, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, (n, 3, t, v, 2)).astype(np.float32)


def test_npy_pair_folder_file_and_label_file(tmp_path):
    d = folder(tmp_path, "xview")
    clips = ntu_clips(4)
    names = [f"S001C002P00{i}R001A00{i + 1}.skeleton" for i in range(4)]
    write_pair(d, "val", clips, names, [0, 1, 2, 59], protocol=2)
    write_pair(d, "train", ntu_clips(2, seed=2), names[:2], [5, 6])
    for path in (d, d / "val_data_joint.npy", d / "val_label.pkl"):
        ds = load("ntu60-xview", path)
        assert isinstance(ds.clips, np.memmap) and ds.notes["memory_mapped"] and ds.version == "stgcn-npy"
        np.testing.assert_array_equal(np.asarray(ds.clips), clips)
        assert ds.labels.tolist() == [0, 1, 2, 59]
        assert ds.sample_ids[0] == "S001C002P000R001A001"  # the .skeleton suffix is dropped
        assert Path(ds.source).name == "val_data_joint.npy"
    assert load("ntu60-xview", d, "train").labels.tolist() == [5, 6]


def test_stgcn_names_and_python2_label_pickle(tmp_path):
    d = folder(tmp_path, "xsub")
    clips = ntu_clips(3)
    np.save(d / "val_data.npy", clips)  # ST-GCN's name
    (d / "val_label.pkl").write_bytes(py2_label_pickle([b"S001\xe9", b"S002", b"S003"], [4, 0, 119]))
    ds = load("ntu120-xsub", d)
    assert ds.sample_ids == ("S001\u00e9", "S002", "S003") and ds.labels.tolist() == [4, 0, 119]
    np.testing.assert_array_equal(np.asarray(ds.clips), clips)


@pytest.mark.parametrize(
    "case,needle",
    [
        ("range", "labels must lie in [0, 60)"),
        ("joints", "18 joints but the ntu25 layout has 25"),
        ("split", "is the test split"),
        ("nolabel", "val_label.pkl is missing"),
        ("structure", "expected a pickled tuple (sample_names, labels)"),
        ("count", "3 names and 3 labels for 4 clips"),
        ("bone", "bone stream"),
        ("empty", "holds no val_data_joint.npy or val_data.npy"),
        ("shape", "expected (N, 3, T, V, M)"),
    ],
)
def test_bad_npy_pairs(tmp_path, case, needle):
    d = folder(tmp_path, "xsub")
    clips, labels, names = ntu_clips(4), [0, 1, 2, 3], ["a", "b", "c", "d"]
    path, split = d, "test"
    if case == "range":
        labels = [0, 1, 75, 3]
    elif case == "joints":
        clips = ntu_clips(4, v=18)
    elif case == "count":
        labels, names = labels[:3], names[:3]
    elif case == "shape":
        clips = clips[:, :, :, :, 0]
    if case != "empty":
        write_pair(d, "val", clips, names, labels)
    if case == "split":
        path, split = d / "val_data_joint.npy", "train"
    elif case == "nolabel":
        (d / "val_label.pkl").unlink()
    elif case == "structure":
        with open(d / "val_label.pkl", "wb") as f:
            pickle.dump({"names": names, "labels": labels}, f)
    elif case == "bone":
        np.save(d / "val_data_bone.npy", clips)
        path = d / "val_data_bone.npy"
    with pytest.raises(UserError) as err:
        load("ntu60-xsub", path, split)
    assert needle in str(err.value), str(err.value)


def test_folder_names_that_announce_another_family(tmp_path):
    for name in ("xview", "cs"):
        write_pair(folder(tmp_path, name), "val", ntu_clips(2), ["a", "b"], [0, 1])
    with pytest.raises(UserError, match="looks like xview data by its name, but --dataset ntu60-xsub"):
        load("ntu60-xsub", folder(tmp_path, "xview"))
    assert len(load("ntu60-xview", folder(tmp_path, "cs"))) == 2  # a short folder word is no evidence


# ---------------------------------------------------------------------------------------------
# NTU: PYSKL / mmaction2 pickle


def write_pyskl(path: Path, edition: str = "ntu60", protocol: int = 2, seed: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    shapes = [(1, 12), (2, 20), (2, 7), (1, 15), (2, 9)]
    anns = [
        {
            "frame_dir": f"S001C001P001R001A{i + 1:03d}",
            "label": [5, 0, 59, 12, 33][i],
            "total_frames": t,
            "keypoint": rng.normal(0, 0.5, (m, t, 25, 3)).astype(np.float16),
        }
        for i, (m, t) in enumerate(shapes)
    ]
    ids = [a["frame_dir"] for a in anns]
    other = "xview" if edition == "ntu60" else "xset"
    split = {"xsub_train": ids[:2], "xsub_val": ids[2:], f"{other}_train": ids[::2], f"{other}_val": ids[1::2]}
    with open(path, "wb") as f:
        pickle.dump({"split": split, "annotations": anns}, f, protocol=protocol)  # mmcv writes protocol 2
    return anns


def test_pyskl_pickle_pads_persons_and_frames(tmp_path):
    path = folder(tmp_path) / "ntu60_3danno.pkl"
    anns = write_pyskl(path)
    ds = load("ntu60-xview", path)  # xview_val = samples 1 and 3
    assert ds.sample_ids == (anns[1]["frame_dir"], anns[3]["frame_dir"]) and ds.labels.tolist() == [0, 12]
    assert ds.clips.shape == (2, 3, 20, 25, 2) and ds.clips.dtype == np.float32 and ds.version == "pyskl-pkl"
    kp = anns[3]["keypoint"]  # one person, 15 frames: the rest is zero
    np.testing.assert_array_equal(ds.clips[1, :, :15, :, 0], kp[0].transpose(2, 0, 1).astype(np.float32))
    assert not ds.clips[1, :, 15:].any() and not ds.clips[1, ..., 1].any()
    np.testing.assert_array_equal(ds.clips[0], anns[1]["keypoint"].transpose(3, 1, 2, 0).astype(np.float32))
    xsub = load("ntu60-xsub", path, "train")
    assert xsub.labels.tolist() == [5, 0] and xsub.clips.shape == (2, 3, 20, 25, 2)


def test_pyskl_protocol_5_and_wrong_edition(tmp_path):
    named = folder(tmp_path) / "ntu120_3d.pkl"
    write_pyskl(named, edition="ntu120", protocol=5)
    assert load("ntu120-xset", named).labels.tolist() == [0, 12]
    with pytest.raises(UserError, match="looks like ntu120 data by its name"):
        load("ntu60-xsub", named)
    path = folder(tmp_path) / "skeletons3d.pkl"  # a neutral name: the split keys tell the edition
    write_pyskl(path, edition="ntu120", protocol=5)
    with pytest.raises(UserError, match="it is NTU120 data"):
        load("ntu60-xsub", path)
    path60 = folder(tmp_path) / "annotations.pkl"
    write_pyskl(path60, edition="ntu60")
    with pytest.raises(UserError, match="it is NTU60 data"):
        load("ntu120-xsub", path60)


@pytest.mark.parametrize(
    "case,needle",
    [("2d", "2D keypoints"), ("missing", "have no annotation"), ("notdict", "not a PYSKL/mmaction2 annotation pickle"),
     ("label", "'label' must be an integer")],
)
def test_bad_pyskl(tmp_path, case, needle):
    path = folder(tmp_path) / "anno.pkl"
    ids = ["S001", "S002"]
    anns = [{"frame_dir": i, "label": 1, "total_frames": 5, "keypoint": np.zeros((1, 5, 25, 3), np.float16)} for i in ids]
    obj = {"split": {"xsub_train": ids, "xsub_val": ids}, "annotations": anns}
    if case == "2d":
        anns[1]["keypoint"] = np.zeros((1, 5, 17, 2), np.float16)
    elif case == "missing":
        obj["split"]["xsub_val"] = ids + ["S999"]
    elif case == "notdict":
        obj = [anns]
    elif case == "label":
        anns[0]["label"] = "drink water"
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    with pytest.raises(UserError) as err:
        load("ntu60-xsub", path)
    assert needle in str(err.value), str(err.value)


# ---------------------------------------------------------------------------------------------
# Pickles never run code


class _RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evaluates:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_malicious_pickles_are_refused_without_running(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = _RunsCommand(f"touch {marker}") if payload == "system" else _Evaluates(f"open({str(marker)!r}, 'w')")
    d = folder(tmp_path, "xsub")
    np.save(d / "val_data_joint.npy", ntu_clips(1))
    with open(d / "val_label.pkl", "wb") as f:
        pickle.dump((["a"], [evil]), f)
    with open(d / "ntu60.pkl", "wb") as f:
        pickle.dump({"split": {"xsub_val": ["a"]}, "annotations": [{"frame_dir": "a", "label": evil}]}, f, protocol=2)
    for path in (d, d / "ntu60.pkl"):
        with pytest.raises(UserError, match="refusing to load this pickle") as err:
            load("ntu60-xsub", path)
        named = ("posix.system", "nt.system") if payload == "system" else ("builtins.eval", "__builtin__.eval")
        assert any(n in str(err.value) for n in named), str(err.value)
    with pytest.raises(UserError, match="refusing"):
        load_pickle(d / "val_label.pkl")
    assert not marker.exists()


def test_pickled_custom_objects_are_refused(tmp_path):
    path = tmp_path / "obj.pkl"
    with open(path, "wb") as f:
        pickle.dump({"split": {}, "annotations": [Path("x")]}, f)
    with pytest.raises(UserError, match="pathlib"):
        load_pickle(path)


def test_unrecognised_and_truncated_files(tmp_path):
    text = folder(tmp_path) / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="unrecognised format.*CTR-GCN-family .npz.*PYSKL"):
        load("ntu60-xsub", text)
    broken = folder(tmp_path) / "broken.pkl"
    broken.write_bytes(pickle.dumps({"split": {}}, protocol=4)[:-5])
    with pytest.raises(UserError, match="not a readable pickle"):
        load("ntu60-xsub", broken)
    trunc = folder(tmp_path) / "trunc.npz"
    write_ctrgcn_npz(trunc, t=10)
    trunc.write_bytes(trunc.read_bytes()[:-200])
    with pytest.raises(UserError, match="npz"):
        load("ntu60-xsub", trunc)
    with pytest.raises(UserError, match="holds no val_data_joint.npy.*reads a CTR-GCN"):
        load("ntu60-xsub", folder(tmp_path, "empty"))


# ---------------------------------------------------------------------------------------------
# HDM05 (BEAT / TASAR)


def write_hdm05(d: Path, seed: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    data = {}
    for split, fname, labels in (("train", "classTrain.npz", [0, 64, 3]), ("test", "classTest.npz", [7, 1, 64, 30])):
        clips = rng.normal(0, 1, (len(labels), 20, 75)).astype(np.float32)
        classes = np.array(labels) if split == "train" else onehot(labels, 65)
        np.savez(d / fname, clips=clips, classes=classes)
        data[split] = (clips, labels)
    return data


def test_hdm05_folder_and_file(tmp_path):
    d = folder(tmp_path, "hdm05")
    data = write_hdm05(d)
    for split in ("train", "test"):
        ds = load("hdm05", d, split)
        clips, labels = data[split]
        assert isinstance(ds.clips, np.memmap) and ds.clips.shape == (len(labels), 3, 20, 25, 1)
        assert ds.layout is HDM05_25 and ds.num_classes == 65 and ds.labels.tolist() == labels
        np.testing.assert_array_equal(np.asarray(ds.clips), clips.reshape(-1, 20, 25, 3, 1).transpose(0, 3, 1, 2, 4))
        assert ds.clips[0, 2, 5, 7, 0] == clips[0, 5, 7 * 3 + 2]
        assert "not metres" in ds.notes["coordinates"]
    assert "NORMALISED" in DATASETS.get("hdm05").description
    assert load("hdm05", d / "classTest.npz").labels.tolist() == data["test"][1]
    with pytest.raises(UserError, match="is the train split by its name"):
        load("hdm05", d / "classTrain.npz", "test")
    np.savez(d / "classTest.npz", clips=np.zeros((2, 20, 72), np.float32), classes=np.array([0, 1]))
    with pytest.raises(UserError, match=r"expected \(N, T, 75\)"):
        load("hdm05", d)
    np.savez(d / "classTest.npz", clips=np.zeros((2, 20, 75), np.float32), classes=onehot([0, 1], 60))
    with pytest.raises(UserError, match="one-hot labels over 60 classes"):
        load("hdm05", d)
    with pytest.raises(UserError, match="holds no classTest.npz"):
        load("hdm05", folder(tmp_path, "nothing"))


# ---------------------------------------------------------------------------------------------
# Kinetics-skeleton


def person(k: int, score: float, zero_joint: int | None = None) -> dict:
    xs = [0.1 * k + 0.01 * j for j in range(18)]
    ys = [0.3 + 0.02 * j - 0.01 * k for j in range(18)]
    scores = [score] * 18
    if zero_joint is not None:
        scores[zero_joint] = 0.0
    return {"pose": [v for xy in zip(xs, ys) for v in xy], "score": scores}


def write_kinetics_json(root: Path) -> dict:
    vids = root / "kinetics_val"
    vids.mkdir(parents=True)
    people0 = [person(0, 0.1), person(1, 0.5), person(2, 0.2), person(3, 0.9, zero_joint=4), person(4, 0.3), person(5, 1.0)]
    video_a = {
        "data": [
            {"frame_index": 0, "skeleton": people0},
            {"frame_index": 2, "skeleton": [person(7, 0.7)]},
            {"frame_index": 300, "skeleton": [person(8, 0.8)]},  # beyond 300 frames: ignored, as in gendata
        ],
        "label": "abseiling",
        "label_index": 0,
    }
    video_c = {"data": [{"frame_index": 1, "skeleton": [person(2, 0.4)]}], "label": "zumba", "label_index": 399}
    (vids / "vidA.json").write_text(json.dumps(video_a))
    (vids / "vidB.json").write_text(json.dumps({"data": [], "label": "bowling", "label_index": 5}))
    (vids / "vidC.json").write_text(json.dumps(video_c))
    labels = {
        "vidA": {"has_skeleton": True, "label": "abseiling", "label_index": 0},
        "vidB": {"has_skeleton": False, "label": "bowling", "label_index": 5},
        "vidC": {"has_skeleton": True, "label": "zumba", "label_index": 399},
    }
    (root / "kinetics_val_label.json").write_text(json.dumps(labels))
    return {"people0": people0}


def _expected_person(p: dict) -> np.ndarray:
    pose, score = np.array(p["pose"]), np.array(p["score"])
    out = np.stack([pose[0::2] - 0.5, pose[1::2] - 0.5, score])
    out[:2, score == 0] = 0
    return out.astype(np.float32)


def test_kinetics_json_release_is_converted_like_gendata(tmp_path):
    root = folder(tmp_path, "kinetics-skeleton")
    made = write_kinetics_json(root)
    for path in (root, root / "kinetics_val"):
        ds = load("kinetics-skeleton", path)
        assert ds.sample_ids == ("vidA", "vidC") and ds.labels.tolist() == [0, 399]  # vidB has no skeleton
        assert ds.clips.shape == (2, 3, 300, 18, 2) and ds.layout is OPENPOSE18 and ds.num_classes == 400
        assert ds.class_names[0] == "abseiling" and ds.class_names[399] == "zumba" and ds.class_names[5] == "class_5"
        people = made["people0"]
        # frame 0: only the first 5 people are observed (person 5, the best, is not); best two by summed score: 3, 1
        np.testing.assert_array_equal(ds.clips[0, :, 0, :, 0], _expected_person(people[3]))
        np.testing.assert_array_equal(ds.clips[0, :, 0, :, 1], _expected_person(people[1]))
        assert ds.clips[0, 0, 0, 4, 0] == 0 and ds.clips[0, 2, 0, 4, 0] == 0  # score 0 -> x, y zeroed
        np.testing.assert_array_equal(ds.clips[0, :, 2, :, 0], _expected_person(person(7, 0.7)))
        assert not ds.clips[0, :, 2, :, 1].any() and not ds.clips[0, :, 1].any() and not ds.clips[0, :, 3:].any()
        assert "not metres" in ds.notes["coordinates"]
    with pytest.raises(UserError, match="kinetics_train"):
        load("kinetics-skeleton", root, "train")
    (root / "kinetics_val" / "vidD.json").write_text(json.dumps({"data": []}))
    with pytest.raises(UserError, match="vidD"):
        load("kinetics-skeleton", root)


def test_kinetics_npy_pair(tmp_path):
    d = folder(tmp_path, "kinetics")
    clips = np.random.default_rng(5).random((3, 3, 300, 18, 2)).astype(np.float32)
    write_pair(d, "val", clips, ["a.json", "b.json", "c.json"], [3, 399, 0], data_name="{p}_data.npy")
    ds = load("kinetics-skeleton", d)
    assert isinstance(ds.clips, np.memmap) and ds.sample_ids == ("a", "b", "c") and ds.labels.tolist() == [3, 399, 0]
    np.testing.assert_array_equal(np.asarray(ds.clips), clips)
    np.save(d / "val_data.npy", clips[:, :, :, :17])
    with pytest.raises(UserError, match="17 joints but the openpose18 layout has 18"):
        load("kinetics-skeleton", d)


# ---------------------------------------------------------------------------------------------
# NW-UCLA


def write_nwucla(root: Path) -> dict:
    d = root / "all_sqe"
    d.mkdir(parents=True)
    rng = np.random.default_rng(6)
    seqs = {}
    for name, t in (("a01_s01_e00_v01", 9), ("a08_s02_e01_v02", 5), ("a12_s03_e00_v03", 7), ("a11_s01_e02_v03", 11)):
        seq = rng.normal(0, 1, (t, 20, 3)).astype(np.float32)
        (d / f"{name}.json").write_text(json.dumps({"file_name": name, "skeletons": seq.astype(np.float64).tolist()}))
        seqs[name] = seq
    (d / "README.txt").write_text("not a sample")
    return seqs


def test_nwucla_views_labels_and_padding(tmp_path):
    root = folder(tmp_path, "nwucla")
    seqs = write_nwucla(root)
    for path in (root, root / "all_sqe"):
        ds = load("nw-ucla", path)
        assert ds.sample_ids == ("a11_s01_e02_v03", "a12_s03_e00_v03") and ds.labels.tolist() == [8, 9]
        assert ds.clips.shape == (2, 3, 11, 20, 1) and ds.layout is NWUCLA20 and ds.class_names[9] == "carry"
        np.testing.assert_array_equal(ds.clips[1, :, :7, :, 0], seqs["a12_s03_e00_v03"].transpose(2, 0, 1))
        assert not ds.clips[1, :, 7:].any()
    train = load("nw-ucla", root, "train")
    assert train.sample_ids == ("a01_s01_e00_v01", "a08_s02_e01_v02") and train.labels.tolist() == [0, 6]
    (root / "all_sqe" / "a07_s01_e00_v03.json").write_text(json.dumps({"skeletons": [[[0, 0, 0]] * 20]}))
    with pytest.raises(UserError, match="a07 is not one of"):
        load("nw-ucla", root)
    (root / "all_sqe" / "a07_s01_e00_v03.json").unlink()
    (root / "all_sqe" / "a02_s01_e00_v03.json").write_text(json.dumps({"skeletons": [[[0, 0, 0]] * 25]}))
    with pytest.raises(UserError, match=r"expected \(T >= 1, 20 joints, 3\)"):
        load("nw-ucla", root)
    with pytest.raises(UserError, match="no a"):
        load("nw-ucla", folder(tmp_path, "nothing"))


# ---------------------------------------------------------------------------------------------
# Through the command line


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    made: dict = {}
    root = tmp_path_factory.mktemp("ckpt")

    def get(num_classes: int, layout=NTU25) -> Path:
        key = (num_classes, layout.name)
        if key not in made:
            torch.manual_seed(0)
            made[key] = root / f"tiny-{num_classes}-{layout.name}.pt"
            torch.save(AnyLayoutTinyVictim(num_classes=num_classes, layout=layout).state_dict(), made[key])
        return made[key]

    return get


def cli_run(capsys, tmp_path, dataset, path, ckpt, victim="tiny-test-victim-any-layout", extra=()):
    code = main([
        "run", "--victim", victim, "--checkpoint", str(ckpt), "--dataset", dataset, "--data-path", str(path),
        "--n-samples", "4", "--steps", "1", "--results-dir", str(tmp_path / "results"), "--sanity-samples", "2", *extra,
    ])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_runs_on_every_reader(tmp_path, capsys, checkpoints):
    files = folder(tmp_path)
    write_ctrgcn_npz(files / "NTU60_CS.npz", t=40)
    write_pyskl(files / "ntu120_3danno.pkl", edition="ntu120")
    hdm = folder(tmp_path, "hdm05")
    write_hdm05(hdm)
    kin = folder(tmp_path, "kinetics-skeleton")
    write_kinetics_json(kin)
    ucla = folder(tmp_path, "nwucla")
    write_nwucla(ucla)
    cases = [
        ("ntu60-xsub", files / "NTU60_CS.npz", checkpoints(60), "tiny-test-victim", "ctrgcn-npz", 4),
        ("ntu120-xset", files / "ntu120_3danno.pkl", checkpoints(120), "tiny-test-victim", "pyskl-pkl", 2),
        ("hdm05", hdm, checkpoints(65, HDM05_25), "tiny-test-victim-any-layout", "beat-npz", 4),
        ("kinetics-skeleton", kin, checkpoints(400, OPENPOSE18), "tiny-test-victim-any-layout", "kinetics-json", 2),
        ("nw-ucla", ucla, checkpoints(10, NWUCLA20), "tiny-test-victim-any-layout", "all_sqe-json", 2),
    ]
    for dataset, path, ckpt, victim, version, n in cases:
        code, out, err = cli_run(capsys, tmp_path, dataset, path, ckpt, victim)
        assert code == 0, f"{dataset}: {err}"
        record = read_record(out.strip().splitlines()[-1])
        assert record["dataset"]["name"] == dataset and record["dataset"]["version"] == version
        assert record["dataset"]["synthetic"] is False and record["dataset"]["num_evaluated"] == n
        unit = {"kinetics-skeleton": "frame units", "hdm05": "normalised units"}.get(dataset, "m")
        assert record["dataset"]["coordinate_unit"] == record["attack"]["budget_unit"] == unit  # budgets are in the data's unit
        assert f"eps=0.01 {unit}," in out
        assert len(record["samples"]["id"]) == n


def test_cli_bad_inputs_are_one_line(tmp_path, capsys, checkpoints):
    d = folder(tmp_path, "xsub")
    np.save(d / "val_data_joint.npy", ntu_clips(1))
    marker = tmp_path / "pwned"
    with open(d / "val_label.pkl", "wb") as f:
        pickle.dump((["a"], [_RunsCommand(f"touch {marker}")]), f)
    for path, needle in ((d, "refusing to load this pickle"), (tmp_path / "missing.npz", "does not exist")):
        code, out, err = cli_run(capsys, tmp_path, "ntu60-xsub", path, checkpoints(60), "tiny-test-victim")
        lines = [line for line in err.strip().splitlines() if line]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not marker.exists() and not (tmp_path / "results" / "runs").exists()
