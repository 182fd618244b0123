"""Training and evaluation of SAMed-2 / SAM2 networks (data from `napari_samed2.synthetic`).

Submodules are imported on demand, so importing the package costs nothing.
"""
