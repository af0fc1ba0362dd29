"""Shared fixtures: small, learnable CIFAR-10-shaped data in both layouts, and fast settings.

The synthetic images are 32x32 RGB uint8, one colour tint per class plus noise, so that a small
MobileNetV2 learns them within a few dozen steps: tests can assert that accuracy rises above chance.
They are written in the two real layouts users have (torchvision's ``cifar-10-batches-py`` pickles and an
ImageFolder tree), so the same loading code runs as on the real data set. Real CIFAR-10 comes from
``../shared/data`` (see ``real_cifar10``).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from typing import Any, Dict

import pytest

# Tests expect English unless they choose zh: a developer's zh locale (or a QAT_TUI_LANG left set) must
# not change what the CLI, the wizard and their subprocesses print. Tests of the locale pass their own env.
for _var in ("LANGUAGE", "LC_ALL", "QAT_TUI_LANG"):
    os.environ.pop(_var, None)
os.environ["LANG"] = "C.UTF-8"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real CIFAR-10 archive: $SHARED_DATA (the Makefile sets it), else shared/data next to the clone.
SHARED_DATA = os.path.abspath(os.environ.get("SHARED_DATA") or os.path.join(REPO, "..", "shared", "data"))
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _synthetic(n: int, seed: int):
    import numpy as np

    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 10, size=n)
    palette = np.array(
        [[230, 40, 40], [40, 230, 40], [40, 40, 230], [230, 230, 40], [230, 40, 230],
         [40, 230, 230], [140, 70, 20], [20, 70, 140], [250, 250, 250], [10, 10, 10]],
        dtype=np.float32,
    )
    imgs = palette[labels][:, None, None, :] + rng.normal(0, 40, size=(n, 32, 32, 3))
    # a class-dependent stripe so the task needs spatial features, not only colour
    for i, lab in enumerate(labels):
        imgs[i, :, (lab * 3) % 32, :] = 255 - imgs[i, :, (lab * 3) % 32, :]
    return np.clip(imgs, 0, 255).astype("uint8"), labels.tolist()


def write_cifar_python(root: str, n_train: int = 2000, n_test: int = 400, seed: int = 0) -> str:
    """Write ``root/cifar-10-batches-py`` in torchvision's format (md5 sums differ from the real ones)."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    train, train_y = _synthetic(n_train, seed)
    test, test_y = _synthetic(n_test, seed + 1)
    per = (n_train + 4) // 5
    for b in range(5):
        part = slice(b * per, (b + 1) * per)
        data = train[part].transpose(0, 3, 1, 2).reshape(-1, 3072)
        with open(os.path.join(folder, "data_batch_%d" % (b + 1)), "wb") as f:
            pickle.dump({"batch_label": "synthetic %d" % b, "labels": train_y[part], "data": data, "filenames": []}, f)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        pickle.dump({"batch_label": "synthetic test", "labels": test_y, "data": test.transpose(0, 3, 1, 2).reshape(-1, 3072), "filenames": []}, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": CLASSES, "num_cases_per_batch": per, "num_vis": 3072}, f)
    return root


def write_imagefolder(root: str, n_train: int = 600, n_test: int = 200, seed: int = 0, test_dir: str = "test") -> str:
    """Write ``root/train/<class>/*.png`` and ``root/<test_dir>/<class>/*.png``."""
    from PIL import Image

    for split, n, s in (("train", n_train, seed), (test_dir, n_test, seed + 1)):
        imgs, labels = _synthetic(n, s)
        for c in CLASSES:
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
        for i, (img, lab) in enumerate(zip(imgs, labels)):
            Image.fromarray(img).save(os.path.join(root, split, CLASSES[lab], "%05d.png" % i))
    return root


@pytest.fixture(scope="session")
def cifar_python_root(tmp_path_factory: Any) -> str:
    """A synthetic cifar-10-batches-py data set (2,000 train, 400 test images)."""
    return write_cifar_python(str(tmp_path_factory.mktemp("cifar_py")))


@pytest.fixture(scope="session")
def imagefolder_root(tmp_path_factory: Any) -> str:
    """A synthetic ImageFolder data set (600 train, 200 test images)."""
    return write_imagefolder(str(tmp_path_factory.mktemp("cifar_if")))


def tiny_settings_dict(data_root: str, run_dir: str, **sections: Dict[str, Any]) -> Dict[str, Any]:
    """Settings for a fast whole-pipeline run on the synthetic data (about a minute on 2 cores with
    the AOTInductor package, half of that without). Sections given override the defaults here."""
    base: Dict[str, Any] = {
        "run": {"run_dir": run_dir, "threads": 2},
        "data": {"root": data_root, "train_images": 1024, "eval_images": 256, "batch_size": 32,
                 "eval_batch_size": 128, "num_workers": 0, "augment": "none"},
        "model": {"width_mult": 0.25},
        "float": {"epochs": 3, "lr": 0.003},
        "calib": {"num_images": 256},
        "qat": {"epochs": 1},
        "compile": {"package": False, "perf_batch_sizes": [1, 8], "perf_iterations": 2, "graph_format": "text"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return base


@pytest.fixture
def tiny_settings(cifar_python_root: str, tmp_path: Any):
    """Factory: ``tiny_settings(**section_overrides)`` -> validated :class:`core.settings.Settings`."""
    from core.settings import validate

    def make(**sections: Dict[str, Any]):
        return validate(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), **sections))

    return make


@pytest.fixture(scope="session")
def real_cifar10(tmp_path_factory: Any) -> str:
    """The real CIFAR-10 unpacked from ``../shared/data`` (both layouts); skipped when absent."""
    script = os.path.join(SHARED_DATA, "make_cifar10.py")
    if not os.path.exists(os.path.join(SHARED_DATA, "cifar10-jpg.tar.xz")):
        pytest.skip("real CIFAR-10 not available: %s is absent" % SHARED_DATA)
    cache = os.environ.get("QAT_TUI_CIFAR_CACHE") or str(tmp_path_factory.mktemp("real_cifar"))
    subprocess.run([sys.executable, script, cache, "--format", "both"], check=True, stdout=subprocess.DEVNULL)
    return cache


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory: Any) -> None:
    """Keep the run registry (core.runs) of the tests out of the user's own state folder."""
    os.environ["QAT_TUI_STATE_DIR"] = str(tmp_path_factory.mktemp("qat_tui_state"))


HORIZON_DOUBLE = os.path.join(REPO, "tests", "horizon_double")


@pytest.fixture(scope="module")
def horizon_double(tmp_path_factory: Any):
    """Put the test double of horizon_plugin_pytorch/hbdk (tests/horizon_double) on sys.path and on
    PYTHONPATH (for worker processes) for one test module; remove every trace of it afterwards so other
    modules see Horizon as not installed. Yields the double's call-log module (``_double``)."""
    preexisting = "horizon_plugin_pytorch" in sys.modules
    old_pp = os.environ.get("PYTHONPATH")
    old_path = os.environ.get("PATH", "")
    sys.path.insert(0, HORIZON_DOUBLE)
    os.environ["PYTHONPATH"] = HORIZON_DOUBLE + (os.pathsep + old_pp if old_pp else "")
    from horizon_plugin_pytorch import _double

    # graphviz is not always installed: the double's stand-in `dot` lets visualize_model run
    if not __import__("shutil").which("dot"):
        bin_dir = str(tmp_path_factory.mktemp("fake_dot"))
        _double.make_fake_dot(bin_dir)
        os.environ["PATH"] = bin_dir + os.pathsep + old_path
    _double.reset()
    yield _double
    os.environ["PATH"] = old_path
    if old_pp is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_pp
    while HORIZON_DOUBLE in sys.path:
        sys.path.remove(HORIZON_DOUBLE)
    if not preexisting:
        for name in [m for m in sys.modules if m.split(".")[0] in ("horizon_plugin_pytorch", "horizon_plugin_profiler", "hbdk", "hbdk4")]:
            del sys.modules[name]


THIRD_BACKEND = os.path.join(REPO, "tests", "third_backend")


@pytest.fixture(scope="module")
def third_backend(tmp_path_factory: Any):
    """Register the test backend ``fx`` (tests/third_backend, see its README) the way an installed
    package would: a ``.dist-info`` folder with ``entry_points.txt`` on ``sys.path`` and ``PYTHONPATH``
    (for worker processes), then a registry refresh. Removed again afterwards. Yields its name."""
    from core import backends

    site = str(tmp_path_factory.mktemp("site"))
    info = os.path.join(site, "qat_tui_fx_backend-0.1.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: qat-tui-fx-backend\nVersion: 0.1\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as f:
        f.write("[qat_tui.backends]\nfx = qat_tui_fx_backend:SPEC\n")
    old_pp = os.environ.get("PYTHONPATH")
    for folder in (site, THIRD_BACKEND):
        sys.path.insert(0, folder)
    os.environ["PYTHONPATH"] = os.pathsep.join([site, THIRD_BACKEND] + ([old_pp] if old_pp else []))
    backends.refresh()
    yield "fx"
    for folder in (site, THIRD_BACKEND):
        while folder in sys.path:
            sys.path.remove(folder)
    if old_pp is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_pp
    for name in [m for m in sys.modules if m.split(".")[0] == "qat_tui_fx_backend"]:
        del sys.modules[name]
    backends.refresh()


def _torch_backend_available() -> bool:
    try:
        from core.backends.torch_pt2e.backend import TorchPt2eBackend

        return TorchPt2eBackend.detect().available
    except Exception:
        return False


TORCH_BACKEND = _torch_backend_available()
requires_torch_backend = pytest.mark.skipif(
    not TORCH_BACKEND,
    reason="the torch backend needs torch >= 2.5 and torchao; this environment is Horizon's "
    "(Python 3.8 + torch 1.10), where the horizon backend runs",
)


OWN_CLASSES = ["circle", "cross", "stripes"]


def write_three_class_folder(root: str, n_train: int = 120, n_val: int = 60, seed: int = 0) -> str:
    """An ImageFolder of a user's own kind: ``train/`` and ``val/`` with 3 classes of drawn shapes on
    noisy backgrounds, mostly 64x64 but some 80x72 and 48x48 (resized and cropped to the input size),
    and some grayscale (made 3-channel by the loader)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.RandomState(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in OWN_CLASSES:
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
        for i in range(n):
            lab = i % 3
            w, h = [(64, 64), (64, 64), (80, 72), (48, 48)][rng.randint(0, 4)]
            bg = rng.randint(0, 90, size=(h, w, 3)).astype("uint8")
            img = Image.fromarray(bg)
            d = ImageDraw.Draw(img)
            colour = tuple(int(v) for v in rng.randint(150, 256, size=3))
            cx, cy, r = w // 2 + rng.randint(-6, 7), h // 2 + rng.randint(-6, 7), min(w, h) // 4
            if lab == 0:
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif lab == 1:
                d.line([cx - r, cy - r, cx + r, cy + r], fill=colour, width=5)
                d.line([cx - r, cy + r, cx + r, cy - r], fill=colour, width=5)
            else:
                for y in range(2, h, 10):
                    d.rectangle([0, y, w, y + 3], fill=colour)
            if i % 7 == 0:
                img = img.convert("L")
            img.save(os.path.join(root, split, OWN_CLASSES[lab], "%04d.png" % i))
    return root


@pytest.fixture(scope="session")
def three_class_root(tmp_path_factory: Any) -> str:
    """The 3-class ImageFolder of :func:`write_three_class_folder` (120 train, 60 val images)."""
    return write_three_class_folder(str(tmp_path_factory.mktemp("own_images")))


USER_NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "user_net.py")


def own_model_settings(data_root: str, run_dir: str, model: Dict[str, Any], **sections: Dict[str, Any]) -> Dict[str, Any]:
    """Fast settings for a whole run of your own model on :func:`write_three_class_folder` at 64x64."""
    base: Dict[str, Any] = {
        "run": {"run_dir": run_dir, "threads": 2},
        "data": {"root": data_root, "image_size": 64, "batch_size": 16, "eval_batch_size": 60, "num_workers": 0,
                 "augment": "crop_flip"},
        "model": model,
        "float": {"epochs": 2, "lr": 0.003},
        "calib": {"num_images": 48},
        "qat": {"epochs": 1, "lr": 1e-4},
        "compile": {"package": False, "perf_batch_sizes": [1], "perf_iterations": 1, "graph_format": "text"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return base


@pytest.fixture(autouse=True)
def _english_after_each_test():
    """Every test starts and ends in English (core.i18n's language is process-wide: a test that shows
    zh must not leave it to the next one)."""
    from core.i18n import set_language

    set_language("en")
    yield
    set_language("en")
