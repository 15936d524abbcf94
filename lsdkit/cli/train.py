"""``lsdkit train autoencoder|mlm|diffusion`` and ``lsdkit presets``: build a model, call :func:`lsdkit.train.fit`."""

from __future__ import annotations

from lsdkit.cli.args import add_group, add_train_arguments, flag_error, pretrained_spec, train_config_from_args


def add_commands(sub) -> None:
    from lsdkit.models.diffusion import PREDICTIONS
    from lsdkit.schedules import SCHEDULES

    targets = add_group(sub, "train", help="train a model (autoencoder, mlm, diffusion)",
                        description="Train a model; each MODEL has its own options (--help).", metavar="MODEL")

    ae = targets.add_parser("autoencoder", help="LSD autoencoder: --variant tn (LSD-TN), nm (LSD-NM), tnm (LSD-TN-M)")
    ae.add_argument("--variant", default="tn", choices=["tn", "nm", "tnm"])
    add_train_arguments(ae)
    ae.set_defaults(func=_train_encoder)

    mlm = targets.add_parser("mlm", help="masked language model baseline of the same size")
    add_train_arguments(mlm)
    mlm.set_defaults(func=_train_encoder, variant="mlm")

    d = targets.add_parser("diffusion", help="latent diffusion on a frozen autoencoder's (or MLM's) latents",
                           description="Train a denoiser on the latents of --latents (an autoencoder or mlm checkpoint) "
                                       "or of --encoder (a pretrained model: near, esm2:PATH).")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--latents", help="autoencoder or mlm checkpoint (or run) directory")
    src.add_argument("--encoder", metavar="MODEL", type=pretrained_spec,
                     help="a pretrained model's per-residue embeddings instead: near, or esm2:PATH[@LAYER] (ESM-2 "
                          "weights on disk); saved by reference (path + sha256), see lsdkit.pretrained")
    d.add_argument("--prediction", default="v", choices=PREDICTIONS, help="network target (default v)")
    d.add_argument("--schedule", default="cosine", choices=sorted(SCHEDULES), help="noise schedule (default cosine)")
    cache = d.add_mutually_exclusive_group()
    cache.add_argument("--latent-cache", metavar="DIR", default=None,
                       help="where the frozen encoder's latents are cached, encoded once per crop window and "
                            "reused by every step, epoch and rerun (default: OUT/latent_cache)")
    cache.add_argument("--no-latent-cache", action="store_true",
                       help="run the encoder inside every training step instead")
    add_train_arguments(d)
    d.set_defaults(func=_train_diffusion)

    pr = sub.add_parser("presets", help="print the model size presets with parameter counts")
    pr.set_defaults(func=_presets)


def _train_encoder(args) -> int:
    from lsdkit.models.presets import build_encoder
    from lsdkit.train import check_run_dir, seed_everything
    check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite)     # before any work
    seed_everything(args.seed)      # the same initial weights on every rank and every rerun
    return _fit(build_encoder(args.variant, args.preset), args)


def _train_diffusion(args) -> int:
    from lsdkit.models.diffusion import LatentDiffusion
    from lsdkit.train import check_run_dir, seed_everything
    check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite)     # before any work
    seed_everything(args.seed)
    model = LatentDiffusion.from_encoder(args.latents or args.encoder, preset=args.preset, prediction=args.prediction,
                                         schedule=args.schedule)
    model.use_latent_cache(False if args.no_latent_cache else (args.latent_cache or True))
    return _fit(model, args)


def _fit(model, args) -> int:
    from lsdkit.train import distributed_context, fit
    if args.batch_tokens < model.config.max_len:
        raise flag_error("--batch-tokens", f"{args.batch_tokens} is smaller than the model's max_len "
                                           f"{model.config.max_len}: a full-length sequence would not fit a batch")
    result = fit(model, args.data, train_config_from_args(args), args.out, resume=args.resume,
                 overwrite=args.overwrite, limit=args.limit)
    if distributed_context()[0] == 0:
        print(result.summary(model.kind))
    return 0


def _presets(args) -> int:
    from lsdkit.models.presets import format_preset_table
    print(format_preset_table())
    return 0
