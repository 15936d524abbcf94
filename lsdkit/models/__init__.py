"""Models: shared transformer blocks, autoencoders (LSD-TN / LSD-NM), MLM baseline, latent diffusion."""
