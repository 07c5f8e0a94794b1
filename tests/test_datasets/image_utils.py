"""Images written in real formats for the image-loading tests."""
import io

import numpy as np
from mmseg.registry import TRANSFORMS
from PIL import Image

from projects.magnet.datasets.transforms import LoadReferImageFromFile
from projects.magnet.datasets.transforms.image_loading import \
    DEFAULT_FILE_LOADER


def smooth_rgb(h=40, w=56, seed=0):
    """A smooth RGB image (JPEG-friendly) with some noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1) % 256
    noise = np.random.default_rng(seed).integers(0, 16, (h, w, 3))
    return ((base + noise) % 256).astype(np.uint8)


def save_bytes(path, data: bytes) -> str:
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def configs_loader(**kwargs) -> LoadReferImageFromFile:
    """The file loader of the project's configs."""
    return TRANSFORMS.build(dict(DEFAULT_FILE_LOADER, **kwargs))


def load_file(path, **results):
    return configs_loader()(dict(img_path=str(path), **results))


