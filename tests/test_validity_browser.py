"""End to end through a real page: headless Chromium (selenium + chromedriver) labels images.

Needs Debian's ``chromium`` and ``chromium-driver`` and pip ``selenium`` (the ``browser``
extra); skipped with the reason when any is missing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from browser import CHROMIUM, DRIVER, SKIP_REASON, chromium
from typer.testing import CliRunner

from advscale.records import loads_all, read_records
from advscale.validity.advset import load_adv_set
from advscale.validity.server import RatingApp, make_server, rater_link, server_url
from advscale.validity.store import LabelStore

webdriver = pytest.importorskip("selenium.webdriver", reason="pip package selenium not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason=SKIP_REASON)


@pytest.fixture
def browser(tmp_path):
    yield from chromium(tmp_path / "chromium-profile")


class Server:
    def __init__(self, adv_path: Path, out: Path) -> None:
        self.app = RatingApp(load_adv_set(adv_path), out, batch=5, raters=["alice"])
        self.httpd = make_server(self.app, "127.0.0.1", 0, quiet=True)
        self.url = server_url(self.httpd)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def link(self, rater: str) -> str:
        return rater_link(self.url, rater, self.app.token(rater))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.app.close()


def _wait_for(driver, item: int, version: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        return d.execute_script(
            "const t = document.getElementById('task');"
            "const b = document.getElementById('choice-high-0');"
            "return !t.hidden && t.dataset.item === arguments[0] && "
            "t.dataset.version === arguments[1] && document.body.dataset.ready === '1' && "
            "b !== null && !b.disabled;", str(item), version)

    WebDriverWait(driver, 15, poll_frequency=0.05).until(
        ready, f"page never showed item {item} ({version})")


def _click(driver, item: int, version: str, cls: int, conf: str) -> None:
    from selenium.webdriver.common.by import By

    _wait_for(driver, item, version)
    driver.find_element(By.ID, f"choice-{conf}-{cls}").click()


def test_label_in_browser_resume_after_restart_and_score(adv_h5, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path / "labels"
    # rows i: label i % 10, the model's adversarial prediction (i + 1) % 10
    plan = [(0, 0, "high"), (1, 2, "low"), (2, 2, "low")]
    server = Server(adv_h5, out)
    try:
        browser.get(server.link("alice"))
        assert "Guess the perturbed image" in browser.page_source
        assert "pickup" in browser.find_element(By.ID, "instructions").text
        img = browser.find_element(By.ID, "image")
        assert img.get_attribute("width") == "256"
        assert browser.execute_script(
            "return getComputedStyle(arguments[0]).imageRendering", img) in (
            "pixelated", "crisp-edges")
        for item, cls, conf in plan:
            _click(browser, item, "adv", cls, conf)
            _click(browser, item, "clean", item % 10, "high")  # clean: always right
        _wait_for(browser, 3, "adv")
        stats = browser.find_element(By.ID, "score-clean").text
        assert "100.0% (3 out of 3)" in stats, stats
        assert "(1 out of 3)" in browser.find_element(By.ID, "score-adv").text
    finally:
        server.close()

    path = out / "alice.jsonl"
    recs = list(read_records(path))
    assert [(r["row"], r["version"], r["choice"], r["confidence"]) for r in recs] == [
        (0, "adv", 0, "high"), (0, "clean", 0, "high"), (1, "adv", 2, "low"),
        (1, "clean", 1, "high"), (2, "adv", 2, "low"), (2, "clean", 2, "high")]
    assert all(r["response_s"] is not None and r["response_s"] >= 0 for r in recs)

    # a fresh server on the same directory: the same link resumes at the next unlabeled image
    server = Server(adv_h5, out)
    try:
        browser.get(server.link("alice"))
        _click(browser, 3, "adv", 4, "high")  # the model's class, confidently
        _wait_for(browser, 3, "clean")
        _click(browser, 3, "clean", 3, "high")
        _click(browser, 4, "adv", 4, "low")  # last pair of tab 0
        _click(browser, 4, "clean", 4, "low")
        WebDriverWait(browser, 15, poll_frequency=0.05).until(
            lambda d: d.find_element(By.ID, "next-tab").is_displayed(), "tab never finished")
        assert browser.find_element(By.ID, "tab-0").get_attribute("class") == "finished"
        browser.find_element(By.ID, "next-tab").click()
        _wait_for(browser, 5, "adv")
    finally:
        server.close()
    assert len(list(read_records(path))) == 10

    # a second human rates the same images without a browser; then the known split
    adv = load_adv_set(adv_h5)
    with LabelStore(out, adv) as store:
        for row, cls, conf in [(0, 5, "low"), (1, 2, "high"), (2, 7, "low"), (3, 3, "low"),
                               (4, 4, "low")]:
            store.add("bob", row, "adv", cls, conf)
    from advscale.cli.validity import app

    res = CliRunner().invoke(app, ["score", str(out), "--adv", str(adv_h5), "--min-raters", "2"])
    assert res.exit_code == 0, res.output
    *images, summary = loads_all(res.stdout)
    status = {im["row"]: im["status"] for im in images}
    # 0: alice right with high confidence; 1: both humans chose the model's class;
    # 2: one low-confidence right answer, no majority on the model's class;
    # 3: one right (low) and one with the model: a 1-1 tie is no majority; 4: both right (low)
    assert status == {0: "valid", 1: "deceptive", 2: "ambiguous", 3: "ambiguous", 4: "valid",
                      5: "unrated", 6: "unrated", 7: "unrated", 8: "unrated", 9: "unrated"}
    assert (summary["n_valid"], summary["n_deceptive"], summary["n_ambiguous"]) == (2, 1, 2)
    assert summary["robust_acc"] == pytest.approx(2 / 12)
    assert summary["robust_acc_valid"] == pytest.approx(2 / 9)


def test_new_rater_joins_on_the_page(adv_h5, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = Server(adv_h5, tmp_path / "labels")
    try:
        browser.get(server.url)
        browser.find_element(By.ID, "rater-id").send_keys("dora")
        browser.find_element(By.ID, "join-btn").click()
        _click(browser, 0, "adv", 3, "low")
        assert f"token={server.app.token('dora')}" in browser.current_url
        browser.get(server.url)  # the id is now taken
        browser.find_element(By.ID, "rater-id").send_keys("dora")
        browser.find_element(By.ID, "join-btn").click()
        WebDriverWait(browser, 15, poll_frequency=0.05).until(
            lambda d: "taken" in d.find_element(By.ID, "status").text)
    finally:
        server.close()
    (rec,) = read_records(tmp_path / "labels" / "dora.jsonl")
    assert (rec["row"], rec["version"], rec["choice"], rec["confidence"]) == (0, "adv", 3, "low")
