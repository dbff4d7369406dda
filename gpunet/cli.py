"""The ``gpunet`` command: train, evaluate, summary, sweep, warmup and info.

    gpunet train configs/mlp_digits.yaml optimizer.lr=0.05 --out runs/lr005
    gpunet train configs/mlp_digits.yaml --out runs/lr005 --resume
    gpunet train configs/mlp_digits.yaml --nproc 2    # data parallel: 2 ranks under mpiexec (docs/distributed.md)
    gpunet evaluate configs/mlp_digits.yaml --checkpoint runs/lr005/checkpoints/best.npz
    gpunet summary configs/mlp_digits.yaml
    gpunet sweep configs/mlp_digits.yaml --grid optimizer.lr=0.01,0.1,1 --grid optimizer.weight_decay=0,1e-3
    gpunet sweep configs/mlp_digits.yaml        # the grid in the config's sweep.grid section
    gpunet sweep configs/mlp_digits.yaml --out runs/sw --resume    # continue an interrupted sweep
    gpunet warmup configs/mlp_digits.yaml device=cuda    # compile the CUDA kernels the config will use
    gpunet info
    gpunet --version

Options and ``key=value`` overrides may come in any order. The work is done in ``gpunet.runner`` (``run``,
``Run.evaluate``, ``sweep``, ``inspect.summarize``, ``inspect.warm_up``); this module parses the command line and
prints.

Problems a user can fix (a bad config or override, a model that does not fit its data, missing data, a corrupt
checkpoint, an unavailable device, an occupied run directory) print one message to stderr and exit with status 1,
without a traceback. Anything else is a bug in gpunet: one line says so (status 3); with GPUNET_DEBUG=1 every error
also shows its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from datetime import datetime

__all__ = ["main"]


def _user_errors() -> tuple:
    from .backend import DeviceError
    from .config import ConfigError
    from .data import DatasetError
    from .train.checkpoint import CheckpointError
    from .train.distributed import DistributedError
    from .runner.run import RunError

    return ConfigError, DatasetError, CheckpointError, DeviceError, RunError, DistributedError


def _config_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0] or "run"


def _load(args):
    from .config import load_config

    return load_config(args.config, args.overrides)


# ----------------------------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from .runner.run import default_run_dir, resumed_config, run, summary_line

    if args.nproc is not None:
        from .train.distributed import launch, launched_by_mpi, world

        if args.nproc < 1:
            raise _usage(f"--nproc must be at least 1, got {args.nproc}")
        if not launched_by_mpi() and args.nproc > 1:  # start the ranks; each runs this command line again
            return launch(args.nproc, args.argv)
        if world().size != args.nproc:
            raise _usage(f"--nproc {args.nproc}, but the launcher started {world().size} rank(s); give the same "
                         "number, or leave --nproc out under mpiexec/srun")
    if args.resume:  # the run's own config.yaml, not CONFIG: resume continues that run
        if args.out is None:
            raise _usage("--resume needs --out DIR: the run directory to continue")
        config = resumed_config(args.out, args.overrides)
        if config is not None:
            print(f"gpunet: resuming {args.out} with its saved config {os.path.join(args.out, 'config.yaml')} "
                  f"({args.config} is not read)", file=sys.stderr, flush=True)
    if not args.resume or config is None:  # nothing to resume yet: --resume starts the run
        config = _load(args)
    out = args.out or default_run_dir(_config_name(args.config))
    summary = run(config, out, resume=args.resume, config_name=_config_name(args.config),
                  progress=not args.no_progress)
    if not _joined_world() or _joined_world().rank == 0:  # a data-parallel run's summary is rank 0's
        print(summary_line(summary), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from .train import strict_json
    from .runner.predict import check_vocabulary
    from .runner.run import Run

    run, path, checkpoint = Run.from_checkpoint(args.checkpoint, args.overrides, config_path=args.config)
    check_vocabulary(path, run.config, run.dataset.vocabulary)
    if checkpoint.config is not None:
        print(f"gpunet: evaluating with the config stored in {path} (the run's own data splits and "
              f"model; {args.config} is not read)", file=sys.stderr, flush=True)
    results = run.evaluate(args.split)
    matrix = results.pop(f"{args.split}_confusion_matrix", None)
    if matrix is not None:
        print("confusion matrix (rows: true class, columns: predicted class):")
        for row in matrix:
            print("  " + " ".join(f"{v:5d}" for v in row))
    print(strict_json.dumps({"checkpoint": path, "epoch": checkpoint.epoch, **results}), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- generate
def cmd_generate(args) -> int:
    from .runner.generate import generate

    print(generate(args.run, args.prompt, args.length, args.temperature, args.seed, args.overrides), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    from .train import strict_json
    from .runner.predict import TextPredictor
    from .runner.run import use_device

    texts = list(args.text or [])
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                texts += [line.rstrip("\n") for line in f if line.strip()]
        except OSError as exc:
            raise _usage(f"--file {args.file}: {exc.strerror or exc}")
    if not texts:
        raise _usage("give the text to classify with --text TEXT (repeatable) or --file FILE (one text per line)")
    use_device(args.device)
    predictor = TextPredictor.from_checkpoint(args.checkpoint, args.vocabulary)
    for text, result in zip(texts, predictor.predict(texts)):
        print(strict_json.dumps({"text": text, **result}), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- summary
def _parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise _usage(f"--input-shape must be positive integers such as 64 or 1,28,28, got {text!r}")
    return shape


def cmd_summary(args) -> int:
    from .runner.inspect import summarize

    shape = _parse_shape(args.input_shape) if args.input_shape else None
    tables = summarize(_load(args), shape, input_from=f"--input-shape {args.input_shape}")
    for name, table in tables:
        if len(tables) > 1:
            print(f"{name}:")
        print(table)
    return 0


# ----------------------------------------------------------------------------------------------- sweep
_GRID = re.compile(r"([^=\s]+)=(.+)")


def _parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    grid, seen = [], set()
    for item in items:
        match = _GRID.fullmatch(item.strip())
        values = [v.strip() for v in match.group(2).split(",")] if match else []
        if not match or not all(values):
            raise _usage(f"--grid {item!r}: write key=value1,value2,... such as optimizer.lr=0.01,0.1")
        if match.group(1) in seen:
            raise _usage(f"--grid: {match.group(1)} is given twice; list all its values in one --grid")
        seen.add(match.group(1))
        grid.append((match.group(1), values))
    return grid


def cmd_sweep(args) -> int:
    from .config import load_config
    from .runner.sweep import config_grid, run_sweep

    from .train.distributed import launched_by_mpi, world

    if launched_by_mpi() and world().distributed:
        raise _usage("a sweep does not run data-parallel: start it without mpiexec/srun (each of its runs trains "
                     "on one process)")
    if args.resume and args.out is None:
        raise _usage("--resume needs --out DIR: the sweep directory to continue")
    grid = _parse_grid(args.grid) if args.grid else config_grid(load_config(args.config, args.overrides))
    if grid is None:
        raise _usage(f"no grid: give --grid KEY=V1,V2,... or add a sweep.grid section to {args.config}")
    name = _config_name(args.config)
    out = args.out or os.path.join("runs", f"{name}-sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    result = run_sweep(args.config, args.overrides, grid, out, name, resume=args.resume,
                       report=lambda line: print(line, flush=True))
    print(json.dumps(result), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- info
def _cuda_version(encoded: int) -> str:
    return f"{encoded // 1000}.{encoded % 1000 // 10}"  # CUDA encodes 12.8 as 12080


def _gpu_lines(cupy) -> dict:
    """The CUDA line, then two lines per device: name, compute capability and memory; NVML's readings."""
    import warnings

    from .backend import get_backend
    from .backend.telemetry import GpuTelemetry

    runtime = cupy.cuda.runtime
    count = runtime.getDeviceCount()
    lines = {"cuda": f"available: {count} device(s), driver {_cuda_version(runtime.driverGetVersion())}, "
                     f"runtime {_cuda_version(runtime.runtimeGetVersion())}"}
    for index in range(count):
        props = runtime.getDeviceProperties(index)
        with cupy.cuda.Device(index):
            free, total = runtime.memGetInfo()
        lines[f"cuda:{index}"] = (f"{props['name'].decode()}, compute capability {props['major']}.{props['minor']}, "
                                  f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free")
        telemetry = GpuTelemetry(get_backend(f"cuda:{index}"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reason is shown below instead
            reading = telemetry.sample()
        lines[f"cuda:{index} nvml"] = (
            f"unavailable ({telemetry.nvml_error}; it needs nvidia-ml-py and the NVIDIA driver)" if telemetry.nvml_error
            else f"{reading['gpu_temperature_c']} C, {reading['gpu_power_w']:.1f} W, "
                 f"{reading['gpu_utilization_percent']} % busy")
    return lines


def cmd_info(args) -> int:
    import numpy

    from . import __version__
    from .backend import cuda_unavailable_reason, current, kernel_dir

    backend = current()
    lines = {"gpunet": __version__, "python": f"{platform.python_version()} ({sys.executable})",
             "numpy": numpy.__version__}
    try:
        import cupy

        lines["cupy"] = cupy.__version__
    except ImportError:
        cupy = None
        lines["cupy"] = 'not installed (pip install "gpunet[cuda]")'
    try:
        lines["kernels"] = str(kernel_dir())
    except FileNotFoundError as exc:
        lines["kernels"] = str(exc)
    lines["device"] = f"{backend.device} (set with GPUNET_DEVICE or the config's device)"
    lines["backend"] = f"{backend.name} ({backend.implementation})"
    reason = cuda_unavailable_reason(0)
    if reason is None:
        lines.update(_gpu_lines(cupy))
    else:
        lines["cuda"] = f"unavailable: {reason}"
    width = max(len(k) for k in lines)
    for key, value in lines.items():
        print(f"{key:<{width}}  {value}")
    return 0


# ----------------------------------------------------------------------------------------------- warmup
def cmd_warmup(args) -> int:
    from .runner.inspect import warm_up

    backend, compilations = warm_up(_load(args))
    if compilations is None:
        print(f"device {backend.device}: nothing to compile (the {backend.implementation} backend runs the fused "
              "kernels in NumPy)")
        return 0
    print(f"device {backend.device} ({backend.implementation}): compiling the kernels of {args.config}", flush=True)
    for family, names, seconds in compilations:
        if family is None:
            print(f"  no CUDA kernel file (xp reference): {', '.join(names)}")
        else:
            print(f"  {family:<11} kernels/{family}.cu compiled in {seconds:.2f} s ({', '.join(names)})", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- parser
class UsageError(Exception):
    """A command-line mistake that argparse cannot see (checked after parsing)."""


def _usage(message: str) -> UsageError:
    return UsageError(message)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 2, as argparse does, but with the prog and a pointer to --help
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _CommandParser(_Parser):
    """A subcommand's parser: options and ``KEY=VALUE`` overrides may come in any order (``parse_intermixed_args``),
    e.g. ``gpunet train CONFIG --out R trainer.epochs=4``."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:  # parse_known_intermixed_args parses in two passes through this method
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="gpunet", description="Train and study neural networks from YAML configs.")
    parser.add_argument("--version", action="version", version=f"gpunet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    sub.required = True

    def with_config(name, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("config", metavar="CONFIG", help="a YAML config file, e.g. configs/mlp_digits.yaml")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="override config values, e.g. optimizer.lr=0.05 trainer.epochs=30")
        return p

    p = with_config("train", "Train a model from a config and write a run directory.")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<config-name>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out DIR from its last checkpoint, with its saved config.yaml "
                   "(CONFIG is not read; overrides may change trainer.epochs, device, trainer.log_every)")
    p.add_argument("--no-progress", action="store_true", help="no progress display (the summary line remains)")
    p.add_argument("--nproc", type=int, metavar="N", help="train data-parallel on N ranks started through mpiexec "
                   "(needs pip install \"gpunet[mpi]\"); under mpiexec or srun the launcher's ranks join by themselves")
    p.set_defaults(handler=cmd_train)

    p = with_config("evaluate", "Evaluate a checkpoint on a split of its run's data, with the config stored in the "
                    "checkpoint (overrides may change only device, trainer.batch_size, trainer.eval_batch_size, "
                    "trainer.metrics and trainer.log_every); CONFIG is read only for a checkpoint without one.")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint file (.npz) written by a run")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="which split (default: test)")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("predict", help="Predict with a checkpoint of a text model on new text, tokenised with the "
                       "run's saved vocabulary as its data was.",
                       description="Predict with a checkpoint of a text model on new text, tokenised with the run's "
                       "saved vocabulary (vocabulary.json in the run directory) as its data was; one JSON line per "
                       "text (the word ids, the class and its probabilities).")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint file (.npz) written by a run")
    p.add_argument("--text", action="append", metavar="TEXT", help="a text to classify (repeatable)")
    p.add_argument("--file", metavar="FILE", help="a file of texts, one per line")
    p.add_argument("--vocabulary", metavar="PATH", help="the run's vocabulary.json (default: the one in the run "
                   "directory of --checkpoint)")
    p.add_argument("--device", default="auto", help="device to run on (default: auto)")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("generate", help="Sample text from a language model run (task language_model).",
                       description="Sample text from a language model run (task language_model): the prompt, then "
                       "--length characters (tokens) drawn one at a time at --temperature, with the vocabulary of "
                       "the run's data; the same --seed gives the same text.")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run directory (its checkpoints/best.npz, else "
                   "last.npz) or a checkpoint file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. device=cpu")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--length", type=int, default=300, help="how many characters (tokens) to add (default 300)")
    p.add_argument("--temperature", type=float, default=1.0, help="> 0; below 1 more likely, above 1 more varied "
                   "text; near 0 (e.g. 0.01) always the likeliest character (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.set_defaults(handler=cmd_generate)

    p = with_config("summary", "Show the model's layers, output shapes, parameters and implementations.")
    p.add_argument("--input-shape", metavar="SHAPE",
                   help="shape of one input sample, e.g. 64 or 1,28,28 (default: from the config's dataset)")
    p.set_defaults(handler=cmd_summary)

    p = with_config("sweep", "Train every combination of a grid of config values; write a results CSV and heatmaps.")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="a config key and its values; repeat for more keys (two keys give heatmaps); "
                   "default: the config's sweep.grid")
    p.add_argument("--out", metavar="DIR", help="sweep directory (default: runs/<config-name>-sweep-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out DIR: finished cells are "
                   "skipped, interrupted ones resume from their last checkpoint (give the same grid and overrides)")
    p.set_defaults(handler=cmd_sweep)

    p = with_config("warmup", "Compile every CUDA kernel file the config's model, loss and optimizer use.")
    p.set_defaults(handler=cmd_warmup)

    p = sub.add_parser("info", help="Show versions, the backend, the device and CUDA availability.")
    p.set_defaults(handler=cmd_info)
    return parser


DEBUG_VARIABLE = "GPUNET_DEBUG"


def _debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def _report(command: str, message: str, status: int) -> int:
    if _debugging():
        import traceback

        traceback.print_exc()
    joined = _joined_world()
    rank = f" (rank {joined.rank} of {joined.size})" if joined else ""
    print(f"gpunet {command}{rank}: {message}", file=sys.stderr)
    return status


def _joined_world():
    distributed = sys.modules.get("gpunet.train.distributed")  # imported only by commands that may join one
    return distributed.joined() if distributed else None


def _interrupted(args, argv: list, exc: KeyboardInterrupt) -> int:
    """Status 130 (SIGINT) or 143 (SIGTERM); a stopped run also gets one line: where it stopped, what was saved and
    the command that continues it (the same command line with --resume)."""
    from .train.interrupt import TrainingInterrupted, resume_command

    if not isinstance(exc, TrainingInterrupted):
        return _report(args.command, "interrupted", 130)
    if exc.run_dir is None:
        return _report(args.command, exc.describe(), exc.exit_code)
    if args.command == "train":
        command = resume_command(["gpunet", *argv], exc.run_dir, args.out is not None, args.resume)
    elif args.command == "sweep":  # the whole sweep continues: finished runs skipped, this one resumed
        command = resume_command(["gpunet", *argv], os.path.dirname(exc.run_dir), args.out is not None, args.resume)
    else:
        command = resume_command(["gpunet", "train", args.config], exc.run_dir, False, False)
    return _report(args.command, f"{exc.describe()}; continue with: {command}", exc.exit_code)


def main(argv=None) -> int:
    """Run the gpunet command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A rank of a
    data-parallel run that fails ends the whole job (its message names the rank), rather than leave the others
    waiting."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    status = _main(argv)
    joined = _joined_world()
    if status not in (0, 130, 143) and joined:  # a signal stops every rank at the same step by itself
        joined.abort(status)
    return status


def _main(argv: list) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed by argparse
        return exit_.code
    args.argv = argv
    try:
        return args.handler(args)
    except UsageError as exc:
        return _report(args.command, f"error: {exc}", 2)
    except _user_errors() as exc:
        return _report(args.command, f"error: {exc}", 1)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _report(args.command, f"error: {exc.strerror or exc}{where}", 1)
    except KeyboardInterrupt as exc:
        return _interrupted(args, argv, exc)
    except MemoryError as exc:  # NumPy's and CuPy's out-of-memory errors: sizes the user chose
        return _report(args.command, f"error: out of memory: {exc}; the model (layer sizes), the batch "
                       "(trainer.batch_size, trainer.eval_batch_size) or the data is too large for the device: make "
                       "it smaller", 1)
    except Exception as exc:  # not the user's to fix: a bug in gpunet (or in a user's imported model code)
        if _debugging():
            raise
        return _report(args.command, f"internal error: {type(exc).__name__}: {exc} (this is likely a bug; run "
                       f"again with {DEBUG_VARIABLE}=1 to see the traceback, and report it with that traceback and "
                       "your config)", 3)


if __name__ == "__main__":
    sys.exit(main())
