"""Data in: ImageFolder scan and decode, the decode cache, the memory and disk stores, batch
augmentation on the device."""

from .augment import Normalizer, augment
from .imagefolder import IMG_EXTENSIONS, ImageDataset, decode_image, load_imagefolder, scan_tree
from .store import DiskImages

__all__ = ["IMG_EXTENSIONS", "DiskImages", "ImageDataset", "Normalizer", "augment", "decode_image", "load_imagefolder",
           "scan_tree"]
