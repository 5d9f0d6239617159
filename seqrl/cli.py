"""The `seqrl` command.

    seqrl data list                      built-in dataset ids
    seqrl data build ID [--n_steps N]    generate a built-in or family dataset (into MINARI_DATASETS_PATH);
                                         ID "all" builds every one whose behaviour policies ship
    seqrl data info ID_OR_PATH           episodes, returns and lengths of any dataset source
    seqrl data push ID_OR_PATH REPO_ID   upload a dataset to a Hub dataset repo with a card (--minari: Minari's layout)
    seqrl train tt [OPTIONS]             train a Trajectory Transformer (see `seqrl train tt --help`)
    seqrl train iql [OPTIONS]            train IQL offline; likewise bc, sac, cql, awac, brac
    seqrl train sac --online --env ID    SAC trained online in a gymnasium environment
    seqrl train mopo [OPTIONS]           model-based: MOPO or COMBO (fits the dynamics ensemble first)
    seqrl train dynamics [OPTIONS]       the dynamics ensemble alone (reuse it: --dynamics PATH)
    seqrl eval PATH_OR_REPO_ID           evaluate a value-based policy in its environment
    seqrl ope PATH_OR_REPO_ID [--dataset ID]   estimate a policy's value from data alone (FQE)
    seqrl finetune PATH_OR_REPO_ID [--env ID]  continue an offline policy online (IQL, AWAC, CQL / Cal-QL, SAC, BRAC)
    seqrl export PATH [--format onnx|torchscript]  the policy as a graph (normalisation and scaling inside)
    seqrl sweep SWEEP.yaml               grid / random search over algorithms, options and seeds (Ray Tune)
    seqrl convert STATE.pt --model_config PKL --dataset ID --output DIR   an official TT checkpoint -> seqrl
    seqrl plot RUN_DIR [RUN_DIR ...]     training curves and evaluation returns as a PNG
    seqrl plan [OPTIONS]                 beam-search planning with a trained TT (see `seqrl plan --help`)
    seqrl push PATH REPO_ID              upload a checkpoint directory to the Hub

`train` and `plan` run the library's run assembly (seqrl.training.run, seqrl.training.plan), the
same code `recipes/*.py` call; for multi-process TT training use `accelerate launch recipes/train_tt.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

# subcommand words -> the library entry point; their arguments go to its own parser untouched
VALUE_BASED = ("bc", "sac", "cql", "iql", "awac", "brac")
MODEL_BASED = ("mopo", "combo")
RUNS = {("train", "tt"): "tt", ("train", "dynamics"): "dynamics", ("plan",): "plan", ("ope",): "ope",
        ("finetune",): "finetune", ("sweep",): "sweep", ("convert",): "convert",
        **{("train", algo): algo for algo in VALUE_BASED + MODEL_BASED}}


class CommandError(Exception):
    """A failure to report as one line, exit status 1."""


# ---------------------------------------------------------------------------- train / plan
@contextlib.contextmanager
def program_name(name: str):
    """argparse names the program after sys.argv[0]: make a run's usage read `seqrl plan`."""
    old = sys.argv[0] if sys.argv else ""
    if not sys.argv:
        sys.argv.append(name)
    sys.argv[0] = name
    try:
        yield
    finally:
        sys.argv[0] = old


def run(words: tuple[str, ...], argv: list[str]) -> int:
    with program_name("seqrl " + " ".join(words)):
        if RUNS[words] == "plan":
            from seqrl.training.plan import main as plan

            plan(argv)
        elif RUNS[words] == "ope":
            from seqrl.training.ope import main as ope

            ope(argv)
        elif RUNS[words] == "convert":
            from seqrl.convert import main as convert

            convert(argv)
        elif RUNS[words] == "sweep":
            from seqrl.training.sweep import main as sweep

            sweep(argv)
        elif RUNS[words] == "finetune":
            from seqrl.training.finetune import main as finetune

            finetune(argv)
        else:
            from seqrl.training.run import main as train

            train(RUNS[words], argv)
    return 0


# ---------------------------------------------------------------------------- data / push
def data_list(args) -> int:
    from seqrl.data.builtin import BUILTIN_DATASETS
    from seqrl.data.families import FAMILY_DATASETS, available

    for dataset_id, spec in sorted(BUILTIN_DATASETS.items()):
        print(f"{dataset_id}\t{spec.env_id} (max {spec.max_episode_steps} steps), {spec.controller} behaviour")
    shipped = set(available())
    for dataset_id, spec in sorted(FAMILY_DATASETS.items()):
        state = "" if dataset_id in shipped else " (behaviour policies not made yet: recipes/make_datasets.py)"
        print(f"{dataset_id}\t{spec.env_id} (max 1000 steps), D4RL-style {spec.quality}{state}")
    return 0


def data_build(args) -> int:
    from seqrl.data import load_dataset
    from seqrl.data.builtin import BUILTIN_DATASETS, ensure_builtin
    from seqrl.data.families import FAMILY_DATASETS, available, ensure_family

    configure_threads(args.threads)
    ids = [args.dataset_id]
    if args.dataset_id == "all":
        ids = sorted(BUILTIN_DATASETS) + available()
    for dataset_id in ids:
        try:
            if dataset_id in FAMILY_DATASETS:
                ensure_family(dataset_id, n_steps=args.n_steps, force=args.force)
            else:
                ensure_builtin(dataset_id, n_steps=args.n_steps, force=args.force)
        except ValueError as err:
            raise CommandError(str(err)) from None
        print(f"{dataset_id}: {load_dataset(dataset_id).summary()}", flush=True)
    return 0


def data_push(args) -> int:
    from seqrl.data import DataError, load_dataset
    from seqrl.data.minari import is_local_minari

    try:
        dataset = load_dataset(args.source)  # built-in and family ids are built first
    except DataError as err:
        raise CommandError(str(err)) from None
    if args.minari:  # Minari's own layout, written by Minari's own Hugging Face storage
        if not is_local_minari(args.source):
            raise CommandError(f"--minari uploads a local Minari dataset by its id; {args.source} is not one "
                               f"(push it without --minari, or build it with `seqrl data build`)")
        if "/" in args.repo_id:
            raise CommandError(f"--minari takes the Hub user or organisation ({args.repo_id!r} has a '/'): Minari puts "
                               f"{args.source} into the dataset repo OWNER/{args.source.split('/')[0]}")
        import os

        import minari
        from huggingface_hub import get_token

        remote, os.environ["MINARI_REMOTE"] = os.environ.get("MINARI_REMOTE"), f"hf://{args.repo_id}"
        try:  # Minari's uploader writes the namespace metadata Minari's readers need, then the dataset
            minari.upload_dataset(args.source, token=get_token())
        finally:
            if remote is None:
                os.environ.pop("MINARI_REMOTE")
            else:
                os.environ["MINARI_REMOTE"] = remote
        print(f"pushed {args.source} in Minari's layout to hf://{args.repo_id}: with MINARI_REMOTE=hf://{args.repo_id}, "
              f"minari.download_dataset({args.source!r}) or seqrl.data.load_dataset({args.source!r}) fetch it")
        return 0
    url = dataset.push_to_hub(args.repo_id, private=args.private)
    print(f"pushed {args.source} ({dataset.summary().transitions:,} transitions) to the dataset repo {args.repo_id}: {url}\n"
          f"load it with seqrl.data.load_dataset({args.repo_id!r})")
    return 0


def data_info(args) -> int:
    from seqrl.data import DataError, load_dataset

    try:
        dataset = load_dataset(args.source)
    except DataError as err:
        raise CommandError(str(err)) from None
    meta = dataset.metadata
    print(f"source: {meta.get('source', args.source)}")
    print(f"env: {meta.get('env_id')} (max_episode_steps {meta.get('max_episode_steps')})")
    print(f"observation_dim {dataset.observation_dim}, action_dim {dataset.action_dim}")
    print(dataset.summary())
    if meta.get("ref_min_score") is not None:
        print(f"reference scores: min {meta['ref_min_score']:.2f}, max {meta['ref_max_score']:.2f} "
              f"({meta.get('ref_source') or 'source not recorded'})")
    return 0


def evaluate_policy(args) -> int:
    from seqrl.evaluation import (EvaluationError, check_env_spaces, evaluate, evaluation_env, normalized_score,
                                  reference_scores)
    from seqrl.hub import CheckpointError, load_policy, read_metadata, resolve

    try:
        directory = resolve(args.checkpoint, args.revision)
        meta = read_metadata(directory)
        if meta.get("algorithm") == "trajectory_transformer":
            raise CheckpointError(f"{args.checkpoint} is a Trajectory Transformer: evaluate it with "
                                  f"`seqrl plan --checkpoint {args.checkpoint}`")
        policy = load_policy(directory, meta)
    except CheckpointError as err:
        raise CommandError(str(err)) from None
    configure_threads(args.threads)
    env = evaluation_env(meta)
    if args.env_id:  # another environment: none of the recorded settings apply
        env = {"env_id": args.env_id, "env_kwargs": {}, "max_episode_steps": None, "env_module": None}
    if not env["env_id"]:
        raise CommandError(f"{args.checkpoint} records no environment: pass --env_id")

    def act(observations):
        return policy.act(observations, deterministic=not args.stochastic)

    if (args.ref_min_score is None) != (args.ref_max_score is None):
        raise CommandError("give both --ref_min_score and --ref_max_score, or neither")
    if args.ref_min_score is not None:
        ref_min, ref_max, ref_source = args.ref_min_score, args.ref_max_score, "given by the user"
    elif args.env_id:  # another environment: the recorded references do not apply
        ref_min = ref_max = ref_source = None
    else:
        ref_min, ref_max = meta.get("ref_min_score"), meta.get("ref_max_score")
        ref_source = meta.get("ref_source") or "recorded in the checkpoint"

    print(f"evaluating {meta['algorithm']} from {args.checkpoint} in {env['env_id']}, {args.episodes} episodes "
          f"(episode k reset with seed {args.seed} + k)")
    try:
        check_env_spaces(env, policy.obs_dim, policy.act_dim, f"the policy of {args.checkpoint}")
        result = evaluate(act, n_episodes=args.episodes, num_envs=args.num_envs, seed=args.seed,
                          ref_min_score=ref_min, ref_max_score=ref_max, ref_source=ref_source, **env)
    except EvaluationError as err:
        raise CommandError(str(err)) from None
    print(f"policy: {result}")
    data_mean = (meta.get("dataset") or {}).get("return_mean")
    if data_mean is not None and not args.env_id:
        refs = reference_scores(ref_min, ref_max)
        normalized = f" | normalized {normalized_score(data_mean, refs[0], refs[1]):.1f}" if refs else ""
        print(f"behaviour data ({(meta.get('dataset') or {}).get('source')}): return mean {data_mean:.2f}{normalized}")
    if args.output:
        print(f"saved {result.to_json(args.output)}")
    return 0


def plot(args) -> int:
    from seqrl.plotting import PlotError, plot_runs

    out = args.out or (Path(args.run_dirs[0]) / "curves.png" if len(args.run_dirs) == 1 else Path("curves.png"))
    metrics = [m for m in args.metrics.split(",") if m] if args.metrics else None
    try:
        print(f"saved {plot_runs(args.run_dirs, out, metrics)}")
    except PlotError as err:
        raise CommandError(str(err)) from None
    return 0


def export_policy(args) -> int:
    from seqrl.export import ExportError, export
    from seqrl.hub import CheckpointError

    try:
        path = export(args.checkpoint, args.output, args.format)
    except (ExportError, CheckpointError) as err:
        raise CommandError(str(err)) from None
    print(f"exported {args.checkpoint} as {args.format}: {path}")
    return 0


def push(args) -> int:
    from seqrl.hub import CheckpointError, push_to_hub

    try:
        url = push_to_hub(args.path, args.repo_id, private=args.private, commit_message=args.message)
    except CheckpointError as err:
        raise CommandError(str(err)) from None
    print(f"pushed {args.path} to {args.repo_id}: {url}")
    return 0


# ---------------------------------------------------------------------------- parser
def add(subparsers, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows the same text as its line in the parent's list."""
    return subparsers.add_parser(name, help=text, description=text)


def configure_threads(threads):
    from seqrl.threads import configure_threads as configure

    try:
        return configure(threads)
    except ValueError as err:
        raise CommandError(str(err)) from None


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the CPUs this process "
                   "may use minus the busy ones, at least 1; see seqrl/threads.py)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqrl", description="Offline RL on the Hugging Face stack.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = add(commands, "data", "list, build and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = add(data_commands, "list", "ids of the built-in datasets, their environments and behaviour policies")
    p.set_defaults(func=data_list)
    p = add(data_commands, "build", "generate a built-in dataset into MINARI_DATASETS_PATH (kept if up to date)")
    p.add_argument("dataset_id", help="a built-in or family id (see `seqrl data list`), or `all`")
    p.add_argument("--n_steps", type=int, default=None, help="environment steps to collect (default: the recipe's; "
                   "family random/medium/expert sets: 100,000 each)")
    p.add_argument("--force", action="store_true", help="rebuild even if an up-to-date copy exists")
    add_threads(p)
    p.set_defaults(func=data_build)
    p = add(data_commands, "push", "upload a dataset (any source seqrl reads, the built-in families included) to a Hub "
                                   "dataset repo with a dataset card")
    p.add_argument("source", metavar="ID_OR_PATH", help="dataset id or path (as `seqrl data info`)")
    p.add_argument("repo_id", help="Hub dataset repo 'user/name' (created if missing); with --minari the user or organisation")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--minari", action="store_true", help="Minari's own hf:// layout (a local Minari dataset id; "
                   "Minari users then read it with MINARI_REMOTE=hf://OWNER and minari.download_dataset(ID))")
    p.set_defaults(func=data_push)
    p = add(data_commands, "info", "environment, sizes, returns and lengths of a dataset")
    p.add_argument("source", metavar="ID_OR_PATH",
                   help="saved EpisodeDataset directory, .npz, built-in, local or remote Minari id, or Hub dataset repo id")
    p.set_defaults(func=data_info)

    # train/plan: listed here for --help; their arguments are handled by the recipes (see main)
    train = add(commands, "train", "train a model (Trajectory Transformer or a value-based policy)")
    train_commands = train.add_subparsers(dest="algorithm", metavar="ALGO", required=True)
    train_commands.add_parser("tt", help="Trajectory Transformer: see `seqrl train tt --help`", add_help=False)
    for algo in VALUE_BASED + MODEL_BASED:
        train_commands.add_parser(algo, help=f"{algo.upper()}: see `seqrl train {algo} --help`", add_help=False)
    train_commands.add_parser("dynamics", help="dynamics ensemble for MOPO / COMBO: see `seqrl train dynamics --help`",
                              add_help=False)
    commands.add_parser("plan", help="plan with a trained Trajectory Transformer: see `seqrl plan --help`",
                        add_help=False)
    commands.add_parser("ope", help="offline policy evaluation (FQE) of a value-based policy from data: "
                                    "see `seqrl ope --help`", add_help=False)
    commands.add_parser("convert", help="an official trajectory-transformer checkpoint as a seqrl checkpoint: "
                                        "see `seqrl convert --help`", add_help=False)
    commands.add_parser("sweep", help="a grid or random search over algorithms, datasets, options and seeds on Ray "
                                      "Tune: see `seqrl sweep --help`", add_help=False)
    commands.add_parser("finetune", help="offline-to-online fine-tuning of an IQL, AWAC, CQL (Cal-QL), SAC or BRAC "
                                         "policy: see `seqrl finetune --help`", add_help=False)

    p = add(commands, "eval", "evaluate a trained value-based policy (BC, CQL, IQL, AWAC) in its environment")
    p.add_argument("checkpoint", metavar="PATH_OR_REPO_ID", help="policy directory (with seqrl.json) or Hub repo id")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    p.add_argument("--seed", type=int, default=10_000, help="episode k is reset with seed + k (default 10000, "
                   "the seeds of the end-of-training evaluation)")
    p.add_argument("--num_envs", type=int, default=None, help="environments stepped together (default: up to 10)")
    p.add_argument("--env_id", default=None,
                   help="another gymnasium env id (default: the one recorded, Minari's eval env if the data had one)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic (mean) one")
    p.add_argument("--ref_min_score", type=float, default=None,
                   help="random-policy return for the normalized score (with --ref_max_score; default: the checkpoint's)")
    p.add_argument("--ref_max_score", type=float, default=None, help="expert return for the normalized score")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of a repo id")
    add_threads(p)
    p.add_argument("--output", default=None, help="write the results (returns, lengths, normalized score) as JSON here")
    p.set_defaults(func=evaluate_policy)

    p = add(commands, "plot", "training curves and evaluation returns of one or more runs, as a PNG")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="output_dir of a training run (train_history.json)")
    p.add_argument("--out", default=None, help="image file (default: RUN_DIR/curves.png for one run, else ./curves.png)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated logged metrics to draw (default: every one with 'loss' in its name)")
    p.set_defaults(func=plot)

    p = add(commands, "export", "a trained policy as an ONNX or TorchScript graph (normalisation and action scaling "
                                "inside); a Trajectory Transformer's logits as ONNX")
    p.add_argument("checkpoint", metavar="PATH_OR_REPO_ID", help="checkpoint directory (with seqrl.json) or Hub repo id")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx",
                   help="onnx (default; needs seqrl[export]: onnx, onnxscript) or torchscript (torch.jit.trace)")
    p.add_argument("--output", default=None, help="file to write (default: CHECKPOINT/policy.onnx or policy.pt, "
                   "CHECKPOINT/logits.onnx for a Trajectory Transformer)")
    p.set_defaults(func=export_policy)

    p = add(commands, "push", "upload a checkpoint directory to the Hugging Face Hub (training checkpoints "
                              "and logs are left out)")
    p.add_argument("path", help="checkpoint directory (with seqrl.json)")
    p.add_argument("repo_id", help="Hub model repo 'user/name' (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=push)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        for words in RUNS:  # hand everything after the subcommand words to the run's own parser
            if tuple(argv[:len(words)]) == words:
                return run(words, argv[len(words):])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CommandError as err:
        print(f"seqrl: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
