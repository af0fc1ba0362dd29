"""CIFAR-10 in the two layouts users have, as torchvision datasets and data loaders.

Layouts (``[data] layout``):

* ``cifar-python``: torchvision's ``cifar-10-batches-py/`` folder (``data_batch_1..5``, ``test_batch``,
  ``batches.meta``), read with :class:`torchvision.datasets.CIFAR10`. ``root`` may be that folder or its
  parent. Batches rebuilt from images (``../shared/data/make_cifar10.py``) fail torchvision's md5 check
  although their format is right: they are loaded anyway, with a warning.
* ``imagefolder``: ``train/`` and ``test/`` (or ``val/``) with one sub-folder per class, read with
  :class:`torchvision.datasets.ImageFolder`. ``root`` may hold them directly or one level down
  (``make_cifar10.py DEST`` writes ``DEST/cifar10-jpg/{train,test}``).

Images are 32x32 RGB; tensors given to the model are float32 ``(N, 3, 32, 32)`` normalised by the
backend's transform; labels are int64 ``(N,)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from .errors import DataError

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]

LAYOUT_HELP = (
    "Expected one of two layouts under the data folder:\n"
    "  cifar-python: <root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} (torchvision's CIFAR10)\n"
    "  imagefolder:  <root>/train/<class>/*.png|jpg and <root>/test/<class>/... (or val/ instead of test/)"
)
MISSING_HINT = (
    "put CIFAR-10 there in either layout (python ../shared/data/make_cifar10.py DEST builds both), "
    "or pass --download (or set [data] download = true) to fetch it with torchvision on a machine that is online"
)

_CIFAR_FILES = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch", "batches.meta"]


@dataclass
class DataLayout:
    """What :func:`detect_layout` found: the layout, the folder torchvision reads, and test split name."""

    layout: str
    root: str
    test_dir: Optional[str] = None


def _cifar_python_root(root: str) -> Optional[str]:
    """Return the parent of ``cifar-10-batches-py`` (what torchvision calls root), if present."""
    if os.path.isfile(os.path.join(root, "cifar-10-batches-py", "batches.meta")):
        return root
    if os.path.basename(os.path.normpath(root)) == "cifar-10-batches-py" and os.path.isfile(
        os.path.join(root, "batches.meta")
    ):
        return os.path.dirname(os.path.normpath(root))
    return None


def _imagefolder_root(root: str) -> Optional[Tuple[str, str]]:
    candidates = [root]
    if os.path.isdir(root):
        candidates += sorted(
            os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
        )
    for c in candidates:
        if os.path.isdir(os.path.join(c, "train")):
            for test in ("test", "val"):
                if os.path.isdir(os.path.join(c, test)):
                    return c, test
    return None


def detect_layout(root: str, layout: str = "auto") -> DataLayout:
    """Find the data under ``root`` in the requested layout (or either, for ``auto``).

    Raises:
        DataError: the folder is missing, or holds neither layout (the message names both layouts and
            the ``--download`` option), or holds an incomplete cifar-python folder.
    """
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DataError("data folder %s does not exist.\n%s" % (root, LAYOUT_HELP), hint=MISSING_HINT)
    if layout in ("auto", "cifar-python"):
        cp = _cifar_python_root(root)
        if cp is not None:
            folder = os.path.join(cp, "cifar-10-batches-py")
            missing = [f for f in _CIFAR_FILES if not os.path.isfile(os.path.join(folder, f))]
            if missing:
                raise DataError(
                    "%s is incomplete: %s missing" % (folder, ", ".join(missing)),
                    hint="rebuild it (make_cifar10.py DEST --format cifar-python) or use --download",
                )
            return DataLayout("cifar-python", cp)
    if layout in ("auto", "imagefolder"):
        found = _imagefolder_root(root)
        if found is not None:
            return DataLayout("imagefolder", found[0], test_dir=found[1])
    wanted = "either layout" if layout == "auto" else "the %s layout" % layout
    present = sorted(os.listdir(root))[:8]
    raise DataError(
        "no CIFAR-10 data in %s found in %s (it holds: %s).\n%s"
        % (wanted, root, ", ".join(present) if present else "nothing", LAYOUT_HELP),
        hint=MISSING_HINT,
    )


_UNVERIFIED: List[Any] = []


def _unverified_cifar10() -> Any:
    """torchvision's CIFAR10 reader with the md5 sums unset: ``check_integrity(path, None)`` then
    checks that each file exists. Built on first use so that importing this module needs no torchvision;
    module ``__getattr__`` below lets data-loader worker processes unpickle it by name."""
    if not _UNVERIFIED:
        from torchvision.datasets import CIFAR10

        class UnverifiedCIFAR10(CIFAR10):
            train_list = [[name, None] for name, _md5 in CIFAR10.train_list]
            test_list = [[name, None] for name, _md5 in CIFAR10.test_list]
            meta = dict(CIFAR10.meta, md5=None)

        UnverifiedCIFAR10.__module__ = __name__
        UnverifiedCIFAR10.__qualname__ = "UnverifiedCIFAR10"
        _UNVERIFIED.append(UnverifiedCIFAR10)
    return _UNVERIFIED[0]


def __getattr__(name: str) -> Any:
    if name == "UnverifiedCIFAR10":
        return _unverified_cifar10()
    raise AttributeError(name)


def _cifar10(root: str, train: bool, transform: Any, warn: Callable[[str], None]) -> Any:
    """torchvision CIFAR10; when only the md5 check fails, load the same files without it."""
    from torchvision.datasets import CIFAR10

    try:
        return CIFAR10(root, train=train, transform=transform, download=False)
    except RuntimeError as e:
        if "corrupted" not in str(e):
            raise

    ds = _unverified_cifar10()(root, train=train, transform=transform, download=False)
    if getattr(ds, "data", None) is None or tuple(ds.data.shape[1:]) != (32, 32, 3):
        raise DataError(
            "%s/cifar-10-batches-py does not hold 32x32x3 images" % root,
            hint="rebuild it with make_cifar10.py or use --download",
        )
    warn(
        "cifar-10-batches-py in %s fails torchvision's md5 check (rebuilt batches?); its format is right, "
        "loading it anyway" % root
    )
    return ds


def _download(root: str, warn: Callable[[str], None]) -> None:
    from torchvision.datasets import CIFAR10

    warn("downloading CIFAR-10 into %s with torchvision (about 170 MB)" % root)
    try:
        os.makedirs(root, exist_ok=True)
        CIFAR10(root, train=True, download=True)
    except Exception as e:
        raise DataError(
            "download of CIFAR-10 into %s failed: %s" % (root, e),
            hint="this machine may be offline; copy the data in either layout instead.\n" + LAYOUT_HELP,
        ) from None


def _transforms(train: bool, augment: str, normalize: Callable) -> Any:
    import torchvision.transforms as T

    ops: List[Any] = []
    if train and augment == "crop_flip":
        ops += [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    ops += [T.ToTensor(), normalize]
    return T.Compose(ops)


def _subset(ds: Any, n: Optional[int], seed: int, salt: int) -> Any:
    """A seeded random subset of ``n`` items (all when n is None or >= len)."""
    import torch
    from torch.utils.data import Subset

    if n is None or n >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed * 1000003 + salt)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    return Subset(ds, idx)


class DataBundle:
    """Datasets and loaders of one run, built once from the settings.

    Args:
        data: the ``[data]`` settings.
        seed: ``[run] seed``; subsets and shuffling derive from it.
        normalize: the backend's tensor transform applied after ``ToTensor`` (float32 in [0, 1]).
        num_classes: the model's number of classes; must match the data.
        warn: callback for warnings (md5 mismatch, download).

    Raises:
        DataError: see :func:`detect_layout`; class folders differ between splits; class count
            differs from ``num_classes``.
    """

    def __init__(self, data: Any, seed: int, normalize: Callable, num_classes: int, warn: Callable[[str], None]) -> None:
        self.settings = data
        self.seed = seed
        root = os.path.abspath(os.path.expanduser(data.root))
        try:
            found = detect_layout(root, data.layout)
        except DataError:
            if not data.download:
                raise
            _download(root, warn)
            found = detect_layout(root, "cifar-python")
        self.layout = found
        train_tf = _transforms(True, data.augment, normalize)
        eval_tf = _transforms(False, "none", normalize)
        if found.layout == "cifar-python":
            self.train_full = _cifar10(found.root, True, train_tf, warn)
            self.train_plain = _cifar10(found.root, True, eval_tf, lambda _m: None)
            self.test_full = _cifar10(found.root, False, eval_tf, lambda _m: None)
            self.classes = list(getattr(self.train_full, "classes", CIFAR10_CLASSES))
        else:
            from torchvision.datasets import ImageFolder

            try:
                self.train_full = ImageFolder(os.path.join(found.root, "train"), transform=train_tf)
                self.train_plain = ImageFolder(os.path.join(found.root, "train"), transform=eval_tf)
                self.test_full = ImageFolder(os.path.join(found.root, found.test_dir or "test"), transform=eval_tf)
            except (FileNotFoundError, RuntimeError) as e:
                raise DataError("cannot read image folders in %s: %s" % (found.root, e), hint=LAYOUT_HELP) from None
            if self.train_full.classes != self.test_full.classes:
                raise DataError(
                    "class folders differ between train/ (%d) and %s/ (%d) in %s"
                    % (len(self.train_full.classes), found.test_dir, len(self.test_full.classes), found.root),
                    hint="both splits need the same class sub-folders",
                )
            self.classes = list(self.train_full.classes)
        if len(self.classes) != num_classes:
            raise DataError(
                "the data has %d classes but [model] num_classes = %d" % (len(self.classes), num_classes),
                hint="set [model] num_classes = %d" % len(self.classes),
            )
        self.train = _subset(self.train_full, data.train_images, seed, 1)
        # Calibration sees the same training subset, without augmentation (deterministic statistics).
        self.train_eval_tf = _subset(self.train_plain, data.train_images, seed, 1)
        self.test = _subset(self.test_full, data.eval_images, seed, 2)

    # ------------------------------------------------------------------------------------- loaders
    def _loader(self, ds: Any, batch_size: int, shuffle: bool, epoch: int = 0, pin: bool = False) -> Any:
        import torch
        from torch.utils.data import DataLoader

        gen = torch.Generator().manual_seed(self.seed * 7919 + epoch) if shuffle else None
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=gen,
            num_workers=self.settings.num_workers,
            pin_memory=pin,
            drop_last=False,
        )

    def train_loader(self, epoch: int, pin: bool = False) -> Any:
        """Shuffled training batches; the order depends on ``seed`` and ``epoch`` only."""
        return self._loader(self.train, self.settings.batch_size, True, epoch, pin)

    def eval_loader(self, pin: bool = False) -> Any:
        """Test batches in a fixed order."""
        return self._loader(self.test, self.settings.eval_batch_size, False, pin=pin)

    def calib_loader(self, num_images: Optional[int], pin: bool = False) -> Any:
        """The first ``num_images`` of a seeded shuffle of the training subset, without augmentation."""
        ds = _subset(self.train_eval_tf, num_images, self.seed, 3)
        return self._loader(ds, self.settings.eval_batch_size, False, pin=pin)

    def example_batch(self, n: int = 8) -> Any:
        """``n`` test images as a float32 tensor (n, 3, H, W), for tracing/export."""
        import torch

        return torch.stack([self.test[i][0] for i in range(min(n, len(self.test)))])

    def describe(self) -> str:
        return "%s in %s: %d train images (of %d), %d test images (of %d), %d classes" % (
            self.layout.layout,
            self.layout.root,
            len(self.train),
            len(self.train_full),
            len(self.test),
            len(self.test_full),
            len(self.classes),
        )
