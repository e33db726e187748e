"""A real browser runs the walkthrough in JupyterLab (issue 14, point 8).

Debian's chromium, driven headless by Playwright (which must not download a browser of its
own), opens ``00_walkthrough.ipynb`` in a JupyterLab served on 127.0.0.1 with a token, runs all
cells in the smoke profile, and checks what a reader would see: no cell shows an error, the
figures render as images, the audio players are there. It saves screenshots and prints their
paths (a copy of the last one stays at /tmp/browser_test.png).

`.ci/run` installs chromium with apt-get when it is missing; the test skips, saying why, only
where chromium or playwright cannot be found.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: the flags a closed, headless machine needs (no GPU, no sandbox as root, no background calls)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_COPY = Path("/tmp/browser_test.png")
RUN_ALL_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def _requirements() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Debian's chromium is not installed and could not be installed here "
            "(.ci/run runs: apt-get install chromium chromium-driver)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (it is in the lock and the dev extras)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _smoke_copy(folder: Path, out_dir: Path) -> Path:
    """The walkthrough's twin with its parameters cell set to the smoke profile."""
    nb = json.loads((ROOT / "notebooks" / "00_walkthrough.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(cell["source"])
    assert 'profile = "quick"' in source, "the walkthrough's parameters cell changed"
    source = source.replace('profile = "quick"', 'profile = "smoke"')
    source = source.replace('out_dir = "../results/00_walkthrough"', f'out_dir = "{out_dir}"')
    cell["source"] = source
    path = folder / "00_walkthrough.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 with a token, isolated settings, serving a smoke-profile copy."""
    _requirements()
    folder = tmp_path / "lab"
    folder.mkdir()
    _smoke_copy(folder, tmp_path / "out")
    for plugin, values in {
        # render every cell (JupyterLab 4 virtualizes long notebooks) and start the notebook's
        # kernel without asking
        "notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
        "apputils-extension/notification": {"fetchNews": "false"},  # no news pop-up
    }.items():
        path = tmp_path / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PAPERLIB_WORKDIR": str(tmp_path / "work"),  # runs/ and the data cache
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # no PyPI queries from the server
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        "JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()
                    )
                time.sleep(0.5)
        yield {"url": f"{base}/lab/tree/00_walkthrough.ipynb?token={token}", "tmp": tmp_path}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


_CELL_STATE = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  const prompts = cells.map(c => (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '');
  return {
    total: cells.length,
    done: prompts.filter(p => /\\[\\d+\\]/.test(p)).length,
    busy: prompts.filter(p => p.includes('*')).length,
  };
}"""

_ERRORS = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
  .map(o => o.textContent || '')
  .filter(t => /Traceback \\(most recent call last\\)|^\\w*(Error|Exception)\\b/m.test(t))
  .map(t => t.slice(0, 400))"""

#: audio players whose source is the synthesized utterance (a WAV data URI of some length)
_AUDIO = """() => [...document.querySelectorAll('.jp-OutputArea-output audio')]
  .filter(a => [...a.querySelectorAll('source'), a]
    .some(s => (s.getAttribute('src') || '').startsWith('data:audio/wav;base64,')
               && s.getAttribute('src').length > 1000)).length"""

_IMAGES = """() => [...document.querySelectorAll('.jp-OutputArea-output img')]
  .filter(i => i.complete && i.naturalWidth > 0).length"""


def _wait_for_a_settled_kernel(page, settle_s: float = 3.0, timeout_s: float = 90.0) -> None:
    """Wait until the kernel indicator has said idle for `settle_s` in a row: it says idle once
    before the kernel has started, and a Run All clicked then does nothing."""
    indicator = ".jp-Notebook-ExecutionIndicator"
    start = time.monotonic()
    idle_since = None
    while time.monotonic() - start < timeout_s:
        idle = page.locator(f"{indicator}[data-status='idle']").count() > 0
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle_since and time.monotonic() - idle_since >= settle_s:
            return
        time.sleep(0.25)
    pytest.fail(f"the notebook's kernel did not become idle within {timeout_s:.0f} s")


def test_walkthrough_runs_in_chromium_with_figures_and_audio(lab):
    from playwright.sync_api import sync_playwright

    shots = lab["tmp"] / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(lab["tmp"] / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            page.goto(lab["url"])
            page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=90_000)
            _wait_for_a_settled_kernel(page)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            start = time.monotonic()
            while True:
                state = page.evaluate(_CELL_STATE)
                if state["total"] and state["done"] == state["total"] and not state["busy"]:
                    break
                waited = time.monotonic() - start
                stuck = waited > 60 and not (state["done"] or state["busy"])  # nothing started
                if page.evaluate(_ERRORS) or stuck or waited > RUN_ALL_TIMEOUT_S:
                    break
                time.sleep(1)
            page.screenshot(path=str(shots / "top.png"))
            errors = page.evaluate(_ERRORS)
            state = page.evaluate(_CELL_STATE)
            images = page.evaluate(_IMAGES)
            audio = page.locator(".jp-OutputArea-output audio")
            n_audio = page.evaluate(_AUDIO)
            if n_audio:
                audio.first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "audio.png"))
            last = page.locator(".jp-OutputArea-output img").last
            if last.count():
                last.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "end.png"))
        finally:
            context.close()
    shutil.copy(shots / "audio.png", SCREENSHOT_COPY)
    print(f"\nscreenshots: {sorted(str(p) for p in shots.glob('*.png'))} (copy: {SCREENSHOT_COPY})")
    assert not errors, f"cells show errors: {errors}"
    assert state["done"] == state["total"] > 0, f"not every cell ran: {state}"
    # the information diagram, t-SNE and the disentanglement heatmap
    assert images >= 3, f"only {images} figures rendered"
    assert n_audio >= 2, f"{n_audio} audio players, expected one per example utterance"
