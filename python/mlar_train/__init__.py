"""mlar_train: the mla-retrofit distillation recipe (layer-wise attention distillation from
the GQA teacher, then end-to-end CE + KL) on GPUs with PyTorch, for the DeepSeek-V3 export
of a converted model. `python3 -m mlar_train --help` (with PYTHONPATH=python)."""
__version__ = "1"
