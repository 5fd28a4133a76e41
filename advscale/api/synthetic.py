"""``advscale.gen_synthetic``: synthetic training data with the EDM sampler, and its quality."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from advscale.api.recordio import check_output
from advscale.core.options import parse_shard
from advscale.errors import AdvscaleError
from advscale.synthetic.sampler import SamplerConfig

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

__all__ = ["SamplerConfig", "gen_synthetic"]

SAMPLER_FIELDS = ("sigma_min", "sigma_max", "rho", "s_churn", "s_min", "s_max", "s_noise",
                  "solver")
"""EDM sampler settings ``generate`` takes (None: the sampler's default)."""


def gen_synthetic(action: str, *args: Any, **options: Any) -> Any:
    """One ``gen-synthetic`` action (docs/synthetic.md); each returns its record(s).

    * ``gen_synthetic("generate", out, generator="builtin-gaussian", steps=18, num=50_000,
      shard=None, seed=0, batch_size=500, resume=False, data=None, model=None, ...,
      sigma_min=..., solver=..., device="auto", progress=None)``: one shard of a generation
      job into an HDF5 file; its ``synthetic`` record.
    * ``gen_synthetic("fit-gaussian", data, out, components=64, residual="none",
      fit_per_class=None)``: the builtin-gaussian fitted once and saved.
    * ``gen_synthetic("stitch", shards, out, real=())``: a job's shards (after ``real`` files)
      checked complete and stitched into one file.
    * ``gen_synthetic("fid", gen, ref, n=None, ...)``: FID/KID against a reference, honestly
      named; a ``synthetic.quality`` record.
    * ``gen_synthetic("export", pkl, edm_code, out, key="ema", num_classes=None)``: an NVlabs
      EDM pickle exported once with torch.export (unpickling runs code: trusted files only).
    * ``gen_synthetic("train-denoiser", data, run_dir, ...)``: the small EDM U-Net trained
      (resumable); an iterator of progress records.
    """
    actions: dict[str, Callable[..., Any]] = {
        "generate": generate, "fit-gaussian": fit_gaussian, "stitch": stitch_shards,
        "fid": quality, "export": export, "train-denoiser": train_denoiser}
    if action not in actions:
        raise AdvscaleError(f"gen_synthetic: unknown action {action!r}; choose from "
                            f"{', '.join(actions)}", field="action")
    return actions[action](*args, **options)


def generate(out: PathLike, *, generator: str = "builtin-gaussian", steps: int = 18,
             num: int = 50_000, shard: str | None = None, seed: int = 0,
             batch_size: int = 500, resume: bool = False, data: PathLike | None = None,
             model: PathLike | None = None, components: int = 64, residual: str = "none",
             fit_per_class: int | None = None, prediction_type: str | None = None,
             device: str = "auto", dtype: str = "fp32", compile: bool = False,
             progress: Callable[[int, int], None] | None = None, force: bool = False,
             **sampler: Any) -> dict[str, Any]:
    """``gen_synthetic("generate", ...)``: see :func:`gen_synthetic`."""
    from advscale.synthetic.generators import load_generator
    from advscale.synthetic.jobs import generate as run
    from advscale.synthetic.records import generation_record

    unknown = sorted(set(sampler) - set(SAMPLER_FIELDS))
    if unknown:
        raise AdvscaleError(f"unknown sampler setting(s) {', '.join(unknown)}", field=unknown[0])
    out = Path(out)
    shard_ik = parse_shard(shard) if shard is not None else (0, 1)
    check_output(out, [data, model], force=force or resume)  # resume continues out
    gen = load_generator(generator, data=data, model=model, device=device, dtype=dtype,
                         components=components, residual=residual,
                         fit_per_class=fit_per_class, prediction_type=prediction_type,
                         compile=compile)
    if not gen.is_trained_diffusion_model:
        log.warning(f"note: {getattr(gen, 'name', generator)} is NOT a trained diffusion "
                    "model; its samples exercise the pipeline (see docs/synthetic.md)")
    overrides = {k: sampler.get(k) for k in SAMPLER_FIELDS}
    summary = run(gen, out, num=num, steps=steps, seed=seed, batch_size=batch_size,
                  shard=shard_ik, resume=resume, sampler_overrides=overrides,
                  progress=progress, log=log.info)
    log.info(f"{out}: {summary['n']:,} images ({summary['rows_generated']:,} new), "
             f"{generator} {steps} steps (NFE {summary['nfe']}), {summary['wall_s']:.1f} s")
    config = {"generator": generator, "steps": steps, "num": num, "shard": shard,
              "batch_size": batch_size, "data": data, "model": model, **overrides}
    return generation_record(summary, config=config, seed=seed)


def fit_gaussian(data: PathLike, out: PathLike, *, components: int = 64,
                 residual: str = "none", fit_per_class: int | None = None,
                 force: bool = False) -> dict[str, Any]:
    """``gen_synthetic("fit-gaussian", ...)``: see :func:`gen_synthetic`."""
    check_output(out, [data], force=force)
    from advscale.synthetic.builtin_gaussian import gaussian_from_file
    from advscale.synthetic.records import gaussian_fit_record

    gen = gaussian_from_file(data, components=components, residual=residual,
                             max_per_class=fit_per_class)
    gen.save(out)
    log.info(f"{out}: class-conditional Gaussian ({gen.components} components) fitted to "
             f"{data}; NOT a trained diffusion model")
    return gaussian_fit_record(str(out), str(data), gen.attrs())


def stitch_shards(shards: Sequence[PathLike], out: PathLike, *,
                  real: Sequence[PathLike] = (), force: bool = False) -> dict[str, Any]:
    """``gen_synthetic("stitch", ...)``: see :func:`gen_synthetic`."""
    from advscale.data.records import info_record
    from advscale.synthetic.jobs import stitch_synthetic

    out = Path(out)
    if out.resolve() in {Path(p).resolve() for p in [*shards, *real]}:
        raise AdvscaleError(f"{out}: the output must not be one of the inputs", field="out")
    check_output(out, [*shards, *real], force=force)
    summary = stitch_synthetic(list(shards), out, real=list(real))
    log.info(f"{out}: {summary['n']:,} images from {len(shards)} shard(s)"
             + (f" and {len(real)} real file(s)" if real else ""))
    return info_record(summary)


def quality(gen: PathLike, ref: PathLike, *, seed: int = 0, force: bool = False,
            **options: Any) -> dict[str, Any]:
    """``gen_synthetic("fid", ...)``: see :func:`gen_synthetic`; ``options`` are
    :func:`advscale.synthetic.quality.measure_quality`'s (``n``, ``ref_n``, ``extractor``,
    ``inception_weights``, ``pca_dim``, ``classifier``, ``save_ref_stats``, ``annotate``,
    ``batch_size``, ``device``, ``progress``)."""
    from advscale.synthetic.quality import measure_quality
    from advscale.synthetic.records import quality_record

    check_output(options.get("save_ref_stats"), [gen, ref], force=force)
    result = measure_quality(gen, ref, seed=seed, **options)
    log.info(f"{gen}: {result['quality_metric']} = {result['quality_value']:.4g}, "
             f"{result['kid_metric']} = {result['kid_value']:.4g}"
             + ("" if result["comparable_to_published"]
                else " (not comparable to published FIDs)"))
    return quality_record(result, seed=seed)


def export(pkl: PathLike, edm_code: PathLike, out: PathLike, *, key: str = "ema",
           num_classes: int | None = None, force: bool = False) -> dict[str, Any]:
    """``gen_synthetic("export", ...)``: see :func:`gen_synthetic`."""
    check_output(out, [pkl], force=force)
    from advscale.synthetic.edm_export import export_edm_pickle
    from advscale.synthetic.records import export_record

    info = export_edm_pickle(pkl, edm_code, out, key=key, num_classes=num_classes)
    log.info(f"{out}: exported {info['source_name']} ({info['num_classes']} classes); it loads "
             "without unpickling code")
    return export_record(info)


def train_denoiser(data: PathLike, run_dir: PathLike, *, channels: int = 64,
                   channel_mult: str | Sequence[int] = "1,2,2", blocks: int = 2,
                   dropout: float = 0.1, **options: Any) -> Iterator[dict[str, Any]]:
    """``gen_synthetic("train-denoiser", ...)``: see :func:`gen_synthetic`; ``options`` are
    :func:`advscale.synthetic.builtin_unet.train_denoiser`'s (``kimg``, ``batch_size``, ``lr``,
    ``ema_kimg``, ``save_every_kimg``, ``seed``, ``device``, ``dtype``, ``resume``)."""
    from advscale.synthetic.builtin_unet import UNetConfig
    from advscale.synthetic.builtin_unet import train_denoiser as run

    try:
        mult = tuple(int(c) for c in (channel_mult.split(",") if isinstance(channel_mult, str)
                                      else channel_mult))
    except ValueError:
        raise AdvscaleError(f"channel_mult {channel_mult!r} must look like 1,2,2",
                            field="channel_mult") from None
    cfg = UNetConfig(channels=channels, channel_mult=mult, blocks=blocks, dropout=dropout)
    return run(data, run_dir, config=cfg, log=log.info, **options)
