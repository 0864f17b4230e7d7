#!/usr/bin/python3
"""The page at GET / in a real headless browser (Debian's chromium through
Selenium and chromedriver).

Starts vit-serve on the tiny classifier, opens the page, gives the file
input tests/data/images/coco_cats.png and checks what a user would see:
five prediction rows equal to what POST /predict answers for the same file,
bars as long as the scores, the attention heat map drawn over the image as
vit-classify --attention-map draws it, no JS console errors. Then the
server's {"error"} message for a file that is not an image, the bearer
token field against a server with --api-key-file, and the labels box: the
zero-shot scores of a CLIP checkpoint for typed labels, and the server's
message when the checkpoint has no text tower.

Run: VIT_SERVE=build/apps/vit-serve/vit-serve VIT_DATA=tests/data VIT_ARTIFACTS=/tmp/art \\
     /usr/bin/python3 tests/serve/test_browser.py [test_name ...]
With names, only those test_* functions run (tests/serve/CMakeLists.txt
makes one ctest of each). Screenshots go to $VIT_ARTIFACTS (serve-page.png,
serve-page-error.png, and serve-page-FAIL-<test>.png for a failed one).
Exits 0 when every check passes, 1 on a failure, 2 for an unknown test name,
77 when chromium, chromedriver or python3-selenium is missing
(apt-get install chromium chromium-driver python3-selenium).
"""
import base64
import os
import re
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serverlib import ARTIFACTS, DATA, TINY, Server, image  # noqa: E402

CHROMIUM = os.environ.get("VIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VIT_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_S = 30
CATS = os.path.abspath(image("coco_cats.png"))
WINDOW = (1100, 900)

try:
    import requests
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError as e:  # checked in main()
    IMPORT_ERROR = e
else:
    IMPORT_ERROR = None


def start_browser(profile):
    o = Options()
    o.binary_location = CHROMIUM
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=%d,%d" % WINDOW, "--force-device-scale-factor=1",
              "--no-first-run", "--user-data-dir=" + profile):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = Service(CHROMEDRIVER, service_args=["--log-path=" + os.path.join(ARTIFACTS, "chromedriver.log")])
    drv = webdriver.Chrome(service=svc, options=o)
    drv.set_window_size(*WINDOW)
    drv.set_page_load_timeout(WAIT_S)
    drv.set_script_timeout(WAIT_S)
    return drv


def post_image(url, path, headers=None):
    with open(path, "rb") as f:
        return requests.post(url, data=f.read(), timeout=WAIT_S,
                             headers={"Content-Type": "application/octet-stream", **(headers or {})})


def page_state(drv):
    return drv.execute_script("""
        const t = id => (document.getElementById(id) || {}).textContent;
        return {err: t('err'), status: t('status'), rows: document.querySelectorAll('#preds .prediction').length,
                drawn: document.getElementById('heat').dataset.drawn || null};""")


def wait_for(drv, what, js):
    """Polls the JS expression until it is truthy; fails with the page state after WAIT_S."""
    end = time.monotonic() + WAIT_S
    while True:
        v = drv.execute_script("return (" + js + ");")
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("no %s after %d s; page state: %s" % (what, WAIT_S, page_state(drv)))
        time.sleep(0.1)


def console_errors(drv, allowed=()):
    """SEVERE console entries since the last call, less those matching an allowed regex."""
    try:
        log = drv.get_log("browser")
    except Exception as e:  # not every driver has the legacy log endpoint
        print("  (no browser log: %s)" % e)
        return []
    return [e["message"] for e in log
            if e.get("level") == "SEVERE" and not any(re.search(a, e["message"]) for a in allowed)]


def pick_file(drv, path):
    drv.find_element(By.ID, "file").send_keys(path)


# vit-classify's write_attention_map, for one pixel of a W x H canvas: RGBA
# with the colour not premultiplied, as getImageData answers.
def expected_pixel(grid, gh, gw, W, H, x, y):
    lo, hi = min(grid), max(grid)
    gy = min(max((y + 0.5) * gh / H - 0.5, 0.0), gh - 1.0)
    gx = min(max((x + 0.5) * gw / W - 0.5, 0.0), gw - 1.0)
    y0, x0 = int(gy), int(gx)
    y1, x1 = min(y0 + 1, gh - 1), min(x0 + 1, gw - 1)
    fy, fx = gy - y0, gx - x0
    at = lambda r, c: grid[r * gw + c]  # noqa: E731
    v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1))
    t = (v - lo) / (hi - lo) if hi > lo else 0.0
    c = lambda k: min(1.0, max(0.0, 1.5 - abs(4 * t - k)))  # noqa: E731
    return [255 * c(3), 255 * c(2), 255 * c(1), 255 * (0.25 + 0.45 * t)]


def test_page_is_self_contained(fx):
    srv = fx.server
    r = requests.get(srv.url + "/", timeout=WAIT_S)
    assert r.status_code == 200, "GET / answered %d" % r.status_code
    assert r.headers["Content-Type"].startswith("text/html"), r.headers["Content-Type"]
    ext = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"'\s>]*""", r.text)
    ext += re.findall(r"""url\(\s*["']?(?:https?:)?//""", r.text)
    assert not ext, "the page loads external assets: %s" % ext
    for needed in ('id="file"', 'id="preds"', 'id="heat"', 'id="err"', 'id="token"', 'id="labels"', '<label for="file"',
                   '<label for="token"', '<label for="labels"'):
        assert needed in r.text, "the page has no %s" % needed


def test_predict_and_heat(fx):
    srv, drv = fx.server, fx.browser
    r = post_image(srv.url + "/predict", CATS)
    assert r.status_code == 200, "POST /predict answered %d: %s" % (r.status_code, r.text)
    want = r.json()
    assert len(want) == 5, "POST /predict answered %d labels, expected 5" % len(want)
    assert want[0]["label"] == "hen", "top-1 for coco_cats.png on the tiny checkpoint is %r, expected 'hen'" % want[0]["label"]
    r = post_image(srv.url + "/attention", CATS)
    assert r.status_code == 200, "POST /attention answered %d: %s" % (r.status_code, r.text)
    att = r.json()
    gh, gw, grid = att["rows"], att["cols"], att["values"]
    assert gh > 0 and gw > 0 and len(grid) == gh * gw, "malformed /attention answer %s" % att

    drv.get(srv.url + "/")
    assert drv.title == "vit-serve", "page title %r" % drv.title
    console_errors(drv)  # drop anything from before this page
    pick_file(drv, CATS)
    wait_for(drv, "5 prediction rows", "document.querySelectorAll('#preds .prediction').length === 5")
    wait_for(drv, "heat map drawn", "document.getElementById('heat').dataset.drawn")

    rows = drv.execute_script("""
        return [...document.querySelectorAll('#preds .prediction')].map(li => ({
            label: li.querySelector('.label').textContent,
            score: li.querySelector('.score').textContent,
            bar: li.querySelector('.bar').getBoundingClientRect().width,
            track: li.querySelector('.track').getBoundingClientRect().width}));""")
    got = [row["label"] for row in rows]
    assert got == [p["label"] for p in want], "page labels %s, POST /predict answered %s" % (got, [p["label"] for p in want])
    for row, p in zip(rows, want):
        assert row["score"] == "%.1f%%" % (100 * p["score"]), "row %r shows %r for score %r" % (p["label"], row["score"], p["score"])
        assert row["track"] > 100, "bar track only %.1f px wide" % row["track"]
        assert abs(row["bar"] - p["score"] * row["track"]) <= 1.0, \
            "bar of %r is %.1f px, expected %.1f (score %.4f of %.1f px)" % (p["label"], row["bar"], p["score"] * row["track"], p["score"], row["track"])
    widths = [row["bar"] for row in rows]
    assert all(a >= b for a, b in zip(widths, widths[1:])), "bar widths not decreasing: %s" % widths
    assert widths[0] > widths[-1], "all bars equally wide: %s" % widths

    alt = drv.find_element(By.ID, "img").get_attribute("alt")
    assert "coco_cats.png" in alt, "image alt text %r does not name the file" % alt

    geo = drv.execute_script("""
        const i = document.getElementById('img').getBoundingClientRect(), h = document.getElementById('heat');
        const c = h.getBoundingClientRect();
        return {img: [i.left, i.top, i.width, i.height], heat: [c.left, c.top, c.width, c.height],
                W: h.width, H: h.height, drawn: h.dataset.drawn, visible: getComputedStyle(h).visibility};""")
    assert geo["img"][2] > 100 and geo["img"][3] > 100, "image shown at only %s" % geo["img"]
    assert all(abs(a - b) <= 1 for a, b in zip(geo["img"], geo["heat"])), \
        "heat canvas at %s does not cover the image at %s" % (geo["heat"], geo["img"])
    assert geo["drawn"] == "%dx%d" % (gh, gw), "canvas drawn from a %s grid, /attention has %dx%d" % (geo["drawn"], gh, gw)
    assert geo["visible"] == "visible", "heat canvas is %s" % geo["visible"]

    W, H = geo["W"], geo["H"]
    stats = drv.execute_script("""
        const c = document.getElementById('heat'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let opaque = 0, amin = 255, amax = 0; const colours = new Set();
        for (let i = 0; i < d.length; i += 4) {
            if (d[i + 3] > 0) opaque++;
            amin = Math.min(amin, d[i + 3]); amax = Math.max(amax, d[i + 3]);
            if (colours.size < 1000) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        }
        return {opaque: opaque, n: d.length / 4, amin: amin, amax: amax, colours: colours.size};""")
    assert stats["n"] > 0 and stats["opaque"] > 0, "heat canvas is blank: %s" % stats
    assert stats["colours"] > 10, "heat canvas has only %d colours" % stats["colours"]
    # alpha is 0.25 + 0.45 t, t spanning 0..1 over the grid's min..max.
    assert abs(stats["amin"] - 0.25 * 255) <= 2 and abs(stats["amax"] - 0.70 * 255) <= 2, \
        "heat alpha spans %d..%d, expected about %d..%d" % (stats["amin"], stats["amax"], 0.25 * 255, 0.70 * 255)

    pts = [(int((i * 0.6180339 % 1) * W), int((i * 0.7548777 % 1) * H)) for i in range(64)]
    pts += [(0, 0), (W - 1, 0), (0, H - 1), (W - 1, H - 1)]
    px = drv.execute_script("""
        const ctx = document.getElementById('heat').getContext('2d');
        return arguments[0].map(p => [...ctx.getImageData(p[0], p[1], 1, 1).data]);""", pts)
    for (x, y), got_px in zip(pts, px):
        exp = expected_pixel(grid, gh, gw, W, H, x, y)
        # The canvas keeps colours premultiplied by alpha, so getImageData's
        # unpremultiplied RGB is coarse at low alpha: compare what is blended.
        pre = lambda p: [p[c] * p[3] / 255 for c in range(3)] + [p[3]]  # noqa: E731
        assert all(abs(a - b) <= 2 for a, b in zip(pre(got_px), pre(exp))), \
            "heat pixel (%d, %d) is %s, vit-classify's blend gives %s" % (x, y, got_px, [round(v) for v in exp])

    errs = console_errors(drv)
    assert not errs, "JS console errors: %s" % errs
    shot = os.path.join(ARTIFACTS, "serve-page.png")
    assert drv.save_screenshot(shot), "could not save " + shot
    print("  screenshot " + shot)


def test_error_shown(fx):
    srv, drv = fx.server, fx.browser
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "notes.png")
        with open(bad, "w") as f:
            f.write("this is a text file, not a PNG\n")
        r = post_image(srv.url + "/predict", bad)
        assert r.status_code == 400, "POST /predict of a text file answered %d" % r.status_code
        msg = r.json()["error"]
        assert msg, "empty server error"
        drv.get(srv.url + "/")
        console_errors(drv)
        pick_file(drv, bad)
        shown = wait_for(drv, "error message", "document.getElementById('err').textContent")
    assert shown == msg, "page shows %r, the server said %r" % (shown, msg)
    assert page_state(drv)["rows"] == 0, "prediction rows shown next to an error"
    role = drv.find_element(By.ID, "err").get_attribute("role")
    assert role == "alert", "#err has role %r, expected alert" % role
    # Chrome logs every non-2xx fetch as "Failed to load resource"; that one is expected here.
    errs = console_errors(drv, allowed=[r"Failed to load resource: the server responded with a status of 400"])
    assert not errs, "JS console errors: %s" % errs
    drv.save_screenshot(os.path.join(ARTIFACTS, "serve-page-error.png"))


def test_token(fx):
    drv = fx.browser
    key = "s3cret-token-for-the-page"
    keyfile = os.path.join(fx.tmp, "api-key")
    with open(keyfile, "w") as f:
        f.write(key + "\n")
    with Server(TINY, "--api-key-file", keyfile) as srv:
        r = post_image(srv.url + "/predict", CATS)
        assert r.status_code == 401, "POST /predict without a token answered %d" % r.status_code
        msg = r.json()["error"]
        want = [p["label"] for p in post_image(srv.url + "/predict", CATS, {"Authorization": "Bearer " + key}).json()]

        drv.get(srv.url + "/")
        console_errors(drv)
        pick_file(drv, CATS)
        shown = wait_for(drv, "401 error message", "document.getElementById('err').textContent")
        assert shown == msg, "page shows %r without a token, the server said %r" % (shown, msg)
        assert drv.execute_script("return document.getElementById('auth').open"), "token field not opened on 401"

        field = drv.find_element(By.ID, "token")
        field.send_keys(key)
        field.send_keys(Keys.TAB)  # "change" re-runs the current image with the token
        wait_for(drv, "5 prediction rows with the token", "document.querySelectorAll('#preds .prediction').length === 5")
        got = drv.execute_script("return [...document.querySelectorAll('#preds .label')].map(e => e.textContent)")
        assert got == want, "labels with the token %s, expected %s" % (got, want)
        assert page_state(drv)["err"] == "", "error still shown: %r" % page_state(drv)["err"]
        wait_for(drv, "heat map drawn with the token", "document.getElementById('heat').dataset.drawn")
        stored = drv.execute_script("return sessionStorage.getItem('vit-serve-token')")
        assert stored == key, "sessionStorage holds %r" % stored
        drv.refresh()
        kept = drv.find_element(By.ID, "token").get_attribute("value")
        assert kept == key, "token field after reload %r" % kept
        errs = console_errors(drv, allowed=[r"Failed to load resource: the server responded with a status of 401"])
        assert not errs, "JS console errors: %s" % errs


def zero_shot(url, labels):
    with open(CATS, "rb") as f:
        body = {"inputs": base64.b64encode(f.read()).decode(), "parameters": {"candidate_labels": labels}}
    return requests.post(url + "/predict", json=body, timeout=WAIT_S)


def shown_rows(drv):
    return drv.execute_script("""
        return [...document.querySelectorAll('#preds .prediction')].map(li => ({
            label: li.querySelector('.label').textContent, score: li.querySelector('.score').textContent}));""")


def test_zero_shot_labels(fx):
    drv = fx.browser
    typed = ["cat", "two cats", "dog", "a cup of coffee", "tench"]
    with Server(os.path.join(DATA, "clip-text-tiny", "model")) as srv:
        r = zero_shot(srv.url, typed)
        assert r.status_code == 200, "zero-shot POST /predict answered %d: %s" % (r.status_code, r.text)
        want = r.json()
        drv.get(srv.url + "/")
        console_errors(drv)
        box = drv.find_element(By.ID, "labels")
        box.send_keys(" , ".join(typed) + " ,, ")  # blanks and empty pieces dropped, as HF's widget does
        pick_file(drv, CATS)
        wait_for(drv, "%d zero-shot rows" % len(typed), "document.querySelectorAll('#preds .prediction').length === %d" % len(typed))
        rows = shown_rows(drv)
        assert [x["label"] for x in rows] == [p["label"] for p in want], "page %s, server %s" % (rows, want)
        for row, p in zip(rows, want):
            assert row["score"] == "%.1f%%" % (100 * p["score"]), "row %r shows %r for score %r" % (p["label"], row["score"], p["score"])
        title = drv.find_element(By.ID, "rtitle").text
        assert title == "Zero-shot labels", "results titled %r" % title
        wait_for(drv, "heat map drawn", "document.getElementById('heat').dataset.drawn")
        # Other labels re-run the image shown.
        want = zero_shot(srv.url, ["dog", "hen"]).json()
        box.send_keys(Keys.CONTROL, "a")  # typed over: clear() would fire a change with the box empty
        box.send_keys("dog, hen")
        box.send_keys(Keys.TAB)
        wait_for(drv, "2 zero-shot rows", "document.querySelectorAll('#preds .prediction').length === 2")
        assert [x["label"] for x in shown_rows(drv)] == [p["label"] for p in want], (shown_rows(drv), want)
        errs = console_errors(drv)
        assert not errs, "JS console errors: %s" % errs
        drv.save_screenshot(os.path.join(ARTIFACTS, "serve-page-zero-shot.png"))
    # A vision-only checkpoint: the server's 400 on the page.
    srv = fx.server
    msg = zero_shot(srv.url, ["cat", "dog"]).json()["error"]
    assert "text tower" in msg, msg
    drv.get(srv.url + "/")
    console_errors(drv)
    drv.find_element(By.ID, "labels").send_keys("cat, dog")
    pick_file(drv, CATS)
    shown = wait_for(drv, "error message", "document.getElementById('err').textContent")
    assert shown == msg, "page shows %r, the server said %r" % (shown, msg)
    errs = console_errors(drv, allowed=[r"Failed to load resource: the server responded with a status of 400"])
    assert not errs, "JS console errors: %s" % errs


class Fixtures:
    """The server on TINY and the browser, started on first use, shared by the
    tests of one run and stopped by close()."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="vit-browser-")
        self._server = self._browser = None

    @property
    def server(self):
        if self._server is None:
            self._server = Server(TINY)
        return self._server

    @property
    def browser(self):
        if self._browser is None:
            self._browser = start_browser(os.path.join(self.tmp, "profile"))
        return self._browser

    def screenshot(self, name):
        if self._browser is not None:
            try:
                self._browser.save_screenshot(os.path.join(ARTIFACTS, "serve-page-FAIL-%s.png" % name))
            except Exception:
                pass

    def close(self):
        try:
            if self._browser is not None:
                self._browser.quit()
        finally:
            if self._server is not None:
                self._server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv):
    """Runs the named test_* functions (all without names), as ctest does one by one."""
    tests = {k: v for k, v in globals().items() if k.startswith("test_") and callable(v)}
    names = argv or list(tests)
    unknown = [n for n in names if n not in tests]
    if unknown:
        print("no test %s (have: %s)" % (" ".join(unknown), " ".join(tests)))
        return 2
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if IMPORT_ERROR or missing:
        print("FAIL: needs chromium, chromium-driver and python3-selenium (%s); "
              "apt-get install chromium chromium-driver python3-selenium"
              % (IMPORT_ERROR or "missing " + ", ".join(missing)))
        return 77
    os.makedirs(ARTIFACTS, exist_ok=True)
    failed = []
    t_all = time.monotonic()
    fx = Fixtures()
    try:
        for n in names:
            t0 = time.monotonic()
            try:
                tests[n](fx)
            except Exception as e:  # report every failing test, then fail
                failed.append(n)
                traceback.print_exc()
                print("FAIL %s (%.1f s): %s" % (n, time.monotonic() - t0, e))
                fx.screenshot(n)
            else:
                print("ok   %s (%.1f s)" % (n, time.monotonic() - t0))
    finally:
        fx.close()
    print("%s: %d of %d failed (%.1f s)" % ("FAIL" if failed else "PASS", len(failed), len(names), time.monotonic() - t_all))
    if failed:
        print("failed: " + " ".join(failed) + "; screenshots in " + ARTIFACTS)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
