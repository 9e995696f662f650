"""animegan: train DCGANs that draw anime faces, and sample from what they learned.

From Python (the same paths as the commands; see docs/python.md):

    import animegan
    faces = animegan.load_generator("afg.pt")   # a FaceGenerator: sample, grid, interpolate
    result = animegan.train(["epochs=1"])        # a RunResult: run_dir, export, ...

The names below are imported on first use, so `import animegan` stays light.
"""

__version__ = "0.1.0"
__all__ = ["AnimeganError", "FaceGenerator", "RunResult", "load_generator", "train", "__version__"]

_WHERE = {"AnimeganError": "animegan.errors", "FaceGenerator": "animegan.face_generator",
          "load_generator": "animegan.face_generator", "RunResult": "animegan.run", "train": "animegan.training"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'animegan' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_WHERE])
