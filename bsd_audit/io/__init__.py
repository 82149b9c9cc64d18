"""Artifacts out: HDF5 files written atomically, validated on read."""
