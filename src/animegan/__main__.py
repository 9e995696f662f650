"""`python -m animegan`: the same command as `animegan-train`, in the form torchrun starts
(`torchrun --nproc_per_node=N -m animegan <overrides>`)."""

from animegan.cli.train import main

if __name__ == "__main__":
    main()
