"""Model definitions and their training code, one module per model.

The classes are imported by handlers inside the archive (`architecture: models.digits:DigitsCNN`);
the `train(spec, out_dir)` functions run only at build time (`python -m stackctl models`).
"""
