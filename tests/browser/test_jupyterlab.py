"""What a reader sees in JupyterLab: notebooks 01–05 in headless Chromium, as a reader uses them.

For each notebook: before running, every panel shows a line saying to run the cells (never a Python repr),
and every slider panel without a button its figure; after Run All, no error output, no browser console
error and no blank figure; in notebooks 01–03 and 05 every slider, moved with the keyboard, redraws its figure;
notebook 03's Run button finishes with the defaults and reports divergence at the largest step sizes;
notebook 04's Run button finishes with no bug ticked and with every bug ticked. Notebook 03 is run ten times in all (Run All, then
nine times more from a restarted kernel), each time with every output and figure checked. Screenshots and the measured redraw times go to
``tests/browser/screenshots/`` (git-ignored). Run with ``make test-browser``.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import pytest


NOTEBOOKS = ["01_maml_objective.ipynb", "02_first_order_maml.ipynb", "03_fomaml_mnist.ipynb", "04_classic_bugs.ipynb",
             "05_fast_fomaml.ipynb"]
SLIDER_NOTEBOOKS = NOTEBOOKS[:3] + NOTEBOOKS[4:]  # those with instant slider panels (notebook 04 has only a button panel)
NOTES = {"04_classic_bugs.ipynb": "Run the cells above to use the checkboxes and the button"}
"""The stored line of each notebook's panels, where it is not the sliders' one."""
SLIDER_NOTE = "Run the cells above to use the sliders"
STATIC_NOTE_TEXT = "until then, this is what they show"  # only panels without a button store figures
RUN_ALL_TIMEOUT = 600  # seconds; notebook 03, the slowest, runs in under four minutes on 2 cores
REPEATS_03 = 10
NON_WHITE = 0.005  # a figure has at least this fraction of non-white pixels; an empty one has none
PANEL = ".fomaml-figure-panel"

NON_WHITE_FRACTIONS = """
async (images) => Promise.all(images.map(async (img) => {
    try { await img.decode(); } catch (e) { return -1; }  // not an image at all
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    if (!canvas.width || !canvas.height) return 0;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let dark = 0;
    for (let i = 0; i < data.length; i += 4)
        if (data[i + 3] > 0 && (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240)) dark++;
    return dark / (data.length / 4);
}))
"""

PROMPTS = """
() => [...document.querySelectorAll(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")].map(p => p.textContent.trim())
"""

PROMPTS_CLEARED = """
() => [...document.querySelectorAll(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")]
          .every(p => !/\\d/.test(p.textContent))
"""

report: dict[str, list[str]] = {}


class NotebookPage:
    """One notebook open in JupyterLab, with the browser console errors seen since it opened."""

    def __init__(self, browser, lab, name: str, shots: Path):
        self.name, self.shots = name, shots
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.console_errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.goto(lab.address(name))
        self.page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
        self.wait_idle(timeout=120)
        self.wait_rendered()
        self.runs = 0

    def wait_rendered(self, timeout: float = 60) -> None:
        """Until the number of outputs and of loaded images has stopped changing for a second."""
        count = "() => [document.querySelectorAll('.jp-OutputArea-output').length, " \
                "[...document.images].filter(i => i.complete).length]"
        last, stable_since, deadline = None, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.page.evaluate(count)
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 1.0:
                return
            time.sleep(0.1)

    def wait_idle(self, timeout: float) -> None:
        self.page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=timeout * 1000)

    def menu(self, menu: str, item: str) -> None:
        self.page.get_by_role("menuitem", name=menu, exact=True).click()
        self.page.get_by_role("menuitem", name=item, exact=True).click()

    def run_all(self, restart: bool = False) -> float:
        """Run All (after restarting the kernel if ``restart``); returns seconds until every cell has run."""
        start = time.monotonic()
        # Cleared first, so that no output or execution count of an earlier run can pass for this one's.
        self.menu("Edit", "Clear Outputs of All Cells")
        self.page.wait_for_function(PROMPTS_CLEARED, timeout=30_000)
        if restart:
            self.menu("Kernel", "Restart Kernel and Run All Cells…")
            self.page.locator(".jp-Dialog .jp-mod-accept").click()
        else:
            self.menu("Run", "Run All Cells")
        deadline = start + RUN_ALL_TIMEOUT
        while time.monotonic() < deadline:
            prompts = self.page.evaluate(PROMPTS)
            if all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"{self.name}: Run All did not finish within {RUN_ALL_TIMEOUT} s; prompts {prompts}")
        self.wait_idle(timeout=60)
        self.wait_rendered()
        self.runs += 1
        return time.monotonic() - start

    def outputs(self, mime: str) -> list[str]:
        return self.page.locator(f'.jp-OutputArea-output[data-mime-type="{mime}"]').all_inner_texts()

    def figure_fractions(self, selector: str = ".jp-OutputArea-output img") -> list[float]:
        images = self.page.locator(selector).element_handles()
        return self.page.evaluate(NON_WHITE_FRACTIONS, images) if images else []

    def screenshot(self, label: str, locator=None) -> str:
        """The window, or one element (scrolled into view), saved as ``<notebook>-<label>.png``."""
        path = self.shots / f"{Path(self.name).stem}-{label}.png"
        (locator or self.page).screenshot(path=path)
        return path.name

    def panel(self, index: int):
        return self.page.locator(PANEL).nth(index)

    def panel_images(self, index: int) -> list[str]:
        return self.panel(index).locator("img").evaluate_all("images => images.map(i => i.src)")

    def panel_text(self, index: int) -> str:
        return self.panel(index).locator(".widget-html-content").first.inner_text()


@pytest.fixture(scope="module")
def pages(browser, lab, screenshots):
    opened: dict[str, NotebookPage] = {}

    def page(name: str, run: bool = True) -> NotebookPage:
        if name not in opened:
            opened[name] = NotebookPage(browser, lab, name, screenshots)
        if run and not opened[name].runs:
            seconds = opened[name].run_all()
            report.setdefault(name, []).append(f"Run All: {seconds:.0f} s")
        return opened[name]

    yield page
    for notebook in opened.values():
        notebook.page.close()
    lines = ["# Browser test: what was measured", ""]
    for name, items in report.items():
        lines += [f"## {name}", *[f"- {item}" for item in items], ""]
    (screenshots / "report.md").write_text("\n".join(lines))


def check_after_run(notebook: NotebookPage) -> None:
    errors = [t for t in notebook.outputs("application/vnd.jupyter.stderr") if re.search(r"Traceback|\w+Error\b", t)]
    assert not errors, f"{notebook.name}: error output after Run All:\n" + "\n---\n".join(errors)
    assert not notebook.console_errors, f"{notebook.name}: browser console errors: {notebook.console_errors}"
    fractions = notebook.figure_fractions()
    assert fractions, f"{notebook.name}: no figure after Run All"
    blank = [i for i, f in enumerate(fractions) if f < NON_WHITE]
    assert not blank, (f"{notebook.name}: figures {blank} of {len(fractions)} are blank (non-white fractions "
                       f"{[round(fractions[i], 4) for i in blank]})")
    texts = " ".join(notebook.page.locator(".jp-OutputArea-output").all_inner_texts())
    assert "interactive(children" not in texts and "Error displaying widget" not in texts


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_before_running_each_panel_shows_its_figure_and_how_to_use_it(pages, name):
    notebook = pages(name, run=False)
    texts = " ".join(notebook.page.locator(".jp-OutputArea-output").all_inner_texts())
    assert "interactive(children" not in texts and "FloatSlider(" not in texts, "a widget's Python repr is shown"
    notes = notebook.page.locator(".jp-OutputArea-output", has_text=NOTES.get(name, SLIDER_NOTE))
    assert notes.count() >= 1, f"{name}: no panel shows the line saying how to use its controls"
    instant = notebook.page.locator(".jp-OutputArea-output", has_text=STATIC_NOTE_TEXT).count()
    stand_ins = notebook.figure_fractions(".jp-RenderedHTML img")
    if name in SLIDER_NOTEBOOKS:
        assert instant >= 1, f"{name}: no slider panel without a button"
    if instant:  # a panel without a button stores the figure of its starting values
        assert len(stand_ins) >= instant and min(stand_ins) >= NON_WHITE, \
            f"{name}: a panel's stored figure is missing or blank"
    report.setdefault(name, []).append(f"before running: {notes.count()} panel(s) show a note, "
                                       f"{len(stand_ins)} stored figure(s); screenshot "
                                       f"{notebook.screenshot('before-run', notes.first)}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_has_no_error_and_no_blank_figure(pages, name):
    notebook = pages(name)
    check_after_run(notebook)
    report[name].append(f"after Run All: {len(notebook.figure_fractions())} figures, none blank; "
                        f"screenshot {notebook.screenshot('after-run')}")


def move(notebook: NotebookPage, panel: int, slider) -> tuple[str, float]:
    """Move ``slider`` one step with the keyboard (left, or right at its minimum); return its new readout and
    the seconds until the panel showed a new figure."""
    readout = slider.locator(".widget-readout")
    before_value, before_images = readout.inner_text(), notebook.panel_images(panel)
    handle = slider.locator(".noUi-handle")
    for key in ("ArrowLeft", "ArrowRight"):  # right only where left does nothing (the slider at its minimum)
        handle.focus()
        start = time.monotonic()
        handle.press(key)
        while readout.inner_text() == before_value and time.monotonic() - start < 2:
            time.sleep(0.02)
        if readout.inner_text() != before_value:
            break
    else:
        pytest.fail(f"{notebook.name}: slider {readout.inner_text()!r} did not move with the arrow keys")
    deadline = start + 60
    while time.monotonic() < deadline:
        images = notebook.panel_images(panel)
        if images and images != before_images and "Drawing" not in notebook.panel_text(panel):
            return readout.inner_text(), time.monotonic() - start
        time.sleep(0.02)
    pytest.fail(f"{notebook.name}: panel {panel} did not redraw within 60 s of moving a slider "
                f"(text: {notebook.panel_text(panel)!r})")


@pytest.mark.parametrize("name", SLIDER_NOTEBOOKS)
def test_every_slider_redraws_its_figure(pages, name):
    notebook = pages(name)
    panels = notebook.page.locator(PANEL)
    timings = []
    for p in range(panels.count()):
        if notebook.panel(p).locator("button").count():
            continue  # the button panel: its sliders take effect on Run (next test)
        sliders = notebook.panel(p).locator(".widget-slider")
        assert sliders.count() >= 2, f"{name}: panel {p} has {sliders.count()} sliders"
        for s in range(sliders.count()):
            description = sliders.nth(s).locator(".widget-label").first.inner_text()
            value, seconds = move(notebook, p, sliders.nth(s))
            fractions = notebook.figure_fractions(f"{PANEL} >> nth={p} >> img")
            assert fractions and min(fractions) >= NON_WHITE, f"{name}: blank figure after moving {description}"
            error = notebook.panel(p).locator(".widget-html-content span[style]")
            assert error.count() == 0, f"{name}: moving {description} gave an error: {error.first.inner_text()}"
            timings.append((description, value, seconds))
    assert timings, f"{name}: no slider panel found"
    check_after_run(notebook)  # nothing the sliders did left an error or a blank figure behind
    shot = ", ".join(notebook.screenshot(f"panel{p}-sliders-moved", notebook.panel(p))
                     for p in range(panels.count()) if not notebook.panel(p).locator("button").count())
    report[name].append("slider redraws (key press to new figure): " + ", ".join(
        f"{d} → {v}: {s:.2f} s" for d, v, s in timings) + f"; median {statistics.median(t[2] for t in timings):.2f} s")
    report[name].append(f"screenshot {shot}")


def press_run(notebook: NotebookPage, panel: int, expected: str, timeout: float = 300) -> tuple[str, float]:
    """Press the panel's Run button; wait for the run to end (the busy line seen, or the text changed)."""
    before = notebook.panel_text(panel)
    start = time.monotonic()
    notebook.panel(panel).locator("button", has_text="Run").click()
    deadline, busy_seen = start + timeout, False
    while time.monotonic() < deadline:
        text = notebook.panel_text(panel)
        busy_seen |= "Meta-training" in text
        if text and "Meta-training" not in text and (busy_seen or text != before):
            assert text.startswith(expected), f"{notebook.name}: Run gave {text!r}, expected {expected!r}…"
            return text, time.monotonic() - start
        time.sleep(0.2)
    pytest.fail(f"{notebook.name}: Run did not finish within {timeout:.0f} s")


def test_run_button_with_defaults_then_with_the_largest_step_sizes(pages):
    name = "03_fomaml_mnist.ipynb"
    notebook = pages(name)
    panel = next(p for p in range(notebook.page.locator(PANEL).count()) if notebook.panel(p).locator("button").count())
    text, seconds = press_run(notebook, panel, "Finished")
    fractions = notebook.figure_fractions(f"{PANEL} >> nth={panel} >> img")
    assert fractions and min(fractions) >= NON_WHITE, "blank learning curves after Run"
    report[name].append(f"Run with the defaults: {seconds:.1f} s, {text!r}")
    sliders = notebook.panel(panel).locator(".widget-slider")
    for s in range(2):  # α and β, to the top of their ranges
        sliders.nth(s).locator(".noUi-handle").focus()
        sliders.nth(s).locator(".noUi-handle").press("End")
    values = [sliders.nth(s).locator(".widget-readout").inner_text() for s in range(2)]
    assert values == ["10.0", "1.00"] or [float(v) for v in values] == [10.0, 1.0], values
    text, seconds = press_run(notebook, panel, "Diverged")
    assert "smaller learning rates" in text, f"the divergence message does not say what to do: {text!r}"
    report[name].append(f"Run with α = {values[0]}, β = {values[1]}: {seconds:.1f} s, {text!r}; "
                        f"screenshot {notebook.screenshot('run-button', notebook.panel(panel))}")
    assert not notebook.console_errors, notebook.console_errors


@pytest.mark.parametrize("run", range(2, REPEATS_03 + 1))
def test_notebook_03_restarted_and_run_all_again_has_no_blank_figure(pages, run):
    """Runs 2..10 of notebook 03 (run 1 is the Run All above), each from a restarted kernel."""
    name = "03_fomaml_mnist.ipynb"
    notebook = pages(name, run=False)
    seconds = notebook.run_all(restart=notebook.runs > 0)
    check_after_run(notebook)
    report.setdefault(name, []).append(f"Run All {run} of {REPEATS_03}: {seconds:.0f} s, "
                                       f"{len(notebook.figure_fractions())} figures, none blank")


def test_notebook_04_switchboard_runs_with_no_bug_then_with_every_bug(pages):
    name = "04_classic_bugs.ipynb"
    notebook = pages(name)
    panel = next(p for p in range(notebook.page.locator(PANEL).count()) if notebook.panel(p).locator("button").count())
    boxes = notebook.panel(panel).locator(".widget-checkbox input[type=checkbox]")
    assert boxes.count() >= 6, f"{name}: the switchboard has {boxes.count()} checkboxes"
    assert not any(boxes.nth(b).is_checked() for b in range(boxes.count())), "a bug is ticked at the start"
    text, seconds = press_run(notebook, panel, "Finished")
    fractions = notebook.figure_fractions(f"{PANEL} >> nth={panel} >> img")
    assert fractions and min(fractions) >= NON_WHITE, "blank figure after Run with no bug"
    report[name].append(f"Run with no bug ticked: {seconds:.1f} s, {text!r}")
    for b in range(boxes.count()):
        boxes.nth(b).click()
    assert all(boxes.nth(b).is_checked() for b in range(boxes.count()))
    text, seconds = press_run(notebook, panel, "Finished")
    assert "gradients into a copy" in text and "meta-training classes" in text, text
    fractions = notebook.figure_fractions(f"{PANEL} >> nth={panel} >> img")
    assert fractions and min(fractions) >= NON_WHITE, "blank figure after Run with every bug"
    report[name].append(f"Run with every bug ticked: {seconds:.1f} s, {text!r}; "
                        f"screenshot {notebook.screenshot('run-button', notebook.panel(panel))}")
    check_after_run(notebook)
