"""Training machinery shared by every stage: device, precision, seeding, batch loops, evaluation,
the networks, data parallelism (torchrun) and overlapped updates. Imports nothing above data/."""
