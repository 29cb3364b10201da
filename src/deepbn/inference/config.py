"""Settings of posterior sampling and parameter learning, checked without JAX (so that a
mistyped option is an error at once): :class:`FitConfig` and :func:`check_settings`."""

from __future__ import annotations

from typing import NamedTuple

from deepbn.errors import UsageError, require_choice, require_count, require_positive

SAMPLERS = ("nuts", "hmc")
FORMS = ("auto", "centred", "auxiliary", "particle")  # per node: :mod:`deepbn.reparam`;
# particle: particle Gibbs over a recurrent chain (:mod:`deepbn.inference.csmc`)
PARTICLE_MIN_LENGTH = 50  # ``auto`` samples a state-space chain this long by particle Gibbs
PARTICLES = 128  # particles per conditional-SMC sweep
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
    particles: int = PARTICLES  # conditional-SMC particles of the E-step (form particle)

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
        if self.particles < 2:
            raise UsageError(f"particle Gibbs needs at least 2 particles; got {self.particles}")
        return self


def check_settings(sampler: str, form: str, chains: int, warmup: int, samples: int,
                   integration_steps: int = 16, chunk: int = 100,
                   particles: int = PARTICLES) -> None:
    """One-line :class:`~deepbn.errors.UsageError` for sampler settings that cannot run."""
    if sampler not in SAMPLERS:
        raise UsageError(f"unknown sampler '{sampler}'; use one of {', '.join(SAMPLERS)}")
    if form not in FORMS:
        raise UsageError(f"unknown form '{form}'; use one of {', '.join(FORMS)}")
    if chains < 1 or warmup < 1 or samples < 4:
        raise UsageError(f"need at least 1 chain, 1 warmup step and 4 samples; got {chains} "
                         f"chain(s), {warmup} warmup step(s), {samples} sample(s)")
    require_count("the leapfrog steps per HMC transition", integration_steps)
    require_count("the transitions between checkpoints", chunk)
    if particles < 2:
        raise UsageError(f"particle Gibbs needs at least 2 particles; got {particles}")
