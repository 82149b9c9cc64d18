"""Training machinery shared by every stage: device, precision, seeding, batch loops, evaluation."""
