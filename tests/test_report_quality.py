"""The report's quality panels (issue 17): loss vs D per quality, a law across qualities
(Figure 5), N*/D* per quality; every quality named by its metric, never a bare "FID" for a
proxy."""

from __future__ import annotations

import re
import struct

import pytest
from browser import chromium
from typer.testing import CliRunner

from advscale.cli.main import app
from advscale.laws.fit import fit_law
from advscale.laws.presets import preset
from advscale.laws.simulate import simulate_runs
from advscale.records import dumps, loads_all, make_record
from advscale.report.laws import quality_laws
from advscale.report.metric import metric_label, quality_name
from advscale.report.page import build_report

TRUE3 = preset("bartoldson2024-approach3")["params"]
PROXY = "fd_pca64_n2000"
PROXY_LABEL = "fd_pca64_n2000 (proxy, not comparable to published FID)"
QUALITY_FIGURES = ["quality_fit_approach2.png", "quality_fit_approach3.png",
                   "quality_loss_vs_samples.png", "quality_optimal.png"]
QUALITY_TITLES = {"Loss vs samples per quality", "Law across qualities",
                  "N*, D* vs compute per quality"}


def _runs(fids, metric, seed=1):
    return simulate_runs(TRUE3, form="approach3", n_values=(1e6, 4e6, 1.6e7),
                         d_values=(1e6, 4e6, 1.6e7), fids=fids, fid_metric=metric,
                         noise=0.01, seed=seed)


def _fit(approach, recs):
    return make_record("fit", fit_law(approach=approach, records=recs, n_boot=0,
                                      exclusion=False))


@pytest.fixture(scope="module")
def proxy_study(tmp_path_factory):
    """Runs at two proxy qualities (the demo's fd_pca64_n2000 = 1.38 and 130.7) and the
    Approach 3 and Approach 2 laws fitted across them."""
    d = tmp_path_factory.mktemp("quality")
    recs = _runs((1.38, 130.7), PROXY)
    law3, law2 = _fit("3", recs), _fit("2", recs)
    assert law3["fid_metric"] == law2["fid_metric"] == PROXY
    (d / "runs.jsonl").write_text("".join(dumps(r) + "\n" for r in recs))
    (d / "law3.json").write_text(dumps(law3) + "\n")
    (d / "law2.json").write_text(dumps(law2) + "\n")
    return d, recs, law3, law2


def _texts(axes):
    """Every text an axes shows: title, labels, legend entries."""
    return [a["title"] for a in axes] + [a["xlabel"] for a in axes] + [
        a["ylabel"] for a in axes] + [t for a in axes for t in a["legend"]]


def _no_bare_fid(text: str) -> bool:
    """True when "FID" appears only inside the proxy's "not comparable to published FID"."""
    return "FID" not in text.replace("not comparable to published FID", "")


def test_metric_names():
    assert metric_label("fid") == "FID (Inception, published protocol)"
    assert metric_label(PROXY) == PROXY_LABEL
    assert "not comparable" in metric_label("fid_inception_n1000")
    assert quality_name(PROXY, 1.38) == "fd_pca64_n2000 = 1.38"
    assert quality_name("fid", 1.76) == "FID = 1.76"
    assert quality_name(PROXY, 0, "extrapolated") == "fd_pca64_n2000 = 0 (extrapolated)"


def test_quality_figures_are_drawn_with_axes_from_the_data(proxy_study, tmp_path):
    _, recs, law3, law2 = proxy_study
    summary = build_report(recs, tmp_path / "rep", laws=[law3, law2])
    names = sorted(p.split("/")[-1] for p in summary["figures"])
    assert set(QUALITY_FIGURES) <= set(names)
    assert not QUALITY_TITLES & {s["figure"] for s in summary["skipped"]}
    ds = [r["samples_seen"] for r in recs]
    losses = [r["adv_loss"] for r in recs]

    (loss,) = summary["axes"]["quality_loss_vs_samples.png"]
    assert loss["xscale"] == loss["yscale"] == "log"
    assert loss["xlabel"] == "training samples seen D" and loss["ylabel"].startswith("adv_loss")
    assert loss["xlim"][0] <= min(ds) and max(ds) <= loss["xlim"][1] < 3 * max(ds)
    assert loss["ylim"][0] <= min(losses) and max(losses) <= loss["ylim"][1] < 2 * max(losses)
    assert loss["legend"][:2] == ["fd_pca64_n2000 = 1.38", "fd_pca64_n2000 = 130.7"]
    assert loss["legend"][2:] == ["N = 1,000,000", "N = 4,000,000", "N = 16,000,000"]
    assert PROXY in loss["title"]

    for form in ("approach3", "approach2"):
        panels = summary["axes"][f"quality_fit_{form}.png"]
        assert [a["title"] for a in panels] == ["fd_pca64_n2000 = 1.38",
                                                "fd_pca64_n2000 = 130.7",
                                                "fd_pca64_n2000 = 0 (extrapolated)"]
        assert all(a["xscale"] == "log" and a["ylabel"] == "adv_loss" for a in panels)
        assert panels[0]["legend"] == [f"law, N = {n:,}" for n in (1_000_000, 4_000_000,
                                                                    16_000_000)]
        assert panels[0]["ylim"][0] <= min(losses) and panels[0]["ylim"][1] >= max(losses)

    opt = summary["axes"]["quality_optimal.png"]
    assert [a["ylabel"] for a in opt] == ["N* (parameters)", "D* (samples)"]
    assert opt[0]["legend"] == ["fd_pca64_n2000 = 0 (extrapolated)", "fd_pca64_n2000 = 1.38",
                                "fd_pca64_n2000 = 130.7", "Approach 3 (adv_loss)",
                                "Approach 2 (adv_loss)"]
    flops = [r["train_flops"] for r in recs]
    assert opt[0]["xlim"][0] < min(flops) and opt[0]["xlim"][1] > max(flops)
    assert all(a["yscale"] == "log" for a in opt)

    texts = [t for name in names for t in _texts(summary["axes"][name])]
    assert all(_no_bare_fid(t) for t in texts), [t for t in texts if not _no_bare_fid(t)]
    assert "fd_pca64_n2000 = 130.7" in summary["axes"]["law_fit.png"][0]["title"]


def test_page_names_the_proxy_in_captions_and_the_runs_table(proxy_study, tmp_path):
    _, recs, law3, _ = proxy_study
    build_report(recs, tmp_path / "rep", laws=[law3])
    page = (tmp_path / "rep" / "report.html").read_text()
    figs = re.findall(r"<figure[^>]*><h2>(.*?)</h2>.*?<figcaption>(.*?)</figcaption>", page, re.S)
    captions = [c for _, c in figs]
    quality = [c for t, c in figs if "per quality" in t or "across qualities" in t]
    assert len(quality) == 3
    assert all(PROXY_LABEL in c for c in quality)
    assert "Figure 5" in page and "<th>fd_pca64_n2000</th>" in page
    assert all(_no_bare_fid(c) for c in captions)


def test_cli_report_with_laws_draws_the_quality_figures(proxy_study, tmp_path):
    d, *_ = proxy_study
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["report", str(d / "runs.jsonl"), "--law", str(d / "law3.json"),
                                 "--law", str(d / "law2.json"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    (rec,) = loads_all(r.stdout)
    names = sorted(p.split("/")[-1] for p in rec["figures"])
    assert set(QUALITY_FIGURES) <= set(names)
    assert rec["axes"]["quality_fit_approach3.png"][0]["title"] == "fd_pca64_n2000 = 1.38"


def test_one_quality_lists_the_quality_figures_as_skipped(tmp_path):
    recs = _runs((2.0,), "fid")
    summary = build_report(recs, tmp_path / "rep",
                           laws=[preset("bartoldson2024-approach3")])
    skipped = {s["figure"]: s["reason"] for s in summary["skipped"]}
    assert QUALITY_TITLES <= set(skipped)
    for title in QUALITY_TITLES:
        assert "same quality (FID = 2)" in skipped[title]
        assert "two or more qualities" in skipped[title]
    assert not [p for p in summary["figures"] if p.split("/")[-1].startswith("quality_")]
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Figures left out" in page and "Loss vs samples per quality" in page


def test_two_qualities_without_a_quality_law(proxy_study, tmp_path):
    _, recs, _, _ = proxy_study
    one_fid = _fit("2", [r for r in recs if r["fid"] == 1.38])
    assert quality_laws([one_fid]) == []  # ε, ζ held at 0: the law holds at one FID only
    summary = build_report(recs, tmp_path / "rep", laws=[one_fid])
    names = [p.split("/")[-1] for p in summary["figures"]]
    assert "quality_loss_vs_samples.png" in names and "quality_optimal.png" not in names
    skipped = {s["figure"]: s["reason"] for s in summary["skipped"]}
    assert "no Approach 3 law" in skipped["Law across qualities"]
    assert "no Approach 3 law" in skipped["N*, D* vs compute per quality"]


def test_a_law_in_another_metric_is_not_drawn_over_the_runs(proxy_study, tmp_path):
    _, recs, _, _ = proxy_study
    summary = build_report(recs, tmp_path / "rep", laws=[preset("bartoldson2024-approach3")])
    skipped = {s["figure"]: s["reason"] for s in summary["skipped"]}
    assert "quality metric is fid, the runs' fd_pca64_n2000" in skipped["Law across qualities"]


def test_published_fid_and_real_data(tmp_path):
    recs = _runs((None, 1.76), "fid")
    summary = build_report(recs, tmp_path / "rep", laws=[preset("bartoldson2024-approach3")])
    (loss,) = summary["axes"]["quality_loss_vs_samples.png"]
    assert loss["legend"][:2] == ["FID = 0 (real data)", "FID = 1.76"]
    panels = summary["axes"]["quality_fit_approach3.png"]
    assert [a["title"] for a in panels] == ["FID = 0 (real data)", "FID = 1.76"]
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "FID (Inception, published protocol)" in page


def _png_width(path) -> int:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])[0]


def test_quality_figure_renders_in_headless_chromium(proxy_study, tmp_path):
    _, recs, law3, _ = proxy_study
    build_report(recs, tmp_path / "rep", laws=[law3])
    for driver in chromium(tmp_path / "profile", window="1300,1000"):
        driver.get((tmp_path / "rep" / "report.html").as_uri())
        found = driver.execute_script("""
            const img = Array.from(document.images).find(
                i => i.alt === 'quality_fit_approach3.png');
            if (!img) return null;
            img.scrollIntoView({block: 'center'});
            const r = img.getBoundingClientRect();
            const caption = img.closest('figure').querySelector('figcaption').textContent;
            return [img.complete, img.naturalWidth, r.left, r.top, r.width, r.height,
                    window.innerHeight, caption];""")
        assert found is not None, "the quality figure is not on the page"
        done, natural, left, top, width, height, inner, caption = found
        assert done and natural > 300 and width > 300 and height > 100
        assert -1 <= top and top + height <= inner + 1  # wholly in the viewport
        assert PROXY_LABEL in caption
        shot = tmp_path / "quality.png"
        driver.save_screenshot(str(shot))
        assert _png_width(shot) >= 1000
        _assert_drawn(shot, (left, top, width, height))


def _assert_drawn(shot, rect) -> None:
    """The screenshot shows a figure in ``rect`` (CSS px): many distinct colours, not blank."""
    image = pytest.importorskip("PIL.Image")
    with image.open(shot) as im:
        scale = im.width / 1300  # device pixels per CSS pixel
        left, top, width, height = (v * scale for v in rect)
        box = (max(0, int(left)), max(0, int(top)), int(left + width), int(top + height))
        crop = im.convert("RGB").crop(box)
        colours = crop.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the figure's area of the screenshot is blank"


def test_an_accuracy_law_is_drawn_as_the_accuracy_with_real_data_at_zero(tmp_path):
    recs = _runs((None, 1.38, 130.7), PROXY)
    law = make_record("fit", fit_law(approach="3", records=recs, target="robust_acc",
                                     n_boot=0, exclusion=False))
    assert law["quantity"] == "error" and law["fid_metric"] == PROXY
    summary = build_report(recs, tmp_path / "rep", laws=[law])
    panels = summary["axes"]["quality_fit_approach3.png"]
    assert [a["title"] for a in panels] == ["fd_pca64_n2000 = 0 (real data)",
                                            "fd_pca64_n2000 = 1.38", "fd_pca64_n2000 = 130.7"]
    accs = [r["robust_acc"] for r in recs if r["robust_acc"] > 0]
    assert panels[0]["ylabel"] == "robust_acc"
    assert min(accs) / 4 < panels[0]["ylim"][0] <= min(accs) and panels[0]["ylim"][1] < 2
