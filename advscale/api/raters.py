"""``advscale.validity``: the human study of invalid adversarial images (serve, rate, score)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advscale.core.logs import log_line
from advscale.errors import AdvscaleError

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

__all__ = ["validity_study"]


def _note(message: str) -> None:
    """A validity-library log line, without the prefix the command line adds itself."""
    log_line(log, message)


def default_labels_dir(adv: PathLike) -> Path:
    """Where the labels of ``adv`` go by default: ``ADV`` with suffix ``.labels``."""
    return Path(adv).with_suffix(".labels")


def validity_study(action: str, *args: Any, **options: Any) -> Any:
    """One ``validity`` action (Bartoldson et al. 2024, appendix G; docs/validity.md).

    * ``validity_study("serve", adv, port=8000, host="127.0.0.1", batch=100, out=None, rater=(),
      join=True, include_unfooled=False, scale=8, quiet=False, announce=None)``: serve the
      rating web page until interrupted; every answer is appended to ``out/<rater>.jsonl``.
    * ``validity_study("score", labels, adv, n_eval=None, min_correct=2, min_raters=1,
      majority_of="humans", summary_only=False, output=None)``: per-image ``validity.image``
      records, then a summary (written to ``output`` too when given).
    * ``validity_study("rate", adv, command, rater, out=None, ...)``: a command (e.g. a
      vision-language model) rates the images as a machine rater; its ``validity.rate`` record.
    """
    actions: dict[str, Callable[..., Any]] = {"serve": serve, "score": score, "rate": rate}
    if action not in actions:
        raise AdvscaleError(f"validity_study: unknown action {action!r}; choose from "
                            f"{', '.join(actions)}", field="action")
    return actions[action](*args, **options)


def serve(adv: PathLike, *, port: int = 8000, host: str = "127.0.0.1", batch: int = 100,
          out: PathLike | None = None, rater: Sequence[str] = (), join: bool = True,
          include_unfooled: bool = False, scale: int = 8, quiet: bool = False,
          announce: Callable[[str], None] | None = None) -> None:
    """``validity_study("serve", ...)``: see :func:`validity_study`. ``announce`` gets the
    lines a person needs (the page's address, the raters' links; default: logged);
    ``quiet``: no request log."""
    say = announce or log.info
    import signal

    from advscale.validity.advset import load_adv_set
    from advscale.validity.server import RatingApp, make_server, rater_link, server_url

    out = Path(out) if out is not None else default_labels_dir(adv)
    data = load_adv_set(adv)
    app_ = RatingApp(data, out, batch=batch, raters=list(rater), allow_join=join,
                     include_unfooled=include_unfooled, scale=scale, log=_note)
    httpd = make_server(app_, host, port, quiet=quiet)
    url = server_url(httpd)
    if host not in ("127.0.0.1", "localhost"):
        log.warning(f"warning: listening on {host}, reachable beyond this machine")
    n = len(app_.items)
    say(f"{n} image pairs of {adv} in {-(-n // batch)} tab(s) of {batch}; labels in {out}/")
    say(f"listening on {url}")
    for r in rater:
        say(f"  {r}: {rater_link(url, r, app_.token(r))}")
    if join:
        say(f"  new raters: open {url} and choose an id")
    for r in sorted(set(app_.store.raters()) - set(rater)):
        say(f"  {r} (resuming): {rater_link(url, r, app_.token(r))}")

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        say("stopped; every answer given is saved")
    finally:
        httpd.server_close()
        app_.close()


def score(labels: Sequence[PathLike], adv: PathLike, *, n_eval: int | None = None,
          min_correct: int = 2, min_raters: int = 1, majority_of: str = "humans",
          summary_only: bool = False, output: PathLike | None = None,
          force: bool = False) -> list[dict[str, Any]]:
    """``validity_study("score", ...)``: see :func:`validity_study`."""
    from advscale.core.outputs import check_output

    check_output(output, [adv, *labels], force=force)
    from advscale.api.recordio import save_records
    from advscale.validity.advset import load_adv_set
    from advscale.validity.records import score_records
    from advscale.validity.scoring import load_labels, score_labels

    data = load_adv_set(adv, images=False)
    records = load_labels(list(labels), log=_note)
    scores = score_labels(records, data, n_eval=n_eval, min_correct=min_correct,
                          min_raters=min_raters, majority_of=majority_of)
    config = {"labels": [str(p) for p in labels], "adv": str(adv), "n_eval": n_eval,
              "min_correct": min_correct, "min_raters": min_raters, "majority_of": majority_of}
    recs = score_records(scores.images, scores.summary, config, summary_only=summary_only)
    if output is not None:
        save_records(recs, output)
    s = scores.summary
    log.info(f"{s['n_fooled']} fooling images: {s['n_valid']} valid, {s['n_invalid']} invalid "
             f"({s['n_deceptive']} deceptive, {s['n_ambiguous']} ambiguous), {s['n_unrated']} "
             f"unrated; invalid {_pct(s['invalid_frac_rated'])} of the rated, "
             f"{_pct(s['invalid_frac'])} of all; robust acc {s['robust_acc']:.4f} -> "
             f"{s['robust_acc_valid']:.4f} without invalid images")
    if s["n_unrated"]:
        log.warning(f"warning: {s['n_unrated']} images have fewer than {min_raters} rater(s) "
                    "and are neither valid nor removed")
    return recs


def rate(adv: PathLike, command: str, rater: str, *, out: PathLike | None = None,
         per_image: bool = False, versions: str | Sequence[str] = "adv", scale: int = 1,
         timeout_s: float = 300.0, on_bad_reply: str = "error",
         prompt_file: PathLike | None = None, include_unfooled: bool = False,
         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """``validity_study("rate", ...)``: see :func:`validity_study`."""
    from advscale.validity.advset import load_adv_set
    from advscale.validity.machine_rater import PROMPT, CommandRater, rate_images
    from advscale.validity.records import rate_record
    from advscale.validity.store import LabelStore, check_rater_id

    check_rater_id(rater)
    given = versions.split(",") if isinstance(versions, str) else list(versions)
    vers = [v.strip() for v in given if v.strip()]
    if not vers or set(vers) - {"adv", "clean"}:
        raise AdvscaleError(f"versions {versions!r} must be adv, clean or adv,clean",
                            field="versions")
    prompt = PROMPT
    if prompt_file is not None:
        if not Path(prompt_file).is_file():
            raise AdvscaleError(f"{prompt_file}: no such prompt file", field="prompt_file")
        prompt = Path(prompt_file).read_text(encoding="utf-8").strip()
    out = Path(out) if out is not None else default_labels_dir(adv)
    data = load_adv_set(adv)
    rows = data.study_rows(include_unfooled)
    with LabelStore(out, data, rows=rows, kind="machine", log=_note) as store, \
            CommandRater(command, per_image=per_image, timeout_s=timeout_s) as asker:
        counts = rate_images(data, store, rater, asker.ask, versions=vers, rows=rows,
                             scale=scale, prompt=prompt, on_bad_reply=on_bad_reply, log=_note,
                             progress=progress)
    rec = rate_record(rater, str(adv), data.fingerprint, str(out), vers, counts, config={
        "command": command, "per_image": per_image, "scale": scale, "versions": vers,
        "on_bad_reply": on_bad_reply, "prompt_file": str(prompt_file) if prompt_file else None})
    log.info(f"{rater} rated {counts['n_rated']} images now ({counts['n_already']} done before, "
             f"{counts['n_bad_reply']} bad replies); labels in {out}/{rater}.jsonl")
    return rec


def _pct(frac: float | None) -> str:
    """A fraction as a percentage, or an em dash when there is none yet."""
    return "\u2014" if frac is None else f"{100 * frac:.1f}%"
