"""Settings of posterior sampling and parameter learning, checked without JAX (so that a
mistyped option is an error at once): :class:`FitConfig` and :func:`check_settings`."""

from __future__ import annotations

from typing import NamedTuple

from deepbn.errors import UsageError, require_choice, require_count, require_positive

SAMPLERS = ("nuts", "hmc")
FORMS = ("auto", "centred", "auxiliary", "particle")  # per node: :mod:`deepbn.reparam`;
# particle: particle Gibbs over a recurrent chain (:mod:`deepbn.inference.csmc`)
PARTICLE_MIN_LENGTH = 50  # ``auto`` samples a state-space chain this long by particle Gibbs
# particles of conditional SMC over a whole chain (block 0). On kingma-dbn at T = 100,
# 128 -> 256 particles took ESS_min from 735 to 1869 per 4 x 1000 draws for 1.5x the
# time per sweep (512: 2527 for 3.4x), lifting the early states, whose genealogies
# coalesce first (README, "Long runs")
PARTICLES = 256
# the MCMC-EM E-step's draws feed a stochastic gradient, not a posterior summary: fewer
E_STEP_PARTICLES = 128
# burn-in sweeps of particle Gibbs when --warmup is not given (NUTS: WARMUP window steps);
# a sweep renews the whole trajectory, so a few hundred suffice where NUTS adapts for 1000
BURN_IN_SWEEPS = 200
WARMUP = 1000
BLOCK = 20  # blocked particle Gibbs (``--block``, not the default): states per block
BLOCK_PARTICLES = 32  # particles per block
METHODS = ("mcmc-em", "vi")
OPTIMIZER_NAMES = ("adagrad", "adam", "sgd")  # :data:`deepbn.inference.mcmc_em.OPTIMIZERS`


class FitConfig(NamedTuple):
    method: str = "mcmc-em"
    iterations: int = 500
    form: str = "auxiliary"  # centring of the E-step chains / the VI guide
    optimizer: str = "adagrad"  # adagrad | adam | sgd
    learning_rate: float = 0.05
    hmc_transitions: int = 5  # E-step transitions per iteration
    integration_steps: int = 10  # leapfrog steps per HMC transition
    vi_samples: int = 1
    likelihood_samples: int = 256  # prior draws for the marginal-likelihood estimate
    monitor_every: int = 25
    particles: int = E_STEP_PARTICLES  # conditional-SMC particles of the E-step

    def check(self) -> FitConfig:
        """One-line :class:`~deepbn.errors.UsageError` for settings that cannot run."""
        choices = {"method": METHODS, "form": ("centred", "auxiliary", "particle"),
                   "optimizer": OPTIMIZER_NAMES}
        for name, allowed in choices.items():
            require_choice(name, getattr(self, name), allowed)
        for name in ("iterations", "hmc_transitions", "integration_steps", "vi_samples",
                     "likelihood_samples", "monitor_every"):
            require_count(name.replace("_", " "), getattr(self, name))
        require_positive("the learning rate", self.learning_rate)
        if self.form == "particle" and self.method != "mcmc-em":
            raise UsageError("--form particle is an MCMC-EM E-step; use --method mcmc-em")
        particle_settings(2, self.particles)
        return self


def particle_settings(length: int, particles: int | None = None,
                      block: int | None = None) -> tuple[int, int]:
    """(particles, block length) of particle Gibbs on a chain of ``length`` states, the
    defaults filled in: one conditional SMC over the whole chain (block 0) with
    :data:`PARTICLES`; blocks (of at least 2 and fewer than ``length`` states) get
    :data:`BLOCK_PARTICLES` by default. Blocks are not the default: on ``kingma-dbn`` they
    mix far worse (README, "Long runs")."""
    if particles is not None and particles < 2:
        raise UsageError(f"particle Gibbs needs at least 2 particles; got {particles}")
    if block is not None and (block < 0 or block == 1):
        raise UsageError(f"a particle-Gibbs block needs at least 2 states (0: the whole "
                         f"chain); got {block}")
    block = 0 if block is None or block >= length else block
    if particles is None:
        particles = BLOCK_PARTICLES if block else PARTICLES
    return particles, block


def default_warmup(warmup: int | None, particle_gibbs: bool) -> int:
    """``warmup`` or, when None, the default of the scheme that runs: :data:`BURN_IN_SWEEPS`
    for particle Gibbs, :data:`WARMUP` window-adaptation steps for NUTS/HMC."""
    if warmup is not None:
        return warmup
    return BURN_IN_SWEEPS if particle_gibbs else WARMUP


def check_settings(sampler: str, form: str, chains: int, warmup: int | None, samples: int,
                   integration_steps: int = 16, chunk: int = 100,
                   particles: int | None = None, block: int | None = None) -> None:
    """One-line :class:`~deepbn.errors.UsageError` for sampler settings that cannot run."""
    if sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler '{sampler}'; use one of {', '.join(SAMPLERS)}")
    if form not in FORMS:
        raise UsageError(f"unknown form '{form}'; use one of {', '.join(FORMS)}")
    if chains < 1 or (warmup is not None and warmup < 1) or samples < 4:
        raise UsageError(f"need at least 1 chain, 1 warmup step and 4 samples; got {chains} "
                         f"chain(s), {warmup} warmup step(s), {samples} sample(s)")
    require_count("the leapfrog steps per HMC transition", integration_steps)
    require_count("the transitions between checkpoints", chunk)
    particle_settings(2, particles, block)
