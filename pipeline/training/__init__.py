"""Stage ``training``: training of segmentation networks (``ichpipe train seg``).

- :mod:`~ichpipe.pipeline.training.transforms`: the inference pre-processing, then MONAI augmentation;
- :mod:`~ichpipe.pipeline.training.train_seg`: the training loop (seed recipe, resumable, seeded);
- :mod:`~ichpipe.pipeline.training.curves`: ``history.csv`` and ``curves.png``.

The training data comes from :mod:`ichpipe.pipeline.synthetic` (``ichpipe train
data``) or from labelled datasets (:mod:`ichpipe.pipeline.datasets`); the
``training:`` config section is :mod:`ichpipe.pipeline.config.training_config`.
May import every inference stage; inference and evaluation never import this package.
"""

__all__: list[str] = []
