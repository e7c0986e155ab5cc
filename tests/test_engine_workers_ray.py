"""Data-parallel measurement on Ray actors (runs where ray is installed: `make test-vllm`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mnemoscope.engine import BackendSpec, open_backend
from mnemoscope.engine.workers import SHARDED_VERBS, ShardedBackend, usable_cores
from mnemoscope.errors import MnemoscopeError

from .helpers import DyingSpec
from .test_engine_workers import PROMPTS, TEXTS

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    if usable_cores() < 2:
        pytest.skip("two Ray workers need two cores")
    root = Path(__file__).parents[1]  # the actors import this checkout (and tests.helpers)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]),
                                       "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def test_ray_actors_score_and_generate_as_one_engine(cluster, saved_model_dir):
    single = open_backend("hf", str(saved_model_dir), device="cpu")
    with pytest.raises(MnemoscopeError, match=r"--workers 3 needs 3 CPU core\(s\) but the Ray cluster has 2"):
        open_backend("hf", str(saved_model_dir), device="cpu", workers=3, executor="ray")
    with open_backend("hf", str(saved_model_dir), device="cpu", workers=2, executor="ray") as pool:
        assert isinstance(pool, ShardedBackend) and pool.provides == single.provides & SHARDED_VERBS
        for a, b in zip(single.score(TEXTS), pool.score(TEXTS)):
            np.testing.assert_array_equal(a.token_ids, b.token_ids)
            np.testing.assert_allclose(b.logprobs, a.logprobs, atol=1e-5)
            np.testing.assert_allclose(b.sigma, a.sigma, atol=1e-5)
        greedy = dict(max_new_tokens=5, min_new_tokens=5)
        assert [c.token_ids for c in pool.generate(PROMPTS, **greedy)] == \
            [c.token_ids for c in single.generate(PROMPTS, **greedy)]


def test_a_ray_actor_that_dies_fails_the_call_in_one_line(cluster, saved_model_dir):
    spec = BackendSpec("hf", str(saved_model_dir), device="cpu")
    die_at = len(spec.open().encode_text(TEXTS[4]).ids)
    pool = ShardedBackend(DyingSpec(spec, die_at), 2, executor="ray")
    with pytest.raises(MnemoscopeError, match=r"Ray worker \d died while score_encoded.*nothing was written") as err:
        pool.score(TEXTS)
    assert "\n" not in str(err.value)
    with pytest.raises(MnemoscopeError, match="closed"):
        pool.score(TEXTS[:1])
