"""animegan from Python: draw faces from the shipped generator, walk its latent space,
train one epoch on the built-in faces and draw from what it learned.

    python docs/from_python.py            # writes outputs/from_python/*.png (about 2 minutes on 2 CPU cores)

In a notebook, run the lines of main() in cells: a grid is a PIL image, which shows itself
as a cell's last line (`faces.grid(64, seed=0)`).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script writes files; in a notebook leave this out and plt.show()
import matplotlib.pyplot as plt  # noqa: E402

import animegan  # noqa: E402


def main(train_overrides=("epochs=1",), out=Path("outputs/from_python")):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. The generator that ships with animegan: 64 faces, shown with matplotlib.
    faces = animegan.load_generator("afg.pt")
    plt.figure(figsize=(8, 8))
    plt.imshow(faces.grid(64, seed=0))
    plt.axis("off")
    plt.title(f"64 faces from {faces.source.name}")
    plt.savefig(out / "afg_grid.png", bbox_inches="tight")
    plt.close()

    # 2. A walk through its latent space: 4 faces, 8 steps from each to the next.
    walk = faces.interpolate(keys=4, steps=8, seed=3)  # uint8 [4, 9, 3, 64, 64]
    faces.grid(walk).save(out / "afg_walk.png")  # one row per transition

    # 3. Train on the built-in synthetic faces (one epoch), then draw from the result.
    result = animegan.train([*train_overrides, f"hydra.run.dir={out / 'run'}"])
    print(f"trained {result.step} steps ({result.reason.value}); generator in {result.export}")
    mine = animegan.load_generator(result.export)
    mine.grid(16, seed=0).save(out / "my_faces.png")
    return result


if __name__ == "__main__":
    main()
