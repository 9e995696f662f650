# Makes the shipped generators an importable package (animegan.checkpoints), so that
# `animegan-sample --ckpt afg.pt` finds them from an editable install and from a wheel.
