"""Model size presets and the autoencoder variants (all sizes are *ours*; the paper's are unknown).

* ``tiny``  — tests and CI: trains in seconds on a CPU.
* ``cpu``   — the CPU study's size, chosen by measurement (``benchmarks/scale.py``: the lowest
  validation loss for a fixed wall-clock budget on 2 cores; RESULTS.md, "Sizing the CPU study").
* ``small`` — the first CPU study's size (too large for the tokens 2 cores give it in an hour).
* ``gpu``   — the 10-minute study on one GPU (not yet measured on one).
* ``base``  — paper scale for one GPU.

"Same size" MLM: ``n_layers`` = autoencoder encoder + decoder layers, same ``d_model``/heads.
``lsdkit presets`` prints every preset with its parameter count.
"""

from __future__ import annotations

import dataclasses

import torch

from lsdkit.models.autoencoder import Autoencoder, AutoencoderConfig
from lsdkit.models.blocks import count_parameters
from lsdkit.models.mlm import MLM, MLMConfig

SIZES: dict[str, dict] = {
    "tiny": dict(d_model=64, n_heads=4, n_enc_layers=2, n_dec_layers=1, d_z=16, max_len=128),
    "cpu": dict(d_model=96, n_heads=3, n_enc_layers=2, n_dec_layers=1, d_z=32, max_len=512),
    "small": dict(d_model=256, n_heads=8, n_enc_layers=4, n_dec_layers=2, d_z=32, max_len=512),
    "gpu": dict(d_model=512, n_heads=8, n_enc_layers=6, n_dec_layers=2, d_z=32, max_len=512),
    "base": dict(d_model=768, n_heads=12, n_enc_layers=8, n_dec_layers=4, d_z=32, max_len=1024),
}

# CLI variant name -> bottleneck registry name
VARIANTS = {"tn": "tn", "nm": "nm", "tnm": "tn+nm", "tn+nm": "tn+nm", "none": "none"}

# the one table of encoder display names (the paper's), in the order tables and findings list them
DISPLAY_NAMES = {"tn": "LSD-TN", "nm": "LSD-NM", "tnm": "LSD-TN-M", "mlm": "MLM"}


def _size(preset: str) -> dict:
    if preset not in SIZES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(SIZES)}")
    return dict(SIZES[preset])


def autoencoder_config(preset: str = "small", variant: str = "tn", **overrides) -> AutoencoderConfig:
    """The autoencoder config of a preset and variant (tn | nm | tnm), with field overrides."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown autoencoder variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return dataclasses.replace(AutoencoderConfig(**_size(preset), bottleneck=VARIANTS[variant]), **overrides)


def mlm_config(preset: str = "small", **overrides) -> MLMConfig:
    """The MLM config of the same size as the preset's autoencoder."""
    s = _size(preset)
    s["n_layers"] = s.pop("n_enc_layers") + s.pop("n_dec_layers")
    return dataclasses.replace(MLMConfig(**s), **overrides)


def build_encoder(name: str, preset: str = "small", **overrides):
    """A fresh encoder of a study: ``tn`` | ``nm`` | ``tnm`` (autoencoders) or ``mlm``, at ``preset`` size.

    Seed first (``lsdkit.train.seed_everything``) for reproducible initial weights."""
    if name == "mlm":
        return MLM(mlm_config(preset, **overrides))
    return Autoencoder(autoencoder_config(preset, name, **overrides))


def preset_table() -> list[dict]:
    """One row per (preset, model): sizes and parameter count (built on the meta device)."""
    rows = []
    for preset, s in SIZES.items():
        with torch.device("meta"):
            models = {"autoencoder": Autoencoder(autoencoder_config(preset, "tn")),
                      "mlm": MLM(mlm_config(preset))}
        for kind, model in models.items():
            c = model.config
            layers = c.n_layers if kind == "mlm" else f"{c.n_enc_layers}+{c.n_dec_layers}"
            rows.append({"preset": preset, "model": kind, "d_model": c.d_model, "layers": layers,
                         "heads": c.n_heads, "d_z": c.d_z, "max_len": c.max_len,
                         "params": count_parameters(model)})
    return rows


def format_preset_table(rows: list[dict] | None = None) -> str:
    """A Markdown table of :func:`preset_table` (parameters in millions)."""
    rows = rows if rows is not None else preset_table()
    head = "| preset | model | d_model | layers | heads | d_z | max_len | params |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['model']} | {r['d_model']} | {r['layers']} | {r['heads']} | "
                     f"{r['d_z']} | {r['max_len']} | {r['params'] / 1e6:.2f} M |")
    return "\n".join(lines)
