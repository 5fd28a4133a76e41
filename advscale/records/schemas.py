"""One schema per record kind advscale writes: fields, types, units, required or optional.

``SCHEMAS[kind]`` is the machine-readable form of the record sections of ``docs/formats.md``
(section 2 lists the same kinds; a test keeps the two in step). :func:`validate` checks a record
against its kind's schema and raises :class:`RecordError` with one line naming the first problem.

What a schema says:

* every :class:`Field` has a type (``int``, ``number`` = int or float, ``str``, ``bool``,
  ``list``, ``dict`` or ``any``; several joined by ``|``), whether it is ``required`` (advscale's
  writer always emits it) and ``nullable``, and a ``unit`` (``FLOPs``, ``s``, ``kWh``, ``USD``,
  ``kg``, ``W``, ``count``, ``fraction``, ...); fields with unit ``fraction`` must lie in [0, 1];
* fields a schema does not list are allowed (readers ignore fields they do not know);
* a kind with no schema is an error in :func:`validate` (readers still accept such records).

Writers validate when ``ADVSCALE_STRICT_RECORDS=1`` (the test suite sets it; see
:func:`advscale.records.make_record`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from advscale.errors import AdvscaleError


class RecordError(AdvscaleError):
    """A malformed JSONL line or record."""


TYPES = ("int", "number", "str", "bool", "list", "dict", "any")
"""The type names a :class:`Field` may use (``|`` joins alternatives)."""


@dataclass(frozen=True)
class Field:
    """One payload field of a record kind."""

    name: str
    type: str
    unit: str = ""
    doc: str = ""
    required: bool = True
    nullable: bool = False

    def __post_init__(self) -> None:
        bad = set(self.type.split("|")) - set(TYPES)
        if bad:
            raise ValueError(f"field {self.name!r}: unknown type(s) {sorted(bad)}")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit this field, or None when it does."""
        if value is None:
            return None if self.nullable else "is null"
        types = self.type.split("|")
        if "any" in types or any(_is(value, t) for t in types):
            if isinstance(value, float) and not math.isfinite(value):
                return "is not finite"
            if self.unit == "fraction" and _is(value, "number") and not 0 <= value <= 1:
                return f"is {value!r}, not a fraction in [0, 1]"
            return None
        return f"has type {type(value).__name__}, expected {self.type}"


Check = Callable[[Mapping[str, Any]], "str | None"]
"""A rule across fields: returns why the record breaks it, or None."""


@dataclass(frozen=True)
class Schema:
    """The payload fields of one record kind, and rules across them."""

    kind: str
    doc: str
    fields: tuple[Field, ...]
    checks: tuple[Check, ...] = ()
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def problem(self, rec: Mapping[str, Any]) -> str | None:
        """The first way ``rec`` breaks this schema, in words, or None.

        A record imported from a table (``records import``) may hold null in a field its
        ``imported.unknown`` list names: the table does not have it.
        """
        unknown = imported_unknown(rec)
        for f in self.fields:
            if f.name not in rec:
                if f.required:
                    return f"lacks required field {f.name!r}"
                continue
            if rec[f.name] is None and f.name in unknown:
                continue
            why = f.problem(rec[f.name])
            if why:
                return f"field {f.name!r} {why}"
        for check in self.checks:
            why = check(rec)
            if why:
                return why
        return None


def imported_unknown(rec: Mapping[str, Any]) -> frozenset[str]:
    """The fields an imported record's table lacks (``imported.unknown``; empty otherwise)."""
    imp = rec.get("imported")
    names = imp.get("unknown") if isinstance(imp, dict) else None
    return frozenset(n for n in names if isinstance(n, str)) if isinstance(names, list) else (
        frozenset())


def _is(value: Any, t: str) -> bool:
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "str":
        return isinstance(value, str)
    if t == "bool":
        return isinstance(value, bool)
    if t == "list":
        return isinstance(value, list | tuple)
    if t == "dict":
        return isinstance(value, dict)
    return True


def F(name: str, type_: str, unit: str = "", doc: str = "", *, opt: bool = False,
      null: bool = False) -> Field:
    """Shorthand for :class:`Field` (``opt``: not always written; ``null``: may be null)."""
    return Field(name, type_, unit, doc, required=not opt, nullable=null)


def header_problem(rec: Mapping[str, Any]) -> str | None:
    """Why the record header (``kind``, ``schema``, ``provenance``) is malformed, or None."""
    if not isinstance(rec.get("kind"), str):
        return "record has no 'kind' string"
    if not isinstance(rec.get("schema"), int) or isinstance(rec.get("schema"), bool):
        return "record has no integer 'schema'"
    prov = rec.get("provenance")
    if not isinstance(prov, dict):
        return "record has no 'provenance' object"
    for key in ("advscale_version", "command", "time_utc", "host"):
        if not isinstance(prov.get(key), str):
            return f"provenance lacks the string {key!r}"
    if not isinstance(prov.get("config"), dict):
        return "provenance 'config' must be an object"
    seed = prov.get("seed")
    if seed is not None and not _is(seed, "int"):
        return f"provenance 'seed' must be an int or null, got {seed!r}"
    return None


def validate(rec: Mapping[str, Any], where: str = "") -> None:
    """Raise RecordError (one line, prefixed with ``where``) unless ``rec`` fits its schema."""
    prefix = f"{where}: " if where else ""
    why = header_problem(rec)
    if why:
        raise RecordError(f"{prefix}{why}")
    kind = rec["kind"]
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise RecordError(f"{prefix}unknown record kind {kind!r} (known: {', '.join(KINDS)})")
    why = schema.problem(rec)
    if why:
        raise RecordError(f"{prefix}{kind} record {why}")


def field_of(kind: str, name: str) -> Field | None:
    """The schema's field ``name`` of ``kind``, or None when the kind or field is unknown."""
    schema = SCHEMAS.get(kind)
    return schema.by_name.get(name) if schema is not None else None


# -- cross-field rules -------------------------------------------------------------------------
def _train_eval_rules(rec: Mapping[str, Any]) -> str | None:
    # null only where an imported record's table lacks the field (``imported.unknown``)
    why = _threat_model_rule(rec)
    if why:
        return why
    unique, seen = rec["samples_unique"], rec["samples_seen"]
    if unique is not None and seen is not None and unique > seen:
        return "samples_unique exceeds samples_seen"
    for d in rec["data"] or []:
        if not isinstance(d, dict) or set(DATA_SOURCE_FIELDS) - set(d):
            return f"data entries need fields {DATA_SOURCE_FIELDS}"
    tf, per = rec["train_flops"], rec["train_flops_per_sample"]
    if tf is not None and per is not None and seen is not None and not math.isclose(
        tf, per * seen, rel_tol=1e-9
    ):
        return "train_flops != samples_seen × train_flops_per_sample"
    return None


NORMS = ("linf", "l2")
"""Threat models a record's ``norm`` names (absent in records before schema 4: ``linf``)."""


def _threat_model_rule(rec: Mapping[str, Any]) -> str | None:
    """``norm`` is a known threat model and ``eps`` lies in its range (L∞: (0, 1]; L2:
    (0, 64])."""
    norm = rec.get("norm", "linf")
    if norm not in NORMS:
        return f"norm must be one of {', '.join(NORMS)}, got {norm!r}"
    eps, top = rec.get("eps"), 1.0 if norm == "linf" else 64.0
    if isinstance(eps, int | float) and not 0 < eps <= top:
        return (f"eps must lie in (0, {top:g}] for {norm} "
                + ("(a fraction of the pixel range)" if norm == "linf" else "(an L2 radius)"))
    return None


def _counts_rule(rec: Mapping[str, Any]) -> str | None:
    n = rec.get("chunk_n", rec.get("n"))
    if rec["robust_correct"] is None or rec["clean_correct"] is None:
        return None  # an imported record's table lacks the counts (``imported.unknown``)
    if isinstance(n, int) and not rec["robust_correct"] <= rec["clean_correct"] <= n:
        return "needs robust_correct <= clean_correct <= its images"
    return None


# -- the schemas --------------------------------------------------------------------------------
DATA_SOURCE_FIELDS = ("path", "source", "weight", "n", "fid")
"""Fields of each entry of ``train.eval``'s ``data`` list (``fid_metric`` and
``comparable_to_published`` are optional)."""

TRAIN_EVAL = Schema("train.eval", "an evaluation of the EMA model during `advscale train`", (
    F("run_id", "str", doc="the run (stable across resumes)"),
    F("model", "str", doc="wrn-D-W or a timm name"),
    F("activation", "str", null=True, doc="the model's activation; null for a model without "
      "an activation option"),
    F("model_kwargs", "dict", opt=True, doc="the model family's options the run built it with"),
    F("params", "int", "count", "trainable parameters N"),
    F("loss", "str", doc="trades | pgd-at | standard"),
    F("beta", "number", doc="TRADES beta (0 for other losses)"),
    F("pgd_steps", "int", "count", "training attack steps"),
    F("eps", "number", "pixel fraction", "radius of the norm's ball"),
    F("norm", "str", opt=True, doc="linf | l2 (schema 4; absent: linf)"),
    F("ema_decay", "number"),
    F("batch_size", "int", "count", "global batch"),
    F("lr", "number", doc="peak learning rate"),
    F("step", "int", "count", "optimizer steps"),
    F("samples_seen", "int", "count", "training samples D"),
    F("samples_unique", "int", "count"),
    F("data", "list", doc="one object per mixture source"),
    F("fid", "number", null=True, doc="mixture-weighted FID; null for real data only"),
    F("train_flops", "number", "FLOPs", null=True),
    F("train_flops_per_sample", "number", "FLOPs", null=True),
    F("wall_s", "number", "s"),
    F("train_loss", "number", null=True),
    F("eval_n", "int", "count"),
    F("eval_attack", "str", doc="pgd-cw-<steps>"),
    F("clean_acc", "number", "fraction"),
    F("robust_acc", "number", "fraction"),
    F("adv_loss", "number", null=True, doc="TRADES beta=5 loss under eval_attack"),
    F("final", "bool"),
    F("samples_target", "int", "count", opt=True),
    F("label_smoothing", "number", opt=True),
    F("world_size", "int", "count", opt=True),
    F("device", "str", opt=True),
    F("init", "str", opt=True, null=True, doc="checkpoint the run started from (--init)"),
    F("init_sha256", "str", opt=True, null=True, doc="SHA-256 of the --init file"),
    F("imported", "dict", opt=True, doc="records import: {map, row, derived, unknown}"),
), (_train_eval_rules,))

_ATTACK_SETTINGS = (
    F("run_id", "str", null=True, doc="from the checkpoint metadata"),
    F("model", "str", null=True),
    F("params", "int", "count"),
    F("checkpoint", "str", doc="path of the .safetensors file"),
    F("checkpoint_sha256", "str"),
    F("samples_seen", "int", "count", null=True),
    F("attack", "str", doc="a registered attack: aa-standard | aa-rand | apgd-ce | pgd-cw | "
      "pgd-cw-margin | pgd-ce"),
    F("norm", "str", opt=True, doc="linf | l2 (schema 4; absent: linf)"),
    F("eps", "number", "pixel fraction", doc="radius of the norm's ball"),
    F("steps", "int", "count", null=True),
    F("step_size", "number", "pixel fraction", null=True),
    F("n", "int", "count", "images evaluated"),
    F("batch_size", "int", "count"),
    F("chunk_size", "int", "count"),
    F("seed", "int"),
    F("data", "str", doc="test file path"),
    F("data_sha256", "str"),
    F("package", "str"),
    F("package_version", "str"),
    F("settings_key", "str"),
    F("gradient", "str", opt=True, doc="exact | bpda (MeanSparse straight-through); present "
      "when bpda ran or the model has MeanSparse layers"),
    F("precision", "str", opt=True, doc="bf16 | tf32 (absent: fp32, the leaderboard's)"),
    F("precision_note", "str", opt=True, doc="e.g. tf32 has no effect on CPU"),
)

ATTACK = Schema("attack", "one robustness evaluation of a checkpoint (`advscale attack`)", (
    *_ATTACK_SETTINGS,
    F("clean_acc", "number", "fraction"),
    F("robust_acc", "number", "fraction"),
    F("clean_correct", "int", "count"),
    F("robust_correct", "int", "count"),
    F("per_attack_robust", "dict", "count", null=True),
    F("chunks", "int", "count"),
    F("wall_s", "number", "s"),
    F("imported", "dict", opt=True, doc="records import: {map, row, derived, unknown}"),
), (_counts_rule, _threat_model_rule))

ATTACK_CHUNK = Schema("attack.chunk", "one finished chunk of an evaluation (resume state)", (
    *_ATTACK_SETTINGS,
    F("chunk", "int", doc="0-based chunk index"),
    F("chunks", "int", "count"),
    F("start", "int", doc="first test row"),
    F("stop", "int", doc="test row past the last"),
    F("chunk_n", "int", "count"),
    F("chunk_seed", "int"),
    F("clean_correct", "int", "count"),
    F("robust_correct", "int", "count"),
    F("per_attack_robust", "dict", "count", null=True),
    F("wall_s", "number", "s"),
), (_counts_rule, _threat_model_rule))

FLOPS = Schema("flops", "a model's training FLOPs (`advscale count-flops`)", (
    F("model", "str"),
    F("params", "int", "count"),
    F("loss", "str"),
    F("pgd_steps", "int", "count"),
    F("forward_flops_per_image", "number", "FLOPs"),
    F("train_flops_per_sample", "number", "FLOPs"),
    F("forward_multiple", "number"),
    F("flops_per_param_sample", "number", "FLOPs"),
    F("samples", "number", "count", null=True),
    F("train_flops", "number", "FLOPs", null=True),
    F("convention", "str"),
    F("counting", "str"),
    F("activation", "str", opt=True, null=True),
    F("model_kwargs", "dict", opt=True, doc="the model family's options it was built with"),
    F("batch_size", "int", "count", opt=True),
    F("constant", "number", "FLOPs", opt=True),
    F("constant_rel_error", "number", opt=True),
    F("robustbench_id", "str", opt=True, doc="count-flops --robustbench-id"),
    F("number_forward_passes", "int", "count", opt=True,
      doc="RobustBench's forward passes per prediction"),
))

ENERGY = Schema("energy", "energy, cost and CO2 of a run, log or FLOPs (`advscale energy`)", (
    F("basis", "str", doc="measured | estimated | mixed"),
    F("measured", "bool"),
    F("notice", "str", opt=True),
    F("mode", "str", doc="run | log | flops | table (records import)"),
    F("command", "list", opt=True),
    F("exit_code", "int", opt=True),
    F("signals", "list", opt=True),
    F("cpu_s", "number", "s", opt=True),
    F("interval_s", "number", "s", opt=True, null=True),
    F("log", "str", opt=True),
    F("rows_skipped", "int", "count", opt=True),
    F("flops", "number", "FLOPs", opt=True),
    F("accelerator", "str", opt=True),
    F("precision", "str", opt=True),
    F("peak_flops_per_s", "number", "FLOPs/s", opt=True),
    F("utilization", "number", "fraction", opt=True),
    F("board_power_w", "number", "W", opt=True),
    F("accelerator_source", "str", opt=True),
    F("gpu_s", "number", "s", opt=True),
    F("gpu_hours", "number", "h", opt=True),
    F("run_id", "str", opt=True, null=True, doc="the run it belongs to, when known"),
    F("duration_s", "number", "s"),
    F("devices", "list"),
    F("it_energy_kwh", "number", "kWh"),
    F("measured_energy_kwh", "number", "kWh"),
    F("estimated_energy_kwh", "number", "kWh"),
    F("pue", "number"),
    F("facility_energy_kwh", "number", "kWh"),
    F("usd_per_kwh", "number", "USD/kWh"),
    F("cost_usd", "number", "USD"),
    F("co2_g_per_kwh", "number", "g/kWh"),
    F("co2_kg", "number", "kg"),
    F("figures", "dict"),
    F("assumptions", "dict"),
    F("unavailable", "dict"),
    F("estimate_source", "str", opt=True, doc="where an estimate's figures came from"),
    F("imported", "dict", opt=True, doc="records import: {map, row, derived, unknown}"),
))

FIT = Schema("fit", "a fitted scaling law (`advscale fit`)", (
    F("approach", "str", doc="1 | 2 | 3 | power-law | gbr"),
    F("form", "str", opt=True),
    F("target", "str"),
    F("quantity", "str", opt=True, doc="loss | error | accuracy"),
    F("points", "str", doc="final | best | all"),
    F("filters", "list"),
    F("exclusion", "dict"),
    F("seed", "int", null=True),
    F("data", "dict"),
    F("fid_inputs", "dict", opt=True),
    F("n_points", "int", "count"),
    F("n_runs", "int", "count"),
    F("r2", "number", opt=True, null=True),
    F("rmse", "number", opt=True, null=True),
    F("params", "dict", opt=True),
    F("derived", "dict", opt=True),
    F("stats", "dict", opt=True),
    F("flops_per_param_sample", "number", "FLOPs", opt=True, null=True),
    F("flops_per_param_sample_source", "str", opt=True, null=True),
    F("loss_to_accuracy", "dict", opt=True, null=True),
    F("bootstrap", "dict", opt=True),
    F("protocol", "dict", opt=True, doc="the fitting protocol's resolved choices"),
    F("anchoring", "dict", opt=True, doc="approach 2 anchored at the base FID"),
    F("fid_metric", "str", opt=True, null=True, doc="the one quality metric of the FIDs"),
    F("x", "str", opt=True, doc="power law: the field the law is of (train_flops)"),
    F("x_range", "list", opt=True, doc="power law: the fitted x span"),
    F("feature_warnings", "list", opt=True, doc="gbr: missing, constant, duplicate features; "
      "importances from a degenerate subgroup"),
    F("feature_importances", "dict", opt=True, doc="gbr: importance per recipe feature"),
    F("importance_spread", "dict", opt=True, doc="gbr: {feature: {mean, std, min, max}} over "
      "split seeds (schema 3)"),
    F("predictions", "list", opt=True, doc="gbr: {run_id, actual, predicted, held_out} per run "
      "(schema 3)"),
    F("backtest", "dict", opt=True, doc="fit --holdout: per-run errors and band coverage "
      "(schema 3)"),
    F("paper_units", "dict", opt=True, doc="power law: the fit in the paper's units (schema 3)"),
))

PREDICTION = Schema("prediction", "one query answered by a law (`advscale predict`)", (
    F("law", "str"),
    F("form", "str"),
    F("target", "str"),
    F("quantity", "str"),
    F("query", "dict"),
    F("flops_per_param_sample", "number", "FLOPs", opt=True, null=True),
    F("fid_warning", "str", opt=True),
    F("q", "number", opt=True, null=True),
    F("train_flops", "number", "FLOPs", opt=True, null=True),
    F("q_inf", "number", opt=True, null=True),
    F("n_opt", "number", "count", opt=True, null=True),
    F("d_opt", "number", "count", opt=True, null=True),
    F("q_opt", "number", opt=True, null=True),
    F("omega_n", "number", opt=True, null=True),
    F("omega_d", "number", opt=True, null=True),
    F("compute_overhead", "number", opt=True, null=True),
    F("accuracy", "number", opt=True, null=True),
    F("a", "number", opt=True, null=True, doc="N* ∝ FLOPs^a (Table 3)"),
    F("b", "number", opt=True, null=True, doc="D* ∝ FLOPs^b (Table 3)"),
    F("a_local", "number", opt=True, null=True, doc="d ln N*/d ln FLOPs at the budget"),
    F("b_local", "number", opt=True, null=True, doc="d ln D*/d ln FLOPs at the budget"),
    F("bands", "dict", opt=True),
    F("band_level", "number", opt=True),
    F("bootstrap_samples", "int", "count", opt=True),
    F("fid_metric", "str", opt=True, null=True, doc="the law's quality metric (FID inputs)"),
    F("x", "str", opt=True, doc="a power law's x field when not FLOPs"),
    F("target_value", "number", opt=True, doc="inverse: the fitted quantity targeted"),
    F("reachable", "bool", opt=True, doc="inverse: some budget reaches the target"),
    F("flops_needed", "number", "FLOPs", opt=True, null=True, doc="inverse: least FLOPs"),
    F("accuracy_clipped", "list", opt=True, doc="accuracies clipped into [0, 1]"),
    F("extrapolation", "dict", opt=True, null=True, doc="× beyond the fitted ranges"),
    F("extrapolation_warning", "str", opt=True),
    F("degenerate", "str", opt=True, doc="N* or D* < 1: reported instead of numbers"),
    F("e_prime", "number", opt=True, null=True, doc="Table 3's E′ at the FID"),
    F("asymptote_kind", "str", opt=True, doc="what q_inf is: E′, or E′ plus the quality floor"),
    F("exponents_note", "str", opt=True, doc="why a, b are absent (FID-dependent exponents)"),
    F("models", "list", opt=True, doc="with flops: WRNs nearest N* {name, params, "
      "flops_per_sample, n_over_n_opt, registered}"),
    F("run", "str", opt=True, doc="a published (or own) run placed on the law"),
    F("published_run", "dict", opt=True, doc="that run's table entry, with its sources"),
    F("placed", "bool", opt=True, doc="false when the run's N or D is not stated"),
    F("flops_optimal_for_loss", "number", "FLOPs", opt=True, null=True,
      doc="least FLOPs a compute-optimal run needs for the run's predicted loss"),
    F("flops_saving", "number", opt=True, null=True, doc="1 − that / the run's FLOPs"),
))

DATA_INFO = Schema("data.info", "a summary of an HDF5 image file (`advscale data`)", (
    F("path", "str"),
    F("n", "int", "count", "valid rows"),
    F("rows_allocated", "int", "count", opt=True),
    F("image_shape", "list", opt=True),
    F("image_dtype", "str", opt=True),
    F("label_dtype", "str", opt=True),
    F("class_names", "list", opt=True),
    F("class_counts", "list", opt=True),
    F("contiguous", "bool", opt=True),
    F("virtual", "bool", opt=True),
    F("has_seeds", "bool", opt=True),
    F("attrs", "dict", opt=True),
    F("pixel_stats_rows", "int", "count", opt=True),
    F("pixel_min", "int", "0-255", opt=True),
    F("pixel_max", "int", "0-255", opt=True),
    F("pixel_mean", "number", "fraction", opt=True),
    F("synthetic_job", "dict", opt=True),
    F("synthetic_rows", "list", opt=True),
))

SYNTHETIC = Schema("synthetic", "one generation run (`advscale gen-synthetic`)", (
    F("path", "str"),
    F("n", "int", "count"),
    F("rows_generated", "int", "count"),
    F("resumed_from", "int", "count"),
    F("shard", "str", doc="i/k"),
    F("generator", "str", opt=True),
    F("steps", "int", "count", opt=True),
    F("nfe", "int", "count", opt=True),
    F("seed", "int", opt=True),
    F("num_total", "int", "count", opt=True),
    F("flops_per_image", "number", "FLOPs"),
    F("gen_flops", "number", "FLOPs"),
    F("device", "str"),
    F("wall_s", "number", "s"),
    F("images_per_s", "number", null=True),
))

SYNTHETIC_QUALITY = Schema("synthetic.quality", "FID/KID of generated images (`fid`)", (
    F("path", "str"),
    F("ref", "str"),
    F("ref_source", "str", null=True),
    F("n", "int", "count"),
    F("ref_n", "int", "count"),
    F("extractor", "str", opt=True),
    F("extractor_sha256", "str", opt=True, null=True),
    F("extractor_path", "str", opt=True, null=True),
    F("feature_dim", "int"),
    F("quality_metric", "str"),
    F("quality_value", "number"),
    F("comparable_to_published", "bool"),
    F("kid_metric", "str"),
    F("kid_value", "number", null=True),
    F("kid_std", "number", null=True),
    F("kid_subsets", "int", "count"),
    F("kid_subset_size", "int", "count"),
    F("protocol", "str"),
    F("label_agreement", "number", "fraction", null=True),
    F("classifier", "str", opt=True),
    F("classifier_sha256", "str", opt=True),
    F("ref_label_agreement", "number", "fraction", opt=True, null=True),
    F("gen_class_counts", "list"),
    F("wall_s", "number", "s"),
    F("fid", "number", opt=True, doc="only when comparable_to_published"),
))

SYNTHETIC_EXPORT = Schema("synthetic.export", "an exported EDM network (`gen-synthetic export`)", (
    F("path", "str", opt=True),
    F("format", "str"),
    F("format_version", "int"),
    F("interface", "str", opt=True),
    F("num_classes", "int", "count"),
    F("image_shape", "list"),
    F("sigma_min", "number"),
    F("sigma_max", "number"),
    F("sigma_data", "number"),
    F("flops_per_call", "number", "FLOPs"),
    F("torch_version", "str", opt=True),
    F("source_name", "str", opt=True),
    F("source_sha256", "str", opt=True),
    F("source_class", "str", opt=True),
    F("label_dim", "int", opt=True),
    F("licence", "str", opt=True),
))

SYNTHETIC_FIT = Schema("synthetic.fit", "a fitted builtin-gaussian (`fit-gaussian`)", (
    F("path", "str"),
    F("data", "str"),
    F("generator", "str", opt=True),
    F("generator_fingerprint", "str", opt=True),
    F("is_trained_diffusion_model", "int|bool", opt=True),
))

SYNTHETIC_DENOISER = Schema("synthetic.denoiser", "a checkpoint of `train-denoiser`", (
    F("run_dir", "str"),
    F("kimg", "number", "thousand images"),
    F("step", "int", "count"),
    F("loss", "number", null=True),
    F("lr", "number"),
    F("params", "int", "count"),
    F("denoiser_flops_per_call", "number", "FLOPs"),
    F("train_flops", "number", "FLOPs"),
    F("wall_s", "number", "s"),
    F("images_per_s", "number", null=True),
    F("checkpoint", "str"),
    F("final", "bool"),
))

VALIDITY_LABEL = Schema("validity.label", "one rater's answer (`validity serve|rate`)", (
    F("rater", "str"),
    F("rater_kind", "str", doc="human | machine"),
    F("adv_fingerprint", "str"),
    F("row", "int"),
    F("index", "int"),
    F("version", "str", doc="adv | clean"),
    F("choice", "int", null=True),
    F("choice_name", "str", null=True),
    F("confidence", "str", null=True, doc="low | high"),
    F("label", "int"),
    F("correct", "bool"),
    F("model_pred", "int"),
    F("agrees_with_model", "bool"),
    F("response_s", "number", "s", null=True),
    F("reply", "str", opt=True),
))

VALIDITY_IMAGE = Schema("validity.image", "one fooling image judged (`validity score`)", (
    F("row", "int"),
    F("index", "int"),
    F("label", "int"),
    F("label_name", "str"),
    F("pred_adv", "int"),
    F("pred_adv_name", "str"),
    F("attack", "str"),
    F("status", "str", doc="valid | deceptive | ambiguous | unrated"),
    F("valid", "bool", null=True),
    F("n_raters", "int", "count"),
    F("n_human_raters", "int", "count"),
    F("n_correct", "int", "count"),
    F("n_correct_human_high", "int", "count"),
    F("n_majority_pool", "int", "count"),
    F("n_pool_agree_model", "int", "count"),
    F("votes", "dict", "count"),
    F("n_clean_raters", "int", "count"),
    F("n_clean_correct", "int", "count"),
    F("labels", "list"),
))

VALIDITY_SUMMARY = Schema("validity.summary", "the result of `validity score`", (
    F("adv_path", "str"),
    F("adv_fingerprint", "str"),
    F("model", "str", null=True),
    F("checkpoint_sha256", "str", null=True),
    F("eps", "number", "pixel fraction", null=True),
    F("rule", "str"),
    F("min_correct", "int"),
    F("min_raters", "int"),
    F("majority_of", "str"),
    *(F(name, "int", "count") for name in (
        "n_eval", "n_model_correct", "n_fooled", "n_valid", "n_invalid", "n_deceptive",
        "n_ambiguous", "n_unrated", "n_eval_valid", "n_raters", "n_human_raters",
        "n_machine_raters", "n_labels_ignored")),
    *(F(name, "number", "fraction", null=True) for name in (
        "invalid_frac", "deceptive_frac_of_invalid", "robust_acc", "robust_acc_valid",
        "human_acc_bound", "human_acc_bound_valid", "rater_acc_bound",
        "rater_acc_bound_valid")),
    F("invalid_frac_rated", "number", "fraction", "invalid images / rated fooling images",
      opt=True, null=True),
    F("raters", "list"),
))

VALIDITY_RATE = Schema("validity.rate", "one run of a machine rater (`validity rate`)", (
    F("rater", "str"),
    F("rater_kind", "str"),
    F("adv_path", "str"),
    F("adv_fingerprint", "str"),
    F("labels_dir", "str"),
    F("versions", "list"),
    *(F(name, "int", "count") for name in (
        "n_requests", "n_already", "n_rated", "n_correct", "n_bad_reply", "n_skipped")),
))

REPORT = Schema("report", "what `advscale report` wrote", (
    F("report", "str", doc="path of report.html"),
    F("figures", "list", doc="paths of the PNG files"),
    F("runs", "int", "count"),
    F("laws", "int", "count"),
    F("held_out", "list", doc="per held-out run: actual vs predicted"),
    F("skipped", "list", opt=True, doc="figures left out: {figure, reason}"),
    F("axes", "dict", opt=True, doc="per PNG: each axes' labels, scales, limits, legend, "
      "points per scatter, samples per line"),
    F("law_names", "list", opt=True, doc="each law as named: preset name, file path or kind"),
    F("drawn_on", "dict", opt=True, doc="law name -> the PNG files it is drawn on"),
))

MODEL_INFO = Schema("model.info", "a model checkpoint's summary (`advscale model info/import`)", (
    F("path", "str"),
    F("sha256", "str"),
    F("checkpoint_format", "str", doc="advscale checkpoint format version"),
    F("imported_on_the_fly", "bool", doc="the file is not an advscale checkpoint"),
    F("model", "str"),
    F("params", "int", "count"),
    F("num_classes", "int", "count"),
    F("activation", "str", null=True, doc="null for a model without an activation option"),
    F("activation_source", "str"),
    F("padding", "str", null=True),
    F("mean", "list", null=True),
    F("std", "list", null=True),
    F("ema", "bool", null=True, doc="None: the source file held one copy"),
    F("source", "dict"),
    F("model_kwargs", "dict", opt=True, doc="the options that rebuild the model"),
))

MODEL_ARCH = Schema("model.arch", "a registered architecture's size (`advscale model list "
                    "--params`, `model info NAME`)", (
    F("model", "str"),
    F("family", "str", doc="the registered name or family pattern it belongs to"),
    F("params", "int", "count"),
    F("forward_flops_per_image", "number", "FLOPs"),
    F("image_size", "int", "pixels"),
    F("num_classes", "int", "count"),
    F("model_kwargs", "dict"),
    F("options", "list", doc="keyword options the family takes (null: timm's own)", null=True),
    F("activation", "str", null=True),
))

SCHEMAS: dict[str, Schema] = {s.kind: s for s in (
    TRAIN_EVAL, ATTACK, ATTACK_CHUNK, FLOPS, ENERGY, FIT, PREDICTION, DATA_INFO, SYNTHETIC,
    SYNTHETIC_QUALITY, SYNTHETIC_EXPORT, SYNTHETIC_FIT, SYNTHETIC_DENOISER, VALIDITY_LABEL,
    VALIDITY_IMAGE, VALIDITY_SUMMARY, VALIDITY_RATE, REPORT, MODEL_INFO, MODEL_ARCH,
)}
"""Every record kind advscale writes, by kind."""

KINDS: tuple[str, ...] = tuple(SCHEMAS)
"""The record kinds advscale writes (docs/formats.md, section 2). Readers accept others too."""
