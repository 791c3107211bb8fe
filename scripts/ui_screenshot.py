"""The README's picture of `fastreg ui` (docs/ui.png): the demo's registry as a consumer sees it,
reached by a Git URL, at the folder of cats at cats-dogs-v2.

    make demo && .venv/bin/python scripts/ui_screenshot.py [--demo demo] [--out docs/ui.png]

The demo's registry is served by `git daemon` on 127.0.0.1 (read-only, this script's lifetime),
so the page shows a registry URL (git://127.0.0.1/registry) rather than a folder, and its copied
commands are what a user would run. Needs Debian's chromium and chromium-driver and selenium (the
test extras)."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def _free_port() -> int:
    """Git's own port (9418, so the URL needs none) when it is free, else any."""
    for port in (9418, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", type=Path, default=Path("demo"), help="the folder `make demo` made")
    p.add_argument("--out", type=Path, default=Path("docs/ui.png"))
    args = p.parse_args()
    if not (args.demo / "registry" / ".git").is_dir():
        print(f"error: no demo registry at {args.demo / 'registry'}; run `make demo` first", file=sys.stderr)
        return 1
    port = _free_port()
    daemon = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1",
                               f"--port={port}", f"--base-path={args.demo.resolve()}", str(args.demo.resolve())],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"git://127.0.0.1{'' if port == 9418 else f':{port}'}/registry"
    home = tempfile.mkdtemp(prefix="fastreg-shot-")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CACHE_HOME": home}
    ui = None
    try:
        for _ in range(50):
            if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        ui = subprocess.Popen([sys.executable, "-m", "fastreg", "ui", url, "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert ui.stdout is not None
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", ui.stdout.readline())
        if not m:
            print(f"error: fastreg ui did not start: {ui.stderr.read() if ui.stderr else ''}", file=sys.stderr)
            return 1
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={home}/chromium"):
            opts.add_argument(flag)
        driver = webdriver.Chrome(options=opts, service=Service(executable_path="/usr/bin/chromedriver"))
        try:
            driver.get(m.group(1) + "browse/use-cases/cats-dogs/data/train/cats?rev=cats-dogs-v2")
            done = "return Array.from(document.querySelectorAll('.grid img')).slice(0, 40).every(i => i.complete)"
            WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".grid img")
                                             and d.execute_script(done))
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    finally:
        if ui is not None:
            ui.terminate()
            ui.communicate(timeout=30)
        daemon.terminate()
        daemon.wait(timeout=30)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) of fastreg ui {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
