"""Checkpoints: safetensors weights + JSON, atomic directory writes, no pickle anywhere.

Layout of one checkpoint directory::

    model.safetensors        model weights and persistent buffers
    config.json              {"format", "kind", "config": <model config dataclass as dict>,
                              "alphabet": <Alphabet signature>, "lsdkit_version", "sha256": {...}}
    trainer_state.safetensors  (training checkpoints only) optimizer tensors
    trainer_state.json         step, epoch, batch index, RNG states (JSON), thread count,
                               optimizer structure with tensor references

A run directory holds ``step_000100/``, ``step_000200/``, ... and a pointer file ``latest``
containing the newest step directory's name (no symlinks). Every write goes through
:func:`lsdkit.io.atomic_directory` (a temporary directory, fsynced, then renamed into place), so a
crash leaves either the old or the new checkpoint, never a half-written one.

Model kinds: ``register_kind(kind, ConfigClass, ModelClass)``; a model class is built as
``ModelClass(config)`` and carries ``.config`` and ``.kind``. :func:`load_model` refuses a
checkpoint of another kind, another vocabulary or another config (naming the field), and a
corrupted file (sha256 or safetensors header).

Arbitrary state dicts (optimizer, scheduler, ...) are stored with :func:`flatten_state`: tensors
go to safetensors under generated names, everything else to JSON with small tags for tuples,
non-string dict keys and tensor references.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import typing
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lsdkit import __version__
from lsdkit.alphabet import ALPHABET
from lsdkit.errors import LsdkitError
from lsdkit.io import atomic_directory, atomic_write_text, remove_leftovers, sha256_file

FORMAT = 1
LATEST = "latest"

# kind -> (ConfigClass, ModelClass); filled by register_kind when a model module is imported
KINDS: dict[str, tuple[type, type]] = {}
# where each known kind registers itself (imported on demand by load_model)
KIND_MODULES = {"autoencoder": "lsdkit.models.autoencoder", "mlm": "lsdkit.models.mlm",
                "diffusion": "lsdkit.models.diffusion"}


class CheckpointError(LsdkitError, RuntimeError):
    """A checkpoint is missing, corrupted, or does not match what was asked for."""


def register_kind(kind: str, config_cls: type, model_cls: type) -> None:
    """Make ``kind`` loadable: ``load_model`` will build ``model_cls(config_cls(**config))``."""
    KINDS[kind] = (config_cls, model_cls)


def kind_classes(kind: str) -> tuple[type, type]:
    if kind not in KINDS and kind in KIND_MODULES:
        importlib.import_module(KIND_MODULES[kind])
    if kind not in KINDS:
        raise CheckpointError(f"unknown model kind {kind!r}; known kinds: {sorted(set(KINDS) | set(KIND_MODULES))}")
    return KINDS[kind]


# --- configs <-> JSON ------------------------------------------------------------------------------
def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type, data: dict, where: str = "config"):
    """Rebuild a (possibly nested) config dataclass; unknown fields are an error naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CheckpointError(f"{where}: unknown field(s) {unknown} for {cls.__name__}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints.get(f.name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value, f"{where}.{f.name}")
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _flat_fields(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat_fields(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def config_differences(have: dict, want: dict) -> list[str]:
    """Human-readable differences, e.g. ``'checkpoint has d_z=32 but the model asked for d_z=16'``."""
    have, want = _flat_fields(have), _flat_fields(want)
    missing = object()
    return [f"checkpoint has {k}={have.get(k, '<missing>')} but the model asked for {k}={want[k]}"
            for k in sorted(want) if have.get(k, missing) != want[k]]


# --- generic state (optimizer, scheduler, ...) <-> tensors + JSON -----------------------------------
def flatten_state(obj, prefix: str = "s") -> tuple[dict[str, torch.Tensor], object]:
    """Split a nested state into ``(tensors, json_structure)``; inverse: :func:`unflatten_state`."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(o, path):
        if isinstance(o, torch.Tensor):
            tensors[path] = o.detach().to("cpu").clone().contiguous()
            return {"__tensor__": path}
        if isinstance(o, dict):
            if all(isinstance(k, str) for k in o):
                return {"__dict__": {k: walk(v, f"{path}.{k}") for k, v in o.items()}}
            return {"__items__": [[k, walk(v, f"{path}.{k}")] for k, v in o.items()]}
        if isinstance(o, tuple):
            return {"__tuple__": [walk(v, f"{path}.{i}") for i, v in enumerate(o)]}
        if isinstance(o, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(o)]
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        raise CheckpointError(f"cannot store {type(o).__name__} at {path} without pickle")

    return tensors, walk(obj, prefix)


def unflatten_state(structure, tensors: dict[str, torch.Tensor]):
    def walk(o):
        if isinstance(o, list):
            return [walk(v) for v in o]
        if isinstance(o, dict):
            if "__tensor__" in o:
                if o["__tensor__"] not in tensors:
                    raise CheckpointError(f"trainer state refers to missing tensor {o['__tensor__']!r}")
                return tensors[o["__tensor__"]]
            if "__dict__" in o:
                return {k: walk(v) for k, v in o["__dict__"].items()}
            if "__items__" in o:
                return {k: walk(v) for k, v in o["__items__"]}
            if "__tuple__" in o:
                return tuple(walk(v) for v in o["__tuple__"])
        return o

    return walk(structure)


# --- files of a checkpoint directory (written inside lsdkit.io.atomic_directory) ---------------------
def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def _model_files(stage: Path, model: torch.nn.Module) -> dict:
    """Write model.safetensors into ``stage``; return the config.json payload (without writing)."""
    weights = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(stage / "model.safetensors"), metadata={"format": "pt"})
    return {"format": FORMAT, "kind": model.kind, "model_class": type(model).__name__,
            "config": config_to_dict(model.config), "alphabet": ALPHABET.signature(),
            "lsdkit_version": __version__,
            "sha256": {"model.safetensors": sha256_file(stage / "model.safetensors")}}


# --- saving ----------------------------------------------------------------------------------------
def save_model(path: str | os.PathLike, model: torch.nn.Module) -> Path:
    """Write a weights-only checkpoint directory (model.safetensors + config.json) atomically."""
    final = Path(path)
    with atomic_directory(final) as stage:
        _write_json(stage / "config.json", _model_files(stage, model))
    return final


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module,
                    trainer_state: dict, keep: int | None = None, protect: tuple[int, ...] = ()) -> Path:
    """Write ``run_dir/step_NNNNNN/`` (model + trainer state) atomically and point ``latest`` at it.

    ``trainer_state`` is any nested dict of tensors / JSON values (e.g. ``{"optimizer":
    opt.state_dict(), "step": ..., "rng": ...}``). ``keep`` (if given) deletes all but the newest
    ``keep`` step directories, except those of the steps in ``protect`` (learning-curve milestones).
    """
    run_dir = Path(run_dir)
    final = run_dir / step_dir_name(step)
    with atomic_directory(final) as stage:
        meta = _model_files(stage, model)
        tensors, structure = flatten_state(trainer_state, "t")
        save_file(tensors, str(stage / "trainer_state.safetensors"))
        meta["sha256"]["trainer_state.safetensors"] = sha256_file(stage / "trainer_state.safetensors")
        _write_json(stage / "trainer_state.json", {"format": FORMAT, "step": step, "state": structure})
        meta["sha256"]["trainer_state.json"] = sha256_file(stage / "trainer_state.json")
        _write_json(stage / "config.json", meta)
    atomic_write_text(run_dir / LATEST, final.name + "\n")
    if keep is not None:
        kept = {step_dir_name(s) for s in protect}
        steps = sorted(p for p in run_dir.glob("step_*") if p.is_dir() and p.name not in kept)
        for old in steps[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale_staging(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the staging directories (``.step_NNNNNN.<random>.tmp``), moved-aside old checkpoints
    (``.step_NNNNNN.<random>.old``) and temporary ``latest`` / ``metrics.jsonl`` files that a killed
    checkpoint write left in ``run_dir``. The trainer calls it when a run starts (no other writer
    is active then). Returns what was removed."""
    return remove_leftovers(run_dir, ("step_*", LATEST, "metrics.jsonl"))


# --- loading ---------------------------------------------------------------------------------------
def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The step directory named by ``run_dir/latest``, or None when the run has no checkpoint."""
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    target = Path(run_dir) / pointer.read_text().strip()
    if not (target / "config.json").is_file():
        raise CheckpointError(f"{pointer} names {target.name!r}, which is not a checkpoint directory")
    return target


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint directory, or a run directory (resolved through its ``latest`` pointer)."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if (path / LATEST).is_file():
        return latest_checkpoint(path)
    raise CheckpointError(f"{str(path)!r} is neither a checkpoint directory (no config.json) "
                          f"nor a run directory (no {LATEST!r} pointer)")


def read_config(path: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a checkpoint (or of a run directory's latest checkpoint)."""
    ckpt = resolve(path)
    try:
        meta = json.loads((ckpt / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{ckpt / 'config.json'}: corrupted JSON ({e})") from None
    for key in ("kind", "config", "alphabet", "sha256"):
        if key not in meta:
            raise CheckpointError(f"{ckpt / 'config.json'}: missing field {key!r}")
    return meta


def _verified(ckpt: Path, name: str, meta: dict) -> Path:
    path = ckpt / name
    if not path.is_file():
        raise CheckpointError(f"{path}: file missing")
    want = meta["sha256"].get(name)
    if want is not None and sha256_file(path) != want:
        raise CheckpointError(f"{path}: corrupted (sha256 differs from the one in config.json)")
    return path


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupted or unreadable safetensors file ({e})") from None


def _check_meta(ckpt: Path, meta: dict, expect_kind, expect_config) -> None:
    if expect_kind is not None and meta["kind"] != expect_kind:
        raise CheckpointError(f"{ckpt}: checkpoint holds a {meta['kind']!r} model, not {expect_kind!r}")
    if meta["alphabet"] != ALPHABET.signature():
        raise CheckpointError(f"{ckpt}: checkpoint was trained with another alphabet "
                              f"({meta['alphabet']!r})")
    if expect_config is not None:
        want = expect_config if isinstance(expect_config, dict) else config_to_dict(expect_config)
        diffs = config_differences(meta["config"], want)
        if diffs:
            raise CheckpointError(f"{ckpt}: " + "; ".join(diffs))


def _load_weights(ckpt: Path, meta: dict, model: torch.nn.Module) -> None:
    weights = _load_tensors(_verified(ckpt, "model.safetensors", meta))
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{ckpt}: weights do not fit {type(model).__name__} "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for k, v in weights.items():
        if v.shape != own[k].shape:
            raise CheckpointError(f"{ckpt}: weight {k!r} has shape {list(v.shape)}, "
                                  f"the model expects {list(own[k].shape)}")
    model.load_state_dict(weights)


def load_model(path: str | os.PathLike, expect_kind: str | None = None, expect_config=None,
               map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the model stored at ``path`` and load its weights (eval mode).

    ``expect_kind``: refuse another kind. ``expect_config``: a config dataclass or a dict of the
    fields that must match; any difference is refused with a message naming the field.
    """
    ckpt = resolve(path)
    meta = read_config(ckpt)
    _check_meta(ckpt, meta, expect_kind, expect_config)
    config_cls, model_cls = kind_classes(meta["kind"])
    model = model_cls(config_from_dict(config_cls, meta["config"], f"{ckpt}/config.json"))
    _load_weights(ckpt, meta, model)
    return model.to(map_location).eval()


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Load a checkpoint's weights into an existing ``model`` of the same kind and config.

    Returns the resolved checkpoint directory. Used by ``Trainer(resume=True)``.
    """
    ckpt = resolve(path)
    meta = read_config(ckpt)
    _check_meta(ckpt, meta, model.kind, model.config)
    _load_weights(ckpt, meta, model)
    return ckpt


def load_trainer_state(path: str | os.PathLike) -> dict:
    """The nested trainer state saved by :func:`save_checkpoint` (tensors on CPU)."""
    ckpt = resolve(path)
    meta = read_config(ckpt)
    state_json = _verified(ckpt, "trainer_state.json", meta)
    tensors = _load_tensors(_verified(ckpt, "trainer_state.safetensors", meta))
    try:
        doc = json.loads(state_json.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state_json}: corrupted JSON ({e})") from None
    return unflatten_state(doc["state"], tensors)


# --- the names HuggingFace users type --------------------------------------------------------------
class Pretrained:
    """``model.save_pretrained(dir)`` and ``Model.from_pretrained(dir)``: thin aliases of
    :func:`save_model` and :func:`load_model` (one checkpoint format). Mixed into every model class
    before ``nn.Module``; the class's ``kind`` is the only kind ``from_pretrained`` accepts."""

    kind: str

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write this model's weights-only checkpoint directory (:func:`save_model`)."""
        return save_model(path, self)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu"):
        """The model saved at ``path`` (a checkpoint or run directory), in eval mode
        (:func:`load_model`); a checkpoint of another kind is refused with :class:`CheckpointError`."""
        return load_model(path, expect_kind=cls.kind, map_location=map_location)
