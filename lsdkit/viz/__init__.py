"""Figures for the notebooks: UMAP of latents, sweep plots, loss curves, and the timestep explorer.

* :mod:`lsdkit.viz.saving` - :func:`setup` and :class:`FigureSaver` (show a figure, save it as
  HTML / PNG / CSV), :func:`save_figure`;
* :mod:`lsdkit.viz.figures` - figure builders and display tables from arrays and DataFrames, never
  from models; residue classes and label tables;
* :mod:`lsdkit.viz.umap` - :func:`umap_embed` (cached on disk by a hash of input and parameters),
  maps over t, and the latents notebook 03 maps (:func:`residue_latents`, :func:`protein_latents`);
* :mod:`lsdkit.viz.geometry` - the latent-geometry measures (:mod:`lsdkit.geometry`) as bars, lines
  along t and a timestep explorer over a denoiser's residue states;
* :mod:`lsdkit.viz.explorer` - :class:`TimestepExplorer` (ipywidgets) and :func:`explorer_data`.

Everything public is importable from ``lsdkit.viz``. Sweep reductions (``sweep_curves``) live in
:mod:`lsdkit.sweep`, report tables in :mod:`lsdkit.report`.
"""

from lsdkit.viz.explorer import TimestepExplorer, explorer_data
from lsdkit.viz.geometry import geometry_bars, geometry_by_t_plot, geometry_explorer
from lsdkit.viz.figures import (AA_CLASSES, DEFAULT_HOVER, RESIDUE_ORDER, SS3_NAMES, aa_class, benchmark_bars,
                                category_colors, composition_heatmap, composition_plot, findings_frame,
                                learning_curve_plot, length_plot, length_summary, line_by_t, loss_curves, protein_labels,
                                reconstruction_frame, residue_frequencies, residue_labels, sample_stats_frame,
                                scatter_panels, sequence_lengths, sweep_plot)
from lsdkit.viz.saving import FIGURES_ENV, FigureSaver, save_figure, setup
from lsdkit.viz.umap import (LatentPoints, align_to, embed_over_t, protein_latents, residue_latents, residue_umap,
                             sample_records, sample_rows, umap_embed, umap_panels)

__all__ = [
    "AA_CLASSES", "DEFAULT_HOVER", "FIGURES_ENV", "RESIDUE_ORDER", "SS3_NAMES", "FigureSaver", "LatentPoints",
    "TimestepExplorer", "aa_class", "align_to", "benchmark_bars", "category_colors", "composition_heatmap",
    "composition_plot", "embed_over_t", "explorer_data", "findings_frame", "learning_curve_plot", "length_plot", "length_summary",
    "line_by_t", "loss_curves", "protein_labels", "protein_latents", "reconstruction_frame", "residue_frequencies",
    "residue_labels", "residue_latents", "residue_umap", "sample_records", "sample_rows", "sample_stats_frame",
    "geometry_bars", "geometry_by_t_plot", "geometry_explorer",
    "save_figure", "scatter_panels", "sequence_lengths", "setup", "sweep_plot", "umap_embed", "umap_panels",
]
