"""lsdkit: Latent Space Diffusion for protein sequence representation learning.

See ``README.md`` and ``DESIGN.md`` for the study; each submodule holds one concept.
"""

__version__ = "0.1.0"
