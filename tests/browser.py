"""A real headless Chromium for the browser tests: Debian's `chromium`, driven through `chromedriver` by
Selenium, kept off the network, and gone (with its driver) when the `with` block ends."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tools.processes import kill_mentioning, pids_mentioning
from tools.notebooks import ROOT

SHOTS = ROOT / "build" / "browser"  # the tests' screenshots
# Debian's launcher script (/usr/bin/chromium) adds Google API keys and flags of its own: drive the
# browser binary itself when it is there.
BROWSERS = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
FIX = ("install Debian's browser and its driver: `make setup` does it as root on Debian/Ubuntu, or "
       "`sudo apt-get install chromium chromium-driver`")
# Headless, no first-run or background traffic, and no way out: every host name but the loopback
# resolves to nothing and every other connection goes to a proxy that is not there.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
         "--proxy-server=http://127.0.0.1:9")


class BrowserUnavailable(RuntimeError):
    "No Chromium, no chromedriver or no Selenium, or the browser did not start; the message says which and what to do."


def _which(candidates) -> str | None:
    for c in candidates:
        if c.startswith("/"):
            if os.access(c, os.X_OK):
                return c
        elif found := shutil.which(c):
            return found
    return None


def find_chromium(browsers=BROWSERS, drivers=DRIVERS) -> tuple[str, str]:
    "Paths of the browser and of its driver, or `BrowserUnavailable` naming what is missing and how to get it."
    browser, driver = _which(browsers), _which(drivers)
    if browser is None:
        raise BrowserUnavailable(f"Chromium is missing (looked for {', '.join(browsers)}): {FIX}")
    if driver is None:
        raise BrowserUnavailable(f"chromedriver is missing (looked for {', '.join(drivers)}): {FIX}")
    if importlib.util.find_spec("selenium") is None:
        raise BrowserUnavailable("the selenium package is missing: `make setup` installs the [dev] extras "
                                 "(or pip install selenium)")
    return browser, driver


@contextmanager
def chromium(width: int = 1280, height: int = 800):
    """A Selenium driver for a fresh headless Chromium (own profile, performance and console logs kept).
    On exit the browser and chromedriver are stopped, and any process of that profile is killed."""
    browser, driver_path = find_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="mnist-course-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # the crash handler keeps its database under $XDG_CONFIG_HOME whatever the profile: keep it in the profile
    service = Service(executable_path=driver_path, log_output=str(profile.with_suffix(".chromedriver.log")),
                      env=dict(os.environ, XDG_CONFIG_HOME=str(profile / "config")))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except Exception as e:
        _cleanup(profile, service)
        log = profile.with_suffix(".chromedriver.log")
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise BrowserUnavailable(f"Chromium did not start through {driver_path} ({type(e).__name__}: "
                                 f"{str(e).strip()[:500]}).\nchromedriver's log ends:\n{tail}\n"
                                 f"The browser and driver must be the same version: {FIX}") from None
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            _cleanup(profile, service)


def _cleanup(profile: Path, service) -> None:
    "Stop chromedriver and whatever still runs with this profile, and remove the profile."
    proc = getattr(service, "process", None)
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except Exception:
            proc.kill()
    for _ in range(20):  # the browser's helper processes go a moment after it
        if not pids_mentioning(str(profile)):
            break
        time.sleep(0.1)
    kill_mentioning(str(profile))
    shutil.rmtree(profile, ignore_errors=True)
    profile.with_suffix(".chromedriver.log").unlink(missing_ok=True)


def screenshot(driver, name: str) -> Path:
    "Save the window as build/browser/NAME.png, and say where."
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path.relative_to(ROOT)}")
    return path


def requests(driver) -> list[tuple[str, str]]:
    """Every request since the last call, as (URL asked for, URL of the document that asked), from Chrome's
    performance log (Network.requestWillBeSent)."""
    found = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            found.append((msg["params"]["request"]["url"], msg["params"].get("documentURL", "")))
    return found


def wait_for(what: str, check, timeout: float = 30, every: float = 0.2):
    "Poll `check()` until it returns something truthy, and return it; `AssertionError` naming `what` if not."
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)
