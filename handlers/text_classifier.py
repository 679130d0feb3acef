"""TorchServe entry point for character-level text classification with an RNN (langid)."""
from __future__ import annotations

from handlers.base import ClassifierHandler
from handlers.text_task import TextTask


class TextClassifier(ClassifierHandler):
    task = TextTask
