"""TorchServe handlers for the stack.

The TorchServe glue is thin (`base.py`, `image_classifier.py`, `text_classifier.py`); the work
(decoding, validation, packing, top-k) is plain Python in the other modules so that unit tests
call it without a server. Inside a model archive this package sits at the archive root, next to
the handler entry file, so `import handlers.<module>` works the same in tests and in a worker.
"""
