"""animegan: train DCGANs that draw anime faces, and sample from what they learned."""

__version__ = "0.1.0"
