"""Data: both layouts detected, rebuilt batches read without running code from them, clear messages
for missing or wrong data (naming the file or the classes)."""
import os
import shutil

import pytest
import torch
import torchvision.transforms as T

from core.data import BadImageError, DataBundle, detect_layout
from core.errors import DataError
from core.settings import DataSettings

from .conftest import write_imagefolder

NORM = T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_detects_cifar_python_from_parent_or_the_folder_itself(cifar_python_root):
    assert detect_layout(cifar_python_root).layout == "cifar-python"
    inner = os.path.join(cifar_python_root, "cifar-10-batches-py")
    found = detect_layout(inner)
    assert found.layout == "cifar-python" and found.root == os.path.abspath(cifar_python_root)


def test_detects_imagefolder_directly_or_one_level_down(imagefolder_root, tmp_path):
    assert detect_layout(imagefolder_root).layout == "imagefolder"
    # make_cifar10.py DEST writes DEST/cifar10-jpg/{train,test}
    found = detect_layout(os.path.dirname(imagefolder_root))
    assert found.layout == "imagefolder" and found.root == imagefolder_root
    val_root = write_imagefolder(str(tmp_path / "v"), n_train=20, n_test=20, test_dir="val")
    assert detect_layout(val_root).test_dir == "val"


def test_missing_folder_names_both_layouts_and_download(tmp_path):
    with pytest.raises(DataError) as e:
        detect_layout(str(tmp_path / "nothing-here"))
    text = str(e.value)
    assert "does not exist" in text
    assert "cifar-10-batches-py" in text and "train/<class>" in text and "--download" in text


def test_wrong_layout_is_explained(tmp_path, cifar_python_root):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DataError) as e:
        detect_layout(str(tmp_path))
    assert "it holds: images" in str(e.value) and "imagefolder" in str(e.value)
    with pytest.raises(DataError) as e:
        detect_layout(cifar_python_root, layout="imagefolder")
    assert "the imagefolder layout" in str(e.value)


def test_incomplete_cifar_python_names_missing_files(tmp_path, cifar_python_root):
    dst = tmp_path / "c"
    shutil.copytree(cifar_python_root, str(dst))
    os.remove(str(dst / "cifar-10-batches-py" / "test_batch"))
    with pytest.raises(DataError) as e:
        detect_layout(str(dst))
    assert "test_batch missing" in str(e.value)


def test_rebuilt_batches_load_and_subsets_are_seeded(cifar_python_root):
    warnings = []
    d = DataSettings(root=cifar_python_root, train_images=300, eval_images=100, num_workers=0)
    bundle = DataBundle(d, seed=1, normalize=NORM, num_classes=10, warn=warnings.append)
    assert warnings == []  # batches rebuilt from images (other md5 sums) load like the official ones
    assert len(bundle.train) == 300 and len(bundle.test) == 100 and len(bundle.train_full) == 2000
    x, y = next(iter(bundle.train_loader(epoch=1)))
    assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (3, 32, 32) and y.dtype == torch.int64
    again = DataBundle(d, seed=1, normalize=NORM, num_classes=10, warn=lambda m: None)
    assert again.train.indices == bundle.train.indices
    other = DataBundle(d, seed=2, normalize=NORM, num_classes=10, warn=lambda m: None)
    assert other.train.indices != bundle.train.indices
    assert len(bundle.calib_loader(64).dataset) == 64
    assert bundle.example_batch(8).shape == (8, 3, 32, 32)


def test_imagefolder_bundle_and_class_checks(imagefolder_root, tmp_path):
    d = DataSettings(root=imagefolder_root, num_workers=0)
    bundle = DataBundle(d, seed=0, normalize=NORM, num_classes=10, warn=lambda m: None)
    assert bundle.classes[0] == "airplane" and len(bundle.test) == 200
    with pytest.raises(DataError) as e:
        DataBundle(d, seed=0, normalize=NORM, num_classes=5, warn=lambda m: None)
    assert "num_classes = 10" in e.value.hint
    bad = write_imagefolder(str(tmp_path / "bad"), n_train=200, n_test=200)
    shutil.rmtree(os.path.join(bad, "test", "truck"))
    with pytest.raises(DataError) as e:
        DataBundle(DataSettings(root=bad, num_workers=0), seed=0, normalize=NORM, num_classes=10, warn=lambda m: None)
    assert "class folders differ between train/ (10) and test/ (9)" in e.value.msg
    assert "only in train/: truck" in e.value.msg


def test_class_mismatch_names_the_classes_on_both_sides(tmp_path):
    bad = write_imagefolder(str(tmp_path / "bad"), n_train=60, n_test=60)
    os.rename(os.path.join(bad, "test", "cat"), os.path.join(bad, "test", "kitten"))
    os.makedirs(os.path.join(bad, "train", "zebra"))
    shutil.copy(os.path.join(bad, "train", "dog", os.listdir(os.path.join(bad, "train", "dog"))[0]),
                os.path.join(bad, "train", "zebra", "z.png"))
    with pytest.raises(DataError) as e:
        DataBundle(DataSettings(root=bad, num_workers=0), seed=0, normalize=NORM, num_classes=11, warn=lambda m: None)
    assert "train/ (11) and test/ (10)" in e.value.msg
    assert "only in train/: cat, zebra" in e.value.msg and "only in test/: kitten" in e.value.msg


@pytest.mark.parametrize("workers", [0, 2])
def test_truncated_jpeg_names_the_file(tmp_path, workers):
    from PIL import Image

    root = tmp_path / "jpg"
    for split in ("train", "test"):
        for c in ("a", "b"):
            os.makedirs(str(root / split / c))
            for i in range(6):
                Image.new("RGB", (32, 32), (40 * i, 200, 30)).save(str(root / split / c / ("%d.jpg" % i)), quality=95)
    victim = root / "train" / "b" / "3.jpg"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    d = DataSettings(root=str(root), num_workers=workers, batch_size=4)
    bundle = DataBundle(d, seed=0, normalize=NORM, num_classes=2, warn=lambda m: None)
    with pytest.raises(BadImageError) as e:
        for _ in bundle.train_loader(epoch=1):
            pass
    assert str(victim) in e.value.msg and "Traceback" not in e.value.msg
    assert "cannot read image" in e.value.msg and e.value.hint


class _Payload:
    """A pickled object whose unpickling would create a folder (as a crafted data file would run code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_crafted_cifar_batch_is_refused_without_running_it(tmp_path, cifar_python_root):
    import pickle

    dst = tmp_path / "c"
    shutil.copytree(cifar_python_root, str(dst))
    marker = str(tmp_path / "payload-ran")
    with open(str(dst / "cifar-10-batches-py" / "data_batch_2"), "wb") as f:
        pickle.dump({"data": _Payload(marker), "labels": [0]}, f)
    with pytest.raises(DataError) as e:
        DataBundle(DataSettings(root=str(dst), num_workers=0), seed=0, normalize=NORM, num_classes=10, warn=lambda m: None)
    assert not os.path.exists(marker)
    assert "data_batch_2 was refused without loading it" in e.value.msg and "posix.mkdir" in e.value.msg


def test_download_failure_is_explained(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    d = DataSettings(root=str(tmp_path / "dl"), download=True, num_workers=0)
    with pytest.raises(DataError) as e:
        DataBundle(d, seed=0, normalize=NORM, num_classes=10, warn=lambda m: None)
    assert "download of CIFAR-10" in e.value.msg and "offline" in e.value.hint
