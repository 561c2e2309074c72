"""The ``echo`` function: a trivial model (identity on FP32) for overhead measurements and plumbing tests."""
