"""Refresh docs/asset-graph.png: the asset graph as the Dagster web UI draws it for this repo's
instance (so after `make demo` every asset shows its latest materialization).

    .venv/bin/python scripts/asset_graph_picture.py [--out docs/asset-graph.png]

Needs Debian's chromium and playwright (the dev dependencies), like the web UI test.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path

from orchestration.env import REPO_ROOT
from orchestration.ui import start_dagster, stop, wait_code_loaded, wait_http

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "asset-graph.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = start_dagster(port)
    try:
        if not (wait_http(f"{url}/server_info", 180, proc) and wait_code_loaded(url, 180)):
            print("dagster dev did not start", file=sys.stderr)
            return 1
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1150}, device_scale_factor=1.5)
            page.goto(f"{url}/asset-groups", wait_until="networkidle")
            skip = page.get_by_role("button", name="Skip")
            if skip.is_visible():
                skip.click()
            page.get_by_text("Hide navigation").click()
            page.keyboard.press("Alt+e")  # expand every group
            page.get_by_text("benchmark_scores", exact=True).last.wait_for()
            page.reload(wait_until="networkidle")  # the expanded groups stay in the URL; a fresh load fits them
            page.get_by_text("benchmark_scores", exact=True).last.wait_for()
            # The button beside "Jump to..." hides the tree of groups: more room for the graph.
            page.locator("button:right-of(input[placeholder='Jump to…'])").first.click()
            page.wait_for_timeout(500)
            page.mouse.move(750, 600)
            page.mouse.wheel(0, -60)  # zoom in a little: the fitted graph leaves a margin
            page.wait_for_timeout(1500)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, clip={"x": 80, "y": 185, "width": 1110, "height": 790})
            browser.close()
        print(f"wrote {args.out}")
        return 0
    finally:
        stop(proc)


if __name__ == "__main__":
    sys.exit(main())
