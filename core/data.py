"""The run's images: CIFAR-10 in its two layouts, or any ImageFolder tree, as datasets and loaders.

Layouts (``[data] layout``):

* ``cifar-python``: torchvision's ``cifar-10-batches-py/`` folder (``data_batch_1..5``, ``test_batch``,
  ``batches.meta``), read as torchvision's ``CIFAR10`` reads it but with a restricted unpickler
  (:class:`CifarBatches`: arrays and lists only, never code). ``root`` may be that folder or its parent.
  Batches rebuilt from images (``../shared/data/make_cifar10.py``) load like the official ones (their
  md5 sums differ; the format and the image shape are checked instead).
* ``imagefolder``: ``train/`` and ``val/`` (or ``test/``) with one sub-folder per class (the class
  names), read with :class:`torchvision.datasets.ImageFolder`: images of any size, grayscale/palette/
  RGBA converted to RGB. ``root`` may hold them directly or one level down (``make_cifar10.py DEST``
  writes ``DEST/cifar10-jpg/{train,test}``).

Tensors given to the model are float32 ``(N, 3, S, S)`` with S = ``[data] image_size`` (transforms in
:mod:`core.image_transforms`), normalised with ``[data] mean``/``std`` (or a backend's own input
transform, e.g. Horizon's centred YUV); labels are int64 ``(N,)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from .errors import DataError
from .i18n import N_, _
from .image_transforms import CIFAR10_CLASSES, build_transform, resolve_mean_std

LAYOUT_HELP = N_(
    "Expected one of two layouts under the data folder:\n"
    "  cifar-python: <root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} (torchvision's CIFAR10)\n"
    "  imagefolder:  <root>/train/<class>/*.png|jpg and <root>/val/<class>/... (or test/ instead of val/)"
)
"""Translate where shown: ``_(LAYOUT_HELP)``."""
MISSING_HINT = N_(
    "put your images there as train/<class>/ and val/<class>/ folders, or CIFAR-10 in either layout "
    "(python ../shared/data/make_cifar10.py DEST builds both; --download fetches CIFAR-10 on a machine that is online)"
)
"""Translate where shown: ``_(MISSING_HINT)``."""

_NORMALIZATION_WHY = (N_("[data] mean/std"), N_("ImageNet's (torchvision weights)"), N_("CIFAR-10's"), N_("ImageNet's"))
"""The reasons :func:`core.image_transforms.resolve_mean_std` gives (that module imports nothing of
qat-tui: it is embedded in exported scripts), marked here and translated where shown."""

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
        raise DataError(_("data folder {path} does not exist.").format(path=root) + "\n" + _(LAYOUT_HELP),
                        hint=_(MISSING_HINT))
    if layout in ("auto", "cifar-python"):
        cp = _cifar_python_root(root)
        if cp is not None:
            folder = os.path.join(cp, "cifar-10-batches-py")
            missing = [f for f in _CIFAR_FILES if not os.path.isfile(os.path.join(folder, f))]
            if missing:
                raise DataError(
                    _("{folder} is incomplete: {files} missing").format(folder=folder, files=", ".join(missing)),
                    hint=_("rebuild it (make_cifar10.py DEST --format cifar-python) or use --download"),
                )
            return DataLayout("cifar-python", cp)
    if layout in ("auto", "imagefolder"):
        found = _imagefolder_root(root)
        if found is not None:
            return DataLayout("imagefolder", found[0], test_dir=found[1])
    wanted = _("either layout") if layout == "auto" else _("the {layout} layout").format(layout=layout)
    present = sorted(os.listdir(root))[:8]
    raise DataError(
        _("no data in {wanted} found in {path} (it holds: {present}).").format(
            wanted=wanted, path=root, present=", ".join(present) if present else _("nothing")) + "\n" + _(LAYOUT_HELP),
        hint=_(MISSING_HINT),
    )


class CifarBatches:
    """CIFAR-10's ``cifar-10-batches-py`` as a map-style dataset: what torchvision's ``CIFAR10`` reads,
    read with :func:`core.safe_load.load_pickled_arrays` instead of ``pickle.load`` (which would run
    code from a crafted batch). Items are ``(transform(PIL RGB image), label)``; ``classes`` are
    ``batches.meta``'s ``label_names``.

    Raises:
        DataError: a batch is refused (pickled code), damaged, or not 3x32x32 uint8 images.
    """

    def __init__(self, root: str, train: bool, transform: Any) -> None:
        import numpy as np

        folder = os.path.join(root, "cifar-10-batches-py")
        names = ["data_batch_%d" % i for i in range(1, 6)] if train else ["test_batch"]
        data, labels = [], []
        for name in names:
            entry = _read_batch(os.path.join(folder, name))
            arr = np.asarray(entry.get("data"))
            if arr.ndim != 2 or arr.shape[1] != 3072 or arr.dtype != np.uint8:
                raise DataError(
                    _("{path} does not hold 32x32x3 images (data of shape {shape}, {dtype})").format(
                        path=os.path.join(folder, name), shape=arr.shape, dtype=arr.dtype),
                    hint=_("rebuild it with make_cifar10.py DEST --format cifar-python, or download CIFAR-10 again"),
                )
            data.append(arr)
            labels.extend(int(v) for v in entry.get("labels", entry.get("fine_labels", [])))
        self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        self.targets = labels
        meta = _read_batch(os.path.join(folder, "batches.meta"))
        self.classes = [str(c) for c in meta.get("label_names", CIFAR10_CLASSES)]
        self.transform = transform
        if len(self.targets) != len(self.data):
            raise DataError(_("{folder}: {labels} labels for {images} images").format(
                folder=folder, labels=len(self.targets), images=len(self.data)),
                hint=_("rebuild the folder with make_cifar10.py, or download CIFAR-10 again"))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Tuple[Any, int]:
        from PIL import Image

        img = Image.fromarray(self.data[index])
        return (self.transform(img) if self.transform is not None else img), self.targets[index]


def _read_batch(path: str) -> Any:
    import pickle

    from .safe_load import UnsafeFileError, load_pickled_arrays

    try:
        entry = load_pickled_arrays(path)
    except UnsafeFileError as e:
        raise DataError(
            _("{path} was refused without loading it: {reason}").format(path=path, reason=e),
            hint=_("a CIFAR-10 batch holds only arrays and lists; rebuild it (make_cifar10.py) or download it again"),
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, OSError, ImportError) as e:
        raise DataError(
            _("{path} is damaged or not a CIFAR-10 batch ({error}: {detail})").format(
                path=path, error=type(e).__name__, detail=e),
            hint=_("rebuild it with make_cifar10.py DEST --format cifar-python, or download CIFAR-10 again"),
        ) from None
    if not isinstance(entry, dict):
        raise DataError(_("{path} is not a CIFAR-10 batch (it holds a {type})").format(path=path, type=type(entry).__name__),
                        hint=_("rebuild it with make_cifar10.py DEST --format cifar-python"))
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


class BadImageError(DataError):
    """An image file of the data set cannot be read; the message names the file.

    DataLoader worker processes re-raise an exception as ``type(e)(text of the worker's traceback)``:
    this class keeps only its own message line from such a text, so the user sees the file, not the
    worker's traceback."""

    def __init__(self, msg: str, hint: Optional[str] = None, title: Optional[str] = None) -> None:
        if msg.startswith("Caught ") and "Traceback" in msg:
            lines = [ln for ln in msg.strip().splitlines() if "BadImageError: " in ln]
            if lines:
                msg = lines[-1].split("BadImageError: ", 1)[1]
        super().__init__(msg, hint or _("replace or delete that file (a truncated download or a copy cut short), or set "
                                        "[data] skip_bad_images = true to leave unreadable images out"), title)


def load_image(path: str) -> Any:
    """The RGB PIL image of ``path`` (grayscale, palette and CMYK images are converted), as
    torchvision's ``ImageFolder`` loads it.

    Raises:
        BadImageError: the file is not a readable image (truncated JPEG, not an image), naming it.
    """
    from PIL import Image

    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except Exception as e:
        raise BadImageError(_("cannot read image {path}: {error}: {detail}").format(
            path=path, error=type(e).__name__, detail=e)) from None


def class_mismatch(a: List[str], b: List[str], a_name: str, b_name: str, root: str) -> str:
    """'class folders differ between train/ (11) and test/ (10) in ROOT: only in train/: x; ...'."""
    only_a = [c for c in a if c not in b]
    only_b = [c for c in b if c not in a]
    parts = []
    if only_a:
        parts.append(_("only in {split}/: {names}").format(split=a_name, names=", ".join(only_a)))
    if only_b:
        parts.append(_("only in {split}/: {names}").format(split=b_name, names=", ".join(only_b)))
    if not parts:
        parts.append(_("the same names in another order"))
    return _("class folders differ between {a}/ ({na}) and {b}/ ({nb}) in {root}: {parts}").format(
        a=a_name, na=len(a), b=b_name, nb=len(b), root=root, parts="; ".join(parts))


def _download(root: str, warn: Callable[[str], None]) -> None:
    from torchvision.datasets import CIFAR10

    warn(_("downloading CIFAR-10 into {path} with torchvision (about 170 MB)").format(path=root))
    try:
        os.makedirs(root, exist_ok=True)
        CIFAR10(root, train=True, download=True)
    except Exception as e:
        raise DataError(
            _("download of CIFAR-10 into {path} failed: {reason}").format(path=root, reason=e),
            hint=_("this machine may be offline; copy the data in either layout instead.") + "\n" + _(LAYOUT_HELP),
        ) from None


def _subset(ds: Any, n: Optional[int], seed: int, salt: int) -> Any:
    """A seeded random subset of ``n`` items (all when n is None or >= len)."""
    import torch
    from torch.utils.data import Subset

    if n is None or n >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed * 1000003 + salt)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    return Subset(ds, idx)


def class_names(root: str, layout: str = "auto") -> List[str]:
    """The class names of the data under ``root`` without reading images: CIFAR-10's ten for the
    cifar-python layout, the sub-folders of ``train/`` for an ImageFolder tree (sorted, as
    ImageFolder numbers them).

    Raises:
        DataError: as :func:`detect_layout`; no class folders in ``train/``.
    """
    found = detect_layout(root, layout)
    if found.layout == "cifar-python":
        return list(CIFAR10_CLASSES)
    train = os.path.join(found.root, "train")
    names = sorted(e.name for e in os.scandir(train) if e.is_dir())
    if not names:
        raise DataError(_("{path} has no class folders").format(path=train), hint=_("put each class's images in train/<class name>/"))
    return names


def _scan_bad_images(ds: Any, warn: Callable[[str], None], split: str) -> None:
    """Drop the images of an ImageFolder that PIL cannot decode (``[data] skip_bad_images``); say how many."""
    from PIL import Image

    good, bad = [], []
    for path, label in ds.samples:
        try:
            with Image.open(path) as img:
                img.load()
            good.append((path, label))
        except Exception:
            bad.append(path)
    if bad:
        ds.samples = ds.imgs = good
        ds.targets = [label for _p, label in good]
        warn(_("skipped {n} unreadable image(s) of {split}/ ([data] skip_bad_images): {files}").format(
            n=len(bad), split=split, files=", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")))


SMALL_IMAGE = 64
"""Images up to this many pixels on their long side decode in microseconds: loader processes cost
more (start-up each epoch, passing tensors between processes) than they save."""


def _cores() -> int:
    from .threads import cores

    return cores()


def auto_num_workers(layout: str, image_side: Optional[int], n_cores: int) -> int:
    """``[data] num_workers = "auto"``: 0 when the images are in memory (cifar-python), small (up to
    ``SMALL_IMAGE`` px) or the machine has 2 cores or fewer (the workers would take the cores training
    needs); else ``min(4, cores // 2)``. Measured (benchmarks/loader_workers.py, 2 cores, CIFAR-10 at
    batch 256): 2 workers ran the float stage at 0.88x a bare loop, 0 workers at 1.00x."""
    if layout == "cifar-python" or n_cores <= 2 or (image_side is not None and image_side <= SMALL_IMAGE):
        return 0
    return min(4, n_cores // 2)


def resolve_num_workers(data: Any) -> int:
    """``[data] num_workers`` as a number, with "auto" resolved from the data folder (its layout and
    first training image) and this machine's cores; 0 when the folder cannot be read."""
    if data.num_workers != "auto":
        return int(data.num_workers)
    try:
        found = detect_layout(data.root, data.layout)
    except DataError:
        return 0
    side = None
    if found.layout == "imagefolder":
        train = os.path.join(found.root, "train")
        for cls in sorted(os.listdir(train)):
            files = sorted(os.listdir(os.path.join(train, cls))) if os.path.isdir(os.path.join(train, cls)) else []
            if files:
                try:
                    from PIL import Image

                    with Image.open(os.path.join(train, cls, files[0])) as img:
                        side = max(img.size)
                except Exception:
                    pass
                break
    return auto_num_workers(found.layout, side, _cores())


class DataBundle:
    """Datasets and loaders of one run, built once from the settings.

    Args:
        data: the ``[data]`` settings.
        seed: ``[run] seed``; subsets and shuffling derive from it.
        normalize: the backend's own input transform after ``ToTensor`` (float32 in [0, 1]), e.g.
            Horizon's centred YUV; None: ``Normalize`` with ``[data] mean``/``std`` (resolved by
            :func:`core.image_transforms.resolve_mean_std`).
        num_classes: ``[model] num_classes``; must match the data; None: taken from the data.
        warn: callback for warnings (download, skipped images).
        named_weights: the model starts from torchvision's named weights (ImageNet's mean/std by default).

    Raises:
        DataError: see :func:`detect_layout`; class folders differ between splits; class count
            differs from ``num_classes``. Images that cannot be read raise :class:`BadImageError` (naming
            the file) when a loader reaches them, unless ``skip_bad_images`` drops them first.
    """

    def __init__(self, data: Any, seed: int, normalize: Optional[Callable] = None, num_classes: Optional[int] = None,
                 warn: Callable[[str], None] = lambda _m: None, named_weights: bool = False) -> None:
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
        self.classes = class_names(found.root, found.layout) if found.layout == "imagefolder" else list(CIFAR10_CLASSES)
        if normalize is None:
            import torchvision.transforms as T

            mean, std, why = resolve_mean_std(data.mean, data.std, self.classes, named_weights)
            normalize = T.Normalize(mean, std)
            self.normalization = "Normalize(mean=%s, std=%s): %s" % (list(mean), list(std), _(why))
        else:
            self.normalization = _("the backend's {transform}").format(transform=repr(normalize))
        size = int(data.image_size)
        train_tf = build_transform(True, data.augment, size, normalize)
        eval_tf = build_transform(False, "none", size, normalize)
        if found.layout == "cifar-python":
            self.train_full = CifarBatches(found.root, True, train_tf)
            self.train_plain = CifarBatches(found.root, True, eval_tf)
            self.test_full = CifarBatches(found.root, False, eval_tf)
            self.classes = list(self.train_full.classes)
        else:
            from torchvision.datasets import ImageFolder

            test_dir = found.test_dir or "test"
            try:
                self.train_full = ImageFolder(os.path.join(found.root, "train"), transform=train_tf, loader=load_image)
                self.train_plain = ImageFolder(os.path.join(found.root, "train"), transform=eval_tf, loader=load_image)
                self.test_full = ImageFolder(os.path.join(found.root, test_dir), transform=eval_tf, loader=load_image)
            except (FileNotFoundError, RuntimeError) as e:
                raise DataError(_("cannot read image folders in {path}: {reason}").format(path=found.root, reason=e),
                                hint=_(LAYOUT_HELP)) from None
            if self.train_full.classes != self.test_full.classes:
                raise DataError(class_mismatch(self.train_full.classes, self.test_full.classes, "train", test_dir, found.root),
                                hint=_("both splits need the same class sub-folders: add or remove those folders"))
            self.classes = list(self.train_full.classes)
            if data.skip_bad_images:
                for ds, split in ((self.train_full, "train"), (self.test_full, test_dir)):
                    _scan_bad_images(ds, warn, split)
                self.train_plain.samples = self.train_plain.imgs = list(self.train_full.samples)
                self.train_plain.targets = list(self.train_full.targets)
        if num_classes is not None and len(self.classes) != num_classes:
            raise DataError(
                _("the data has {n} classes ({names}) but [model] num_classes = {num_classes}").format(
                    n=len(self.classes), names=", ".join(self.classes[:10]) + (" ..." if len(self.classes) > 10 else ""),
                    num_classes=num_classes),
                hint=_("set [model] num_classes = {n}, or leave it unset to take it from the data").format(n=len(self.classes)),
            )
        self.num_classes = len(self.classes)
        self.num_workers = data.num_workers if data.num_workers != "auto" else auto_num_workers(
            found.layout, self._image_side(), _cores())
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
            num_workers=self.num_workers,
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

    def debug_loader(self, num_images: int, salt: int = 4) -> Any:
        """A seeded subset of ``num_images`` test images (``salt`` picks another), in a fixed order."""
        return self._loader(_subset(self.test, num_images, self.seed, salt), self.settings.eval_batch_size, False)

    def example_batch(self, n: int = 8) -> Any:
        """``n`` test images as a float32 tensor (n, 3, H, W), for tracing/export."""
        import torch

        return torch.stack([self.test[i][0] for i in range(min(n, len(self.test)))])

    def _image_side(self) -> Optional[int]:
        """The long side in pixels of the first training image (None when it cannot be read)."""
        samples = getattr(self.train_full, "samples", None)
        if not samples:
            return 32 if isinstance(self.train_full, CifarBatches) else None
        try:
            from PIL import Image

            with Image.open(samples[0][0]) as img:
                return max(img.size)
        except Exception:
            return None

    def describe(self) -> str:
        return _("{layout} in {root}: {train} train images (of {train_all}), {test} test images (of {test_all}), "
                 "{classes} classes, {size}x{size} input; {loading}").format(
            layout=self.layout.layout,
            root=self.layout.root,
            train=len(self.train),
            train_all=len(self.train_full),
            test=len(self.test),
            test_all=len(self.test_full),
            classes=len(self.classes),
            size=self.settings.image_size,
            loading=_("loading in the training process") if self.num_workers == 0
            else _("{n} loader processes").format(n=self.num_workers),
        ) + "; " + self.normalization
