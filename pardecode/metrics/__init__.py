"""Built-in image-quality metrics for published checkpoints: FID (torchmetrics) and CLIP score (transformers).

They register through `pardecode_register_metrics` (`plugin`), like any third-party metric; the
default model's own metric (`fashion`) is registered by `pardecode.fashion.plugin`.
"""
