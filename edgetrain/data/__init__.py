"""Data sets streamed to the training step (MNIST from its original idx files)."""
