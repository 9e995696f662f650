# Makes the YAML configs an importable package (animegan.configs) so that Hydra can find
# them with pkg://animegan.configs from an editable install and from an installed wheel.
