"""Training of segmentation networks: synthetic training data, pre-processing and augmentation, the training loop.

* :mod:`~ichpipe.pipeline.training.data_generator`: ``ichpipe train data`` (synthetic labelled studies + manifest);
* :mod:`~ichpipe.pipeline.training.transforms`: inference-identical pre-processing, MONAI augmentation;
* :mod:`~ichpipe.pipeline.training.train_seg`: ``ichpipe train seg`` (seed recipe, resumable, seeded);
* :mod:`~ichpipe.pipeline.training.curves`: ``history.csv`` and ``curves.png``;
The ``training`` config section is :mod:`ichpipe.pipeline.config.training_config` (outside this package).

Inference and evaluation never import this package.
"""
