"""The `fedseed` command: simulate, export, info, config-schema."""

from __future__ import annotations

import argparse
import json
import sys

from fedseed.config import ConfigError


def _simulate(args: argparse.Namespace) -> int:
    from fedseed.config import load_config

    if args.loopback:
        from fedseed.simulations.loopback import run_loopback

        summary = run_loopback(args.config, args.set, args.out, overwrite=args.overwrite, quiet=args.quiet)
    else:
        from fedseed.simulations.engine import simulate

        cfg = load_config(args.config, args.set)
        summary = simulate(cfg, args.out, progress=not args.quiet, overwrite=args.overwrite, resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 3 if summary.get("diverged") else 0  # the guard ended it (stderr said why and what to change)


def _experiments(args: argparse.Namespace) -> int:
    import pathlib

    from fedseed.simulations.recipes import DEFAULT_DIR, describe, recipe_paths, run_recipes

    folder = pathlib.Path(args.dir) if args.dir else DEFAULT_DIR
    if args.list:
        for path in recipe_paths(folder, args.only):
            print(f"{path.stem}: {describe(path)}")
        return 0
    keep = pathlib.Path(args.keep) if args.keep else None
    runs = run_recipes(folder, pathlib.Path(args.out), args.only, progress=not args.quiet, keep=keep)
    if args.report:
        from fedseed.results_table import write_results

        context = folder / "papers.md"
        path = write_results([str(r) for r in runs], args.report, str(context) if context.is_file() else None)
        print(f"wrote {path}")
    return 0


def _server(args: argparse.Namespace) -> int:
    from fedseed.server.app import run_server
    from fedseed.server.config import load_server_config

    cfg, sec = load_server_config(args.config, args.set)
    print(json.dumps(run_server(cfg, sec), indent=2))
    return 0


def _client(args: argparse.Namespace) -> int:
    import grpc

    from fedseed.client.config import load_client_config
    from fedseed.client.edge import ForkError, finished_before, run_client
    from fedseed.client.session import CoordinatorUnreachable

    sec = load_client_config(args.config)
    try:
        summary = run_client(args.server, sec)
    except ForkError as e:
        print(f"fedseed: error: {e}", file=sys.stderr)
        return 3
    except CoordinatorUnreachable as e:
        done = finished_before(sec)
        if done is not None:  # nothing to do: this client saw the run to its end before
            print(f"fedseed client: {e}; this client already finished run {done['run_id']} at round "
                  f"{done['final_round']} with checksum {done['final_checksum']} ({sec.out}/summary.json)",
                  file=sys.stderr)
            return 0
        print(f"fedseed: error: {e}", file=sys.stderr)
        return 4
    except grpc.RpcError as e:
        print(f"fedseed: error: the coordinator refused: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2
    print(f"fedseed client: the run finished at round {summary['final_round']}; this client's state matches the "
          f"coordinator's checksum {summary['final_checksum']}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


def _keys(args: argparse.Namespace) -> int:
    from fedseed.keys import create_client_keys

    print(create_client_keys(args.out, [c.strip() for c in args.clients.split(",") if c.strip()]))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from fedseed.run_inspect import inspect_run

    print(inspect_run(args.run, as_json=args.json))
    return 0


def _export(args: argparse.Namespace) -> int:
    from fedseed.replay import export_checkpoint

    target = export_checkpoint(args.run, args.round, args.out, overwrite=args.overwrite)
    print(f"wrote Hugging Face checkpoint to {target}")
    return 0


def _certs(args: argparse.Namespace) -> int:
    from fedseed.certs import create_certs

    names = [n.strip() for n in args.server_names.split(",") if n.strip()]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    for path in create_certs(args.out, names, clients, args.ca_out):
        print(path)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from fedseed.config import load_config
    from fedseed.federation import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(load_config(args.config, args.set), args.checkpoint)))
    return 0


def _config_schema(args: argparse.Namespace) -> int:
    from fedseed.config import config_schema

    print(json.dumps(config_schema(args.kind), indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    from fedseed.records import RoundRecord
    from fedseed.roundlog import RoundLog

    log = RoundLog.open_existing(args.run)
    try:
        print(f"strategy {log.meta('strategy')}, spec {log.meta('spec_version')}, rounds {log.last_round()}")
        print(f"layout fingerprint {log.meta('fingerprint')}")
        for m in log.metrics():
            print(json.dumps(RoundRecord.from_json(m).to_json()))  # a record this fedseed cannot read is named
    finally:
        log.close()
    return 0


def _report(args: argparse.Namespace) -> int:
    from fedseed.report import plot_runs, report

    if args.out:
        from fedseed.results_table import write_results

        print(f"wrote {write_results(args.runs, args.out, args.context)}")
        return 0
    result = report(args.runs)
    key = result["metric"]
    for r in result["runs"]:
        print(f"{r['run']} ({r['mode']}): seed {r['seed']}  zero-shot {r['zero_shot']:.4f}  final {r['final']:.4f}  "
              f"{r['bytes_per_client_round']:.0f} B/client/round  wall {r['wall_s']:.0f}s")
    for name in ("zero_shot", "final", "gain"):
        print(f"{name:9s} {key}: mean {result[name]['mean']:.4f}  std {result[name]['std']:.4f}")
    if args.plot:
        plot_runs(args.runs, args.plot, title=args.title)
        print(f"wrote {args.plot}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedseed", description="Federated fine-tuning that exchanges seeds and scalars.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="run N virtual clients on one machine or a Ray cluster")
    s.add_argument("config", help="a TOML run configuration")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set run.rounds=5 (repeatable)")
    s.add_argument("--out", help="output folder (default: run.out of the config)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--overwrite", action="store_true", help="replace a run already in the output folder")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in the output folder from its log (or start it if there is none)")
    s.add_argument("--loopback", action="store_true",
                   help="run a real coordinator and one client process per client over gRPC on 127.0.0.1")
    s.set_defaults(func=_simulate)
    x = sub.add_parser("experiments", help="run the experiment recipes (resumable), then build the results table")
    x.add_argument("--dir", help="recipe folder (default: the installed simulations/experiments)")
    x.add_argument("--only", action="append", metavar="GLOB", help="recipe names to run, e.g. 'sentiment_*'")
    x.add_argument("--out", default="runs/experiments", help="root of the run folders (one per recipe)")
    x.add_argument("--report", metavar="MD", help="then write the results table and plots, e.g. docs/results.md")
    x.add_argument("--keep", metavar="DIR",
                   help="copy each finished run's summary.json and metrics.jsonl to DIR/<recipe>, e.g. docs/runs")
    x.add_argument("--list", action="store_true", help="list the recipes and what each takes, run nothing")
    x.add_argument("--quiet", action="store_true", help="no per-round lines")
    x.set_defaults(func=_experiments)
    sv = sub.add_parser("server", help="run the coordinator (the run's tables plus a [server] table)")
    sv.add_argument("--config", required=True)
    sv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sv.set_defaults(func=_server)
    cl = sub.add_parser("client", help="run an edge client against a coordinator")
    cl.add_argument("--server", required=True, help="the coordinator's HOST:PORT")
    cl.add_argument("--config", required=True, help="a TOML file with a [client] table")
    cl.set_defaults(func=_client)
    k = sub.add_parser("keys", help="create Ed25519 client keys and the coordinator's allow-list (no TLS files)")
    k.add_argument("--out", required=True)
    k.add_argument("--clients", required=True, help="comma-separated client names; their order gives the indices")
    k.set_defaults(func=_keys)
    ins = sub.add_parser("inspect", help="per-round participation, bytes, metrics and checksums of a run")
    ins.add_argument("run", help="a run folder (or its log.sqlite)")
    ins.add_argument("--json", action="store_true", help="one JSON object per round")
    ins.set_defaults(func=_inspect)
    e = sub.add_parser("export", help="write a round of a run as a Hugging Face checkpoint")
    e.add_argument("run", help="a run folder (or its log.sqlite)")
    e.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    e.add_argument("--round", type=int, default=None, help="round to export (default: last)")
    e.add_argument("--out", required=True, help="output folder")
    e.set_defaults(func=_export)
    c = sub.add_parser("certs", help="create a CA, a server certificate and client certificates (PEM)")
    c.add_argument("--out", required=True, help="folder for the PEM files (must not hold a CA yet)")
    c.add_argument("--ca-out", default=None, help="folder for the CA's private key, kept apart from --out and "
                   "handed to no one (default: OUT-ca beside OUT)")
    c.add_argument("--server-names", default="localhost,127.0.0.1", help="comma-separated DNS names / IPs")
    c.add_argument("--clients", default="", help="comma-separated client names for mutual TLS")
    c.set_defaults(func=_certs)
    v = sub.add_parser("evaluate", help="score a Hugging Face checkpoint on a configuration's held-out set")
    v.add_argument("config")
    v.add_argument("--checkpoint", required=True, help="a Hugging Face causal-LM folder (e.g. from export)")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    v.set_defaults(func=_evaluate)
    r = sub.add_parser("report", help="compare finished runs: seeds of one config, or methods (--out results.md)")
    r.add_argument("runs", nargs="+", help="run folders")
    r.add_argument("--plot", help="write one PNG with every run's curve")
    r.add_argument("--title", default="")
    r.add_argument("--out", metavar="MD", help="instead: write the per-method results table and plots (markdown)")
    r.add_argument("--context", metavar="MD", help="with --out: append this markdown (e.g. the papers' numbers)")
    r.set_defaults(func=_report)
    i = sub.add_parser("info", help="print a run's log: strategy, fingerprint, per-round metrics")
    i.add_argument("run")
    i.set_defaults(func=_info)
    cs = sub.add_parser("config-schema", help="print the JSON Schema of a configuration file (every table and key)")
    cs.add_argument("kind", nargs="?", choices=("run", "server", "client"), default="run",
                    help="run (default: what simulate reads), server (the run tables plus [server]) or client")
    cs.set_defaults(func=_config_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"fedseed: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"fedseed: error: {msg}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a simulation worker or backend failed while running
        print(f"fedseed: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
