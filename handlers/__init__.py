"""The model core and its TorchServe adapter (handlers/README.md names each module's job).

The TorchServe glue is thin (`base.py`, `metrics.py`, `image_classifier.py`, `text_classifier.py`);
the work (the input stage, decoding, batching, top-k: `core.py` and what it calls) imports no
runtime, so unit tests, the bench's peers and any other runtime call it without a server.
Inside a model archive this package sits at the archive root, next to the handler entry file, so `import handlers.<module>` works the same in tests and in a worker.
"""
