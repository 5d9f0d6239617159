"""Shared pytest configuration and fixtures.

Sections:
  * Hugging Face Hub: a local fake Hub (tests/hub_server.py) and hermetic HF_* settings.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:  # works whether or not tests/ is a package
    from .hub_server import DEFAULT_USER, HF_PATH_ENV_VARS, HubServer, run_offline_python
except ImportError:
    from hub_server import DEFAULT_USER, HF_PATH_ENV_VARS, HubServer, run_offline_python


# =========================================================================== Hugging Face Hub
#
# huggingface_hub and datasets read HF_ENDPOINT, HF_HOME, HF_TOKEN, HF_HUB_DISABLE_XET,
# ... once, when first imported. So the environment is set here, at conftest import,
# before any test module imports them. Nothing in the suite can then reach the real Hub:
# the endpoint is a local port that only answers while the `hub_server` fixture is active.

HUB_TOKEN = "hf_dummy_test_token"

# Binds a free 127.0.0.1 port now (reserving it); it only starts serving when a test
# requests the `hub_server` fixture. Before that, requests are refused at once.
_HUB = HubServer(token=HUB_TOKEN)
_HF_HOME = tempfile.mkdtemp(prefix="seqrl-test-hf-home-")

# Settings that would make the tests non-hermetic or offline.
_HF_ENV_TO_CLEAR = (
    *HF_PATH_ENV_VARS,
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_CO_STAGING",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)


def _configure_hf_environment() -> None:
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        if constants.ENDPOINT != _HUB.url:
            raise RuntimeError(
                "huggingface_hub was imported before tests/conftest.py could point it at the local test hub; "
                "the suite would talk to the real Hub. Do not import it from plugins or a root conftest."
            )
    for name in _HF_ENV_TO_CLEAR:
        os.environ.pop(name, None)
    os.environ.update(
        HF_ENDPOINT=_HUB.url,
        HF_HOME=_HF_HOME,
        HF_TOKEN=HUB_TOKEN,
        HF_HUB_DISABLE_XET="1",  # the fake hub speaks the classic LFS protocol only
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_SYMLINKS_WARNING="1",
    )


_configure_hf_environment()

# Datasets and token caches go to throw-away folders: a test that builds a 20,000-step slice of a
# family set must never replace the user's full build in ~/.minari (it once did, and the quality
# table then trained on the slice).
os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp(prefix="seqrl-test-minari-")
os.environ["SEQRL_CACHE"] = tempfile.mkdtemp(prefix="seqrl-test-cache-")


def pytest_configure(config):
    # huggingface_hub's LFS upload passes a file object as `data=`, which its HTTP
    # library deprecates; that is client-side noise, not something tests can fix.
    config.addinivalue_line("filterwarnings", "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


def pytest_unconfigure(config):
    _HUB.stop()  # idempotent; also releases the port if the server never started
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@dataclass(frozen=True)
class HFCacheDirs:
    """An empty, private Hugging Face cache.

    home:           use as HF_HOME (e.g. `run_offline(code, hf_home=cache.home)`)
    hub_cache:      `home/"hub"`, the `cache_dir=` of hf_hub_download/snapshot_download
    datasets_cache: `home/"datasets"`, the `cache_dir=` of datasets.load_dataset
    """

    home: Path

    @property
    def hub_cache(self) -> Path:
        return self.home / "hub"

    @property
    def datasets_cache(self) -> Path:
        return self.home / "datasets"


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubServer]:
    """The running fake Hub (`HubServer`), at the HF_ENDPOINT set above.

    Session-scoped: repos persist across tests, so create uniquely named ones
    (see `hub_repo_id`). `hub_server.requests` / `.errors` help assertions.
    """
    _HUB.start()
    yield _HUB
    _HUB.stop()


@pytest.fixture
def hub_api(hub_server):
    """An `HfApi` client for the fake Hub, authenticated with HUB_TOKEN."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_server.url, token=HUB_TOKEN)


@pytest.fixture
def hub_repo_id(request) -> str:
    """A fresh, unique repo id ("test-user/<test-name>-<hex>") for this test."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40].strip("-")  # valid repo name, no "--"
    return f"{DEFAULT_USER}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def fresh_hf_cache(tmp_path) -> HFCacheDirs:
    """An empty cache, to prove a download really goes over HTTP (see HFCacheDirs)."""
    cache = HFCacheDirs(home=tmp_path / "hf_home")
    cache.hub_cache.mkdir(parents=True)
    cache.datasets_cache.mkdir(parents=True)
    return cache


@pytest.fixture(scope="session")
def run_offline():
    """`run_offline(code, *, hf_home, env=None, timeout=120, check=True) -> CompletedProcess`.

    Runs Python `code` in a subprocess with HF_HUB_OFFLINE=1, HF_HOME=hf_home and
    HF_ENDPOINT on a closed port; raises AssertionError (with its output) on failure.
    """
    return run_offline_python


@pytest.fixture(scope="session")
def pendulum_data(tmp_path_factory):
    """A small medium-quality InvertedPendulum dataset (terminations, 50-step time limit): its
    directory and summary."""
    from seqrl.data import EpisodeDataset
    from seqrl.data.collect import rollout
    from seqrl.data.controllers import make_controller

    env = "InvertedPendulum-v5"
    episodes = rollout(env, make_controller(env, "medium", seed=0), n_steps=3000, seed=0, max_episode_steps=50)
    ds = EpisodeDataset.from_episodes(episodes, metadata={
        "env_id": env, "max_episode_steps": 50, "action_low": [-3.0], "action_high": [3.0],
        "ref_min_score": 5.0, "ref_max_score": 50.0, "source": "test"})
    return str(ds.save_to_disk(tmp_path_factory.mktemp("data") / "ip")), ds.summary()
