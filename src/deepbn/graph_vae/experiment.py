"""Train a latent-DAG VAE into a folder and evaluate it from there.

The folder holds ``config.json`` (model, data and optimiser settings),
``checkpoint.npz`` (after every epoch; training resumes from it),
``history.json`` and the plots; :func:`evaluate_folder` adds ``eval.json``.
Optimiser: Adam (lr 1e-3) with the learning rate multiplied by
``lr_decay`` after every epoch; gate temperature τ = ``temperature_decay``^epoch
(paper Sec. 4: 0.99).

Example:
    >>> import numpy as np, tempfile
    >>> from deepbn.graph_vae import model
    >>> from deepbn.io.datasets import VAEData
    >>> rng = np.random.default_rng(0)
    >>> d = VAEData(*(rng.integers(0, 2, (n, 6)).astype(np.uint8) for n in (64, 16, 16)),
    ...             "bernoulli", "toy")
    >>> cfg = model.GraphVAEConfig(input_dim=6, nodes=2, node_dim=2, encoder_hidden=(8,),
    ...                            node_hidden=4, decoder_hidden=(8,))
    >>> result = train(cfg, d, tempfile.mkdtemp(), epochs=2, batch=16)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepbn import run as run_layer
from deepbn import train as training
from deepbn.errors import UsageError, require_count, require_positive
from deepbn.graph_vae import evaluate, model
from deepbn.io.datasets import VAEData, load_images
from deepbn.results import ResultsFolder, explain_nulls, write_json

CONFIG = ResultsFolder.CONFIG
# config.json keys a resume may change; the data are identified by their digest, not by
# the path they were read from
_NOT_SETTINGS = ("command", "deepbn_version", "epochs", "data")


def make_config(input_dim: int, structure: str = "learned", nodes: int = 5,
                latent_dim: int = 80, likelihood: str = "bernoulli") -> model.GraphVAEConfig:
    """The model for ``latent_dim`` latent dimensions split evenly over ``nodes`` nodes."""
    if nodes < 1 or latent_dim < 1 or latent_dim % nodes:
        raise UsageError(f"the latent dimension ({latent_dim}) must be a positive multiple of "
                         f"the number of latent nodes ({nodes})")
    return model.GraphVAEConfig(input_dim=input_dim, nodes=nodes,
                                node_dim=latent_dim // nodes, structure=structure,
                                likelihood=likelihood).check()


def check_training(epochs: int, batch: int, lr: float, lr_decay: float,
                   temperature_decay: float, n_train: int | None = None) -> None:
    """One-line errors for training settings no run can use."""
    require_count("epochs", epochs)
    if batch < 1 or (n_train is not None and batch > n_train):
        raise UsageError(f"batch size {batch} must be between 1 and the "
                         f"{n_train if n_train is not None else 'number of'} training examples")
    require_positive("the learning rate", lr)
    for name, value in (("learning-rate decay", lr_decay),
                        ("temperature decay", temperature_decay)):
        if not (math.isfinite(value) and 0 < value <= 1):
            raise UsageError(f"the {name} must be in (0, 1], got {value}")


def loss_fn(cfg: model.GraphVAEConfig) -> Callable:
    """Negative mean ELBO over the batch with fresh gate and latent samples (paper Eq. 8)."""
    def loss(params, fixed, key, x, scalars):
        out, new_fixed = model.forward(cfg, params, fixed, key, x, scalars["temperature"],
                                       train=True)
        elbo = jnp.mean(out.elbo)
        return -elbo, (new_fixed, {"elbo": elbo, "kl": jnp.mean(out.kl)})
    return loss


def optimizer(steps_per_epoch: int, lr: float = 1e-3, lr_decay: float = 0.99):
    schedule = optax.exponential_decay(lr, steps_per_epoch, lr_decay, staircase=True)
    return optax.adam(schedule)


def _settings(cfg, d: VAEData, batch, lr, lr_decay, temperature_decay, seed) -> dict:
    return {"model": cfg._asdict(), "data": d.source, "train_shape": list(d.train.shape),
            "train_digest": run_layer.fingerprint(d.train, {}), "batch": batch, "lr": lr,
            "lr_decay": lr_decay, "temperature_decay": temperature_decay, "seed": seed}


def train(cfg: model.GraphVAEConfig, d: VAEData, out: str | Path | ResultsFolder,
          epochs: int,
          batch: int = 64, lr: float = 1e-3, lr_decay: float = 0.99,
          temperature_decay: float = 0.99, seed: int = 0, valid_examples: int = 1000,
          progress: Callable[[int, float], None] | None = None,
          on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train (or resume) in ``out``; returns ``{"history", "message", "params", "fixed"}``.

    ``out``: a folder, or the :class:`~deepbn.results.ResultsFolder` of the command that
    will also write its summary there.
    """
    cfg = cfg._replace(input_dim=d.input_dim, likelihood=d.likelihood).check()
    check_training(epochs, batch, lr, lr_decay, temperature_decay, d.train.shape[0])
    folder = out if isinstance(out, ResultsFolder) else ResultsFolder(out, "vae train")
    out = folder.path
    settings = check_folder(cfg, d, out, batch, lr, lr_decay, temperature_decay, seed)
    folder.write_config({**settings, "epochs": epochs})

    key = jax.random.key(seed)
    k_init, k_train, k_valid = jax.random.split(key, 3)
    params, fixed = model.init(k_init, cfg)
    steps_per_epoch = d.train.shape[0] // batch
    opt = optimizer(steps_per_epoch, lr, lr_decay)
    epoch_fn = training.make_epoch(loss_fn(cfg), opt, batch, progress)
    valid = d.valid[:valid_examples]

    def on_epoch(e, metrics, carry):
        p, s, _ = carry
        rec = {"temperature": temperature_decay ** e,
               "valid_elbo": evaluate.elbo_terms(cfg, p, s, k_valid, valid)["elbo"]}
        if cfg.structure == "learned":
            rec["gates"] = [float(g) for g in model.gate_probabilities(cfg, p)]
        if on_epoch_end is not None:
            on_epoch_end({"epoch": e + 1, **metrics, **rec})
        return rec

    carry, history, message = training.run_epochs(
        epoch_fn, (params, fixed, opt.init(params)), d.train, k_train, epochs, out,
        fingerprint=json.loads(json.dumps(settings)),
        scalars_for=lambda e: {"temperature": jnp.float32(temperature_decay ** e)},
        on_epoch=on_epoch)
    if history.records:  # a run that stopped in its first epoch leaves nothing behind
        folder.write_history(history.records)
    return {"history": history.records, "message": message, "params": carry[0],
            "fixed": carry[1], "config": cfg}


def check_folder(cfg: model.GraphVAEConfig, d: VAEData, out: str | Path, batch: int = 64,
                 lr: float = 1e-3, lr_decay: float = 0.99, temperature_decay: float = 0.99,
                 seed: int = 0) -> dict:
    """The run's settings; a one-line error if ``out`` holds a run with other settings."""
    cfg = cfg._replace(input_dim=d.input_dim, likelihood=d.likelihood).check()
    settings = _settings(cfg, d, batch, lr, lr_decay, temperature_decay, seed)
    config_path = Path(out) / CONFIG
    if config_path.exists():
        old = json.loads(config_path.read_text())
        old = {k: v for k, v in old.items() if k not in _NOT_SETTINGS}
        new = {k: v for k, v in json.loads(json.dumps(settings)).items()
               if k not in _NOT_SETTINGS}
        if old != new:
            raise UsageError(f"{out} holds a different model or data ({_difference(old, new)})"
                             "; use another --out folder")
    return settings


def _difference(old: dict, new: dict) -> str:
    new = json.loads(json.dumps(new))
    for k in new:
        if old.get(k) != new[k]:
            if k == "model":
                keys = [m for m in new[k] if old[k].get(m) != new[k][m]]
                return "; ".join(f"{m}: {old[k].get(m)} there, {new[k][m]} now" for m in keys)
            return f"{k}: {old.get(k)} there, {new[k]} now"
    return "settings differ"


def read_config(out: str | Path) -> tuple[model.GraphVAEConfig, dict]:
    """(config, settings) of a trained folder, without loading its checkpoint."""
    config_path = Path(out) / CONFIG
    if not config_path.exists():
        raise UsageError(f"{out} holds no trained model ({CONFIG} missing); run "
                         "'deepbn vae train ... --out DIR' first")
    settings = json.loads(config_path.read_text())
    if "model" not in settings:
        raise UsageError(f"{out}: {CONFIG} was not written by 'deepbn vae train'")
    cfg = model.GraphVAEConfig(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in settings["model"].items()})
    return cfg, settings


def load_folder(out: str | Path) -> tuple:
    """(config, settings, params, fixed, history) of a trained folder."""
    out = Path(out)
    cfg, settings = read_config(out)
    params, fixed = model.init(jax.random.key(0), cfg)
    opt = optimizer(1)
    if not (out / training.CHECKPOINT).exists():
        raise UsageError(f"{out}: no usable checkpoint; train at least one epoch first")
    (params, fixed, _), records = training.load_state(out / training.CHECKPOINT,
                                                      (params, fixed, opt.init(params)))
    return cfg, settings, params, fixed, records


def structure_edges(cfg: model.GraphVAEConfig, params) -> list[list[int]]:
    """The test-time structure: edges (parent, child) with gate μ > 1/2 (or fixed on)."""
    probs = model.gate_probabilities(cfg, params)
    return [[i, j] for (i, j), p in zip(model.edges(cfg.nodes), probs) if p > 0.5]


def check_evaluation(iw: int, max_examples: int | None = None) -> None:
    """One-line errors for evaluation settings no run can use."""
    require_count("the number of importance samples", iw)
    if max_examples is not None:
        require_count("the number of test examples", max_examples)


def evaluate_folder(out: str | Path, iw: int = 5000, max_examples: int | None = None,
                    seed: int = 0, data: VAEData | None = None,
                    progress: Callable[[int], None] | None = None) -> dict:
    """IWAE log-likelihood (k = ``iw``), ELBO and KL on the test split; writes ``eval.json``."""
    check_evaluation(iw, max_examples)
    cfg, settings, params, fixed, records = load_folder(out)
    d = data if data is not None else load_images(settings["data"])
    test = d.test[:max_examples] if max_examples else d.test
    if test.shape[1] != cfg.input_dim:
        raise UsageError(f"test data have {test.shape[1]} features, the model {cfg.input_dim}")
    key = jax.random.key(seed)
    ll = evaluate.iwae_log_likelihood(cfg, params, fixed, key, test, k=iw, progress=progress)
    terms = evaluate.elbo_terms(cfg, params, fixed, jax.random.fold_in(key, 1), test)
    result = {"ll": float(np.mean(ll)), "ll_stderr": float(np.std(ll) / np.sqrt(len(ll))),
              **terms, "iw": iw, "test_examples": int(test.shape[0]),
              "structure": structure_edges(cfg, params),
              "gate_probabilities": [float(p) for p in model.gate_probabilities(cfg, params)],
              "epochs": len(records), "structure_kind": cfg.structure}
    write_json(Path(out) / "eval.json", explain_nulls(result))
    return result
