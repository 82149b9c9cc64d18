"""The BSD method's stages, one module each, named as in the paper (see docs/method.md).

- ``losses``: symmetric cross-entropy L_sce and local gradient ascent (LGA).
- ``target``: stage 0, the target label ỹ_t (LGA vote and the second-likely estimate).
- ``oss``: Open Set Splitting (Sec. 4.1.1, eqs. 4-6).
- ``als``: Altruistic-model Loss Splitting (Sec. 4.1.2, eq. 7).
- ``pools``: pool initialisation (eq. 3), the α schedule (eq. 11), the indicator I (eq. 9),
  class completion (eq. 8) and selective drop (eq. 10).
- ``mixmatch``: the main model's semi-supervised step.
- ``altruistic``: the altruistic model's updates.
- ``bsd``: Algorithm 1, the stages run in order.
- ``purify``: the purified model (and the no-defence baseline) trained on a finished split.
- ``verdict``: whether an attack is present at all, and the suspicious list (not in the paper).
"""
