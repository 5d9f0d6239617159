"""The installed package does everything without the checkout: a wheel built from this tree,
installed into a fresh virtual environment, runs `seqrl data build`, `seqrl train iql`, `seqrl
eval`, `seqrl train tt` and `seqrl plan` from an empty directory, with the default configs and the
model card templates it ships."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASET = "seqrl/invertedpendulum/medium-v0"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """bin/ of a fresh venv holding only the seqrl wheel; its dependencies come from this
    environment's site-packages as a plain path (no .pth of the editable checkout runs)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), str(ROOT)], check=True, timeout=600, cwd=tmp)
    wheel = next((tmp / "dist").glob("seqrl-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    new_python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(new_python), "install", "--quiet", "--no-deps",
                    str(wheel)], check=True, timeout=600)
    purelib = subprocess.run([str(new_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "seqrl_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    return env_dir / "bin"


def seqrl(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env |= {"OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "MINARI_DATASETS_PATH": str(cwd / "minari"),
            "SEQRL_CACHE": str(cwd / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(bin_dir / "seqrl"), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)
    assert proc.returncode == 0, f"seqrl {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_the_wheel_runs_every_main_command_outside_the_checkout(installed, tmp_path):
    where = subprocess.run([str(installed / "python"), "-c", "import seqrl; print(seqrl.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(ROOT / "seqrl") not in where and "site-packages" in where  # the installed copy, not the checkout

    seqrl(installed, tmp_path, "data", "build", DATASET, "--n_steps", "1500")
    seqrl(installed, tmp_path, "train", "iql", "--max_steps", "20", "--eval_episodes", "2", "--log_every", "10",
          "--output_dir", "iql")
    card = (tmp_path / "iql" / "model" / "README.md").read_text()
    # the full template (not a fallback): front matter, data table, training table, evaluation line
    for part in ("library_name: seqrl", "# IQL policy for `InvertedPendulum-v5`", "## Data", "## Training",
                 "Mean return over 2 episodes"):
        assert part in card, part
    out = seqrl(installed, tmp_path, "eval", "iql/model", "--episodes", "2").stdout
    assert "policy:" in out
    out = seqrl(installed, tmp_path, "finetune", "iql/model", "--max_steps", "20", "--eval_every", "0",
                "--eval_episodes", "1", "--output_dir", "ft").stdout
    assert "carried over" in out and (tmp_path / "ft" / "finetune.json").exists()
    seqrl(installed, tmp_path, "ope", "iql/model", "--max_steps", "20", "--output_dir", "ope")
    assert (tmp_path / "ope" / "ope.json").exists()
    seqrl(installed, tmp_path, "export", "iql/model", "--format", "torchscript")
    assert (tmp_path / "iql" / "model" / "policy.pt").exists()
    seqrl(installed, tmp_path, "train", "bc", "--seeds", "0,1", "--max_steps", "5", "--eval_episodes", "1",
          "--output_dir", "bc")
    assert (tmp_path / "bc" / "seed_1" / "model" / "README.md").exists() and (tmp_path / "bc" / "seeds.json").exists()

    seqrl(installed, tmp_path, "train", "tt", "--max_steps", "2", "--n_layer", "1", "--n_head", "1", "--n_embd", "8",
          "--n_bins", "8", "--batch_size", "4", "--output_dir", "tt")
    card = (tmp_path / "tt" / "model" / "README.md").read_text()
    assert "library_name: seqrl" in card and "Trajectory Transformer" in card
    out = seqrl(installed, tmp_path, "plan", "--checkpoint", "tt/model", "--episodes", "1", "--horizon", "1",
                "--beam_width", "1", "--n_expand", "1", "--no-progress", "--output", "plan.json").stdout
    assert "planner:" in out and (tmp_path / "plan.json").exists()


def test_every_folder_of_shipped_files_is_a_listed_package():
    """setuptools ships the YAMLs and family assets by package-data, but warns at every install for
    (and a future version may skip) a folder of them that `packages` does not list."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    for package, folder in {**setuptools["package-dir"], "seqrl": "seqrl"}.items():
        for sub in (ROOT / folder).rglob("*"):
            shipped = sub.is_dir() and sub.name != "__pycache__" and not sub.name.startswith(".")
            if shipped and any(f.is_file() for f in sub.iterdir()):
                name = ".".join([package, *sub.relative_to(ROOT / folder).parts])
                assert name in listed, f"pyproject.toml: {name} ({sub.relative_to(ROOT)}) is not in packages"
