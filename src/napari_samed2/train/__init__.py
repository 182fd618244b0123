"""Training, evaluation and synthetic data for SAMed-2 / SAM2 networks.

Submodules are imported on demand: `synthetic` needs only numpy and scipy, so napari's sample
data does not pull in torch.
"""
