"""Data in: ImageFolder scan and decode, batch augmentation on the device."""

from .augment import Normalizer, augment
from .imagefolder import IMG_EXTENSIONS, ImageDataset, decode_image, load_imagefolder, scan_tree

__all__ = ["IMG_EXTENSIONS", "ImageDataset", "Normalizer", "augment", "decode_image", "load_imagefolder", "scan_tree"]
