"""TorchServe entry point for image classification (digits, or any torchvision classifier)."""
from __future__ import annotations

from handlers.base import ClassifierHandler
from handlers.image_task import ImageTask


class ImageClassifier(ClassifierHandler):
    task = ImageTask
