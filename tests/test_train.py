import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepbn import train
from deepbn.errors import UsageError
from deepbn.graph_vae import experiment
from deepbn.graph_vae import model as L
from deepbn.io import datasets

TINY = dict(nodes=3, node_dim=2, encoder_hidden=(32, 16), node_hidden=16, decoder_hidden=(16, 32))


def _prototypes(n, seed=0, width=20):
    rng = np.random.default_rng(seed)
    proto = np.random.default_rng(99).integers(0, 2, (4, width))
    flips = rng.random((n, width)) < 0.05
    return (proto[rng.integers(0, 4, n)] ^ flips).astype(np.uint8)


def _data(n=640):
    return datasets.VAEData(_prototypes(n), _prototypes(100, 1), _prototypes(100, 2),
                            "bernoulli", "toy")


def test_a_tiny_graph_vae_improves_its_elbo_clearly(tmp_path):
    cfg = L.GraphVAEConfig(**TINY, structure="learned")
    result = experiment.train(cfg, _data(), tmp_path, epochs=15, batch=32)  # 300 steps
    h = result["history"]
    assert result["message"] is None and len(h) == 15
    assert h[-1]["valid_elbo"] > h[0]["valid_elbo"] + 3.0
    assert h[-1]["elbo"] > h[0]["elbo"] + 3.0
    assert len(h[-1]["gates"]) == 3 and h[-1]["temperature"] == pytest.approx(0.99**14)


def test_resuming_from_the_folder_gives_the_same_next_epoch(tmp_path):
    cfg = L.GraphVAEConfig(**TINY, structure="learned")
    d = _data(320)
    straight = experiment.train(cfg, d, tmp_path / "a", epochs=3, batch=32)["history"]
    experiment.train(cfg, d, tmp_path / "b", epochs=2, batch=32)
    resumed = experiment.train(cfg, d, tmp_path / "b", epochs=3, batch=32)["history"]
    assert len(resumed) == 3
    for key in ("elbo", "kl", "valid_elbo"):
        assert resumed[2][key] == straight[2][key]
    np.testing.assert_array_equal(resumed[2]["gates"], straight[2]["gates"])
    # the folder now holds this model: another model is refused with one line
    other = cfg._replace(nodes=2, node_dim=3)
    with pytest.raises(UsageError, match="different model or data .*nodes: 3 there, 2 now"):
        experiment.train(other, d, tmp_path / "b", epochs=4, batch=32)


def test_a_non_finite_epoch_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def loss_fn(p, s, key, x, scalars):
        loss = jnp.mean((x - p) ** 2) * scalars["scale"]
        return loss, (s, {"loss": loss})

    opt = optax.sgd(0.1)
    epoch = train.make_epoch(loss_fn, opt, batch=2)
    carry = (jnp.zeros(3), {}, opt.init(jnp.zeros(3)))
    x = jnp.ones((4, 3))
    scales = {0: 1.0, 1: 1.0, 2: float("nan")}
    carry, hist, msg = train.run_epochs(
        epoch, carry, x, jax.random.key(0), 5, tmp_path, {"m": 1},
        scalars_for=lambda e: {"scale": jnp.float32(scales.get(e, 1))})
    assert msg is not None and "epoch 3" in msg and "after epoch 2" in msg
    assert hist.epochs_done == 2 and len(hist.records) == 2
    # chunks of 2 epochs: the message names the chunk, the checkpoint is the one before it
    _, hist2, msg2 = train.run_epochs(
        epoch, (jnp.zeros(3), {}, opt.init(jnp.zeros(3))), x, jax.random.key(0), 5,
        tmp_path / "chunks", {"m": 1},
        scalars_for=lambda e: {"scale": jnp.float32(scales.get(e, 1))}, epochs_per_chunk=2)
    assert msg2.startswith("one of epochs 3-4 produced non-finite values") and \
        "after epoch 2" in msg2 and hist2.epochs_done == 2
    assert np.all(np.isfinite(np.asarray(carry[0])))
    _, records = train.load_state(tmp_path / train.CHECKPOINT, carry)
    assert len(records) == 2


def test_several_epochs_per_chunk_give_the_same_run_and_resume_to_it(tmp_path):
    """Chunks of 3 epochs (the last one short) against one epoch a chunk: the same
    parameters bit for bit and one record per epoch; a run stopped in its second chunk
    resumes from the first chunk's checkpoint to the same end."""
    from conftest import interrupt_after

    def loss_fn(p, s, key, x, scalars):
        noisy = x + 0.1 * jax.random.normal(key, x.shape)
        loss = jnp.mean((noisy - p) ** 2) * scalars["scale"]
        return loss, (s, {"loss": loss})

    opt = optax.adam(0.05)
    epoch = train.make_epoch(loss_fn, opt, batch=2)
    start = (jnp.zeros(3), {}, opt.init(jnp.zeros(3)))
    x = jnp.arange(12.0).reshape(4, 3)

    def fit(per_chunk, folder, on_epoch=None):
        return train.run_epochs(epoch, start, x, jax.random.key(0), 7, folder, {"m": 1},
                                scalars_for=lambda e: {"scale": jnp.float32(1 + e)},
                                on_epoch=on_epoch, epochs_per_chunk=per_chunk)

    one, hist_one, _ = fit(1, None)
    seen = []
    three, hist_three, _ = fit(3, tmp_path / "a", lambda e, m, c: seen.append(e) or {})
    np.testing.assert_array_equal(np.asarray(one[0]), np.asarray(three[0]))
    assert seen == list(range(7)) and hist_three.epochs_done == 7

    def strip(records):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records]
    assert strip(hist_one.records) == strip(hist_three.records)
    assert [r["epoch"] for r in hist_three.records] == list(range(1, 8))
    with pytest.raises(KeyboardInterrupt):
        fit(3, tmp_path / "b", lambda e, m, c: interrupt_after(4)(e + 1) or {})
    _, kept = train.load_state(tmp_path / "b" / train.CHECKPOINT, start)
    assert len(kept) == 3  # the first chunk's checkpoint; the second was cut off
    resumed, hist_resumed, _ = fit(3, tmp_path / "b")
    np.testing.assert_array_equal(np.asarray(resumed[0]), np.asarray(three[0]))
    assert strip(hist_resumed.records) == strip(hist_three.records)


def test_loss_sees_the_share_of_the_epoch_done():
    def loss_fn(p, fixed, key, x, scalars):
        return jnp.sum(p * 0.0), (fixed, {"fraction": scalars["epoch_fraction"]})
    epoch = train.make_epoch(loss_fn, optax.sgd(0.1), batch=2)
    carry = (jnp.zeros(3), {}, optax.sgd(0.1).init(jnp.zeros(3)))
    _, metrics = epoch(carry, jnp.ones((8, 3)), jax.random.key(0), {})
    np.testing.assert_allclose(metrics["fraction"], [0.25, 0.5, 0.75, 1.0])
