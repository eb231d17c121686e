# A yacs-style python config: merge_from_file reads the `cfg` it defines.
cfg = {"SOLVER": {"BASE_LR": 0.25, "STEPS": (10, 20)}, "VERSION": 2}
