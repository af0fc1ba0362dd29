# The image transforms of a run: from a PIL image of any size to the model's input tensor. This module
# is self-contained (standard library at import, torchvision inside the functions) because the exported
# scripts embed its source verbatim: the script feeds the model what qat-tui feeds it. Keep it Python
# 3.8 compatible and free of imports from the rest of qat-tui.

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# Per-channel mean/std of the CIFAR-10 training images (the values commonly used with torchvision) and
# of ImageNet (torchvision's pretrained classification weights expect these: torchvision.transforms
# _presets.ImageClassification).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def resolve_mean_std(mean, std, classes, named_weights):
    """``(mean, std, why)`` for ``Normalize`` after ``ToTensor`` (values in [0, 1]).

    Set values win; else ImageNet's when the model starts from torchvision's named weights (they were
    trained with it); else CIFAR-10's for CIFAR-10's ten classes; else ImageNet's, the usual choice for
    photographs."""
    if mean is not None and std is not None:
        return tuple(mean), tuple(std), "[data] mean/std"
    if named_weights:
        pick = (IMAGENET_MEAN, IMAGENET_STD, "ImageNet's (torchvision weights)")
    elif list(classes or []) == CIFAR10_CLASSES:
        pick = (CIFAR10_MEAN, CIFAR10_STD, "CIFAR-10's")
    else:
        pick = (IMAGENET_MEAN, IMAGENET_STD, "ImageNet's")
    return (tuple(mean) if mean is not None else pick[0]), (tuple(std) if std is not None else pick[1]), pick[2]


class FitSquare:
    """PIL image -> ``size`` x ``size``: resize the shorter side to ``size`` (bilinear), then crop the
    centre; an image that already has that size is returned as it is (CIFAR-10 at 32 stays exact)."""

    def __init__(self, size):
        self.size = int(size)

    def __call__(self, img):
        if img.size == (self.size, self.size):
            return img
        import torchvision.transforms.functional as F

        return F.center_crop(F.resize(img, self.size), [self.size, self.size])

    def __repr__(self):
        return "FitSquare(%d)" % self.size


def build_transform(train, augment, image_size, normalize):
    """The transform of one split.

    Args:
        train: training images (augmented) or evaluation/calibration images (never augmented).
        augment: ``crop_flip`` (fit to ``image_size``, random crop with zero padding of 1/8 of the
            side - 4 px at 32, as the CIFAR-10 recipes - and horizontal flip), ``resized_crop_flip``
            (``RandomResizedCrop`` + flip, the ImageNet recipe) or ``none``.
        image_size: the model's input side in pixels.
        normalize: tensor transform after ``ToTensor`` (``Normalize(mean, std)``, or a backend's own).

    Returns:
        A ``torchvision.transforms.Compose`` giving float32 ``(3, image_size, image_size)``.
    """
    import torchvision.transforms as T

    if train and augment == "resized_crop_flip":
        ops = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    else:
        ops = [FitSquare(image_size)]
        if train and augment == "crop_flip":
            ops += [T.RandomCrop(image_size, padding=max(1, image_size // 8)), T.RandomHorizontalFlip()]
    return T.Compose(ops + [T.ToTensor(), normalize])
