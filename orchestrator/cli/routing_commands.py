"""``switchyard route ...`` and ``switchyard eval ...``: ask, calibrate and measure the router.

Kept apart from ``cli.main`` so that file stays a list of commands; everything
heavier than Typer is imported inside the command that needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

console = Console()
if not console.is_terminal:
    console = Console(width=120)


class DefaultCommandGroup(TyperGroup):
    """Lets ``switchyard route "TEXT"`` keep working now that ``route`` has subcommands.

    Arguments that do not start with a subcommand's name go to ``explain``.
    """

    default_command = "explain"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # click or typer._click
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


route_app = typer.Typer(
    cls=DefaultCommandGroup,
    no_args_is_help=True,
    help='Ask the router: `switchyard route "TEXT"` explains a decision; `calibrate` sets one.',
)
eval_app = typer.Typer(no_args_is_help=True, help="Measure the router on labelled data.")

DataOpt = Annotated[list[Path], typer.Option("--data", help="File or directory (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ScorerOpt = Annotated[str | None, typer.Option(help="Scorer name (default: settings).")]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=1))


@route_app.command()
def explain(
    text: Annotated[str, typer.Argument(help="The prompt to route.")],
    max_tokens: Annotated[int, typer.Option()] = 512,
    image: Annotated[list[str] | None, typer.Option(help="Image URL(s) to attach.")] = None,
    scorer: ScorerOpt = None,
    quality: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    as_json: JsonOpt = False,
    strategy: Annotated[
        str | None, typer.Option(help="cascade: show the escalation path (PIPELINES.md)")
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="cost, latency, quality or balanced (COSTS.md)")
    ] = None,
) -> None:
    """Show every routing decision (tier, strong/weak) with its reasons, and the route plan."""
    from orchestrator.cli.routing_show import explain_text

    explain_text(
        console,
        text,
        max_tokens,
        image or [],
        scorer,
        quality,
        as_json,
        strategy=strategy,
        objective=objective,
    )


@route_app.command("job")
def job(
    job_id: Annotated[str, typer.Argument(help="A job id (job_...).")],
    tenant: Annotated[str, typer.Option(help="The tenant (name) that owns the job.")],
    as_json: JsonOpt = False,
) -> None:
    """Show the routing decisions stored with a job, as GET /v1/jobs/{id} returns them."""
    from orchestrator.cli.routing_show import show_job

    show_job(console, job_id, tenant, as_json)


@route_app.command()
def calibrate(
    strong_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Wanted strong share.")],
    scorer: ScorerOpt = None,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Your prompts (JSONL or CSV).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or routellm-csv")] = "jsonl",
    save: Annotated[Path | None, typer.Option(help="Write the calibration here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the score threshold that sends about STRONG_SHARE of requests to the strong model."""
    from orchestrator.core.config import get_settings
    from orchestrator.routing import calibration, get_scorer
    from orchestrator.routing.calibration import Calibration

    name = scorer or get_settings().router_scorer
    if data:
        from orchestrator.evaluation.data import read_prompts

        prompts = read_prompts(data, fmt)
        scores = [get_scorer(name).score(p).value for p in prompts]
        table = Calibration.from_scores(name, scores, f"{len(prompts)} prompts from {data[0]}")
    else:
        table = calibration.load(get_settings().router_calibration_path, name)
    threshold = table.threshold_for(strong_share)
    if save is not None:
        save.write_text(json.dumps(table.to_json(), indent=1) + "\n", encoding="utf-8")
    found = {"scorer": name, "strong_share": strong_share, "threshold": threshold}
    if as_json:
        _print_json({**found, "source": table.source, "saved": str(save) if save else None})
        return
    console.print(f"threshold [bold]{threshold:.4f}[/] sends ~{strong_share:.0%} of requests")
    console.print(f"  to the strong model (scorer {name}; calibrated on {table.source})")
    if save is not None:
        console.print(f"  saved to {save}: set SWITCHYARD_ROUTER_CALIBRATION_PATH={save}")


@eval_app.command("router")
def eval_router(
    data: DataOpt,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or routellm-csv")] = "jsonl",
    scorer: Annotated[list[str] | None, typer.Option(help="Scorer(s); first is main.")] = None,
    exclude: Annotated[
        list[Path] | None, typer.Option(help="JSONL of prompts to drop (eval_prompt/prompt).")
    ] = None,
    strong_column: Annotated[str | None, typer.Option(help="routellm-csv strong column")] = None,
    weak_column: Annotated[str | None, typer.Option(help="routellm-csv weak column")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the curve to this PNG.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """APGR and CPT(50%/80%) of scorers against the random and prompt-length baselines."""
    from orchestrator.cli.routing_show import run_eval_router

    run_eval_router(
        console,
        data,
        fmt,
        scorer or [],
        exclude or [],
        (strong_column, weak_column),
        plot,
        as_json,
    )


@eval_app.command("tiers")
def eval_tiers(
    data: DataOpt,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or mt-bench")] = "jsonl",
    model: Annotated[
        list[Path] | None, typer.Option("--model", help="A tier model file (repeatable).")
    ] = None,
    classifier: Annotated[
        list[str] | None, typer.Option(help="A classifier by name: model, rules (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy, macro-F1, per-tier precision/recall and confusion of the tier classifier.

    With several --model/--classifier, the first leads and the others are compared.
    """
    from orchestrator.cli.tier_commands import run_eval_tiers

    run_eval_tiers(console, data, fmt, as_json, model or [], classifier or [])


@route_app.command("train")
def train(
    out: Annotated[Path, typer.Option(help="The model file to write.")] = Path("tier_model.json"),
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="JSONL with prompt and tier (repeatable).")
    ] = None,
    from_jobs: Annotated[
        bool, typer.Option(help="Also learn from jobs with an explicit tier or good feedback.")
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's jobs.")] = None,
    corpus: Annotated[bool, typer.Option(help="Train with the shipped corpus too.")] = True,
    seed: Annotated[int, typer.Option()] = 21,
    as_json: JsonOpt = False,
) -> None:
    """Fit a tier model on your labelled prompts; load it with SWITCHYARD_ROUTER_MODEL_PATH."""
    from orchestrator.cli.tier_commands import run_train

    run_train(
        console,
        data or [],
        out,
        from_jobs=from_jobs,
        tenant=tenant,
        corpus=corpus,
        seed=seed,
        as_json=as_json,
    )
