"""Artifacts out: one module per kind of file, the only one that writes and reads it.

  h5.py          what every HDF5 artifact shares: provenance, atomic writes, tensors, validated opening
  target.py      detect-target's artifact, and the estimate and verdict groups the split artifact carries too
  split.py       split's artifact: scores, pools, history, truth, both models
  model.py       train-clean's weights file, and load_model
  metrics.py     evaluate's metrics file
  checkpoint.py  OUT.ckpt.h5: the one checkpoint and resume mechanism of every training command
  text.py        text outputs (export, report) written atomically
"""
