"""Starts vit-serve on a free loopback port for the tests in this folder.

Run by ctest as `/usr/bin/python3 tests/serve/<test>.py` with these in the
environment (tests/serve/CMakeLists.txt sets them):
  VIT_SERVE     the vit-serve binary
  VIT_CLASSIFY  the vit-classify binary
  VIT_DATA      tests/data
  VIT_ARTIFACTS a folder for screenshots and logs kept after the run
"""
import json
import os
import signal
import subprocess
import threading
import time

SERVE = os.environ.get("VIT_SERVE", "build/apps/vit-serve/vit-serve")
CLASSIFY = os.environ.get("VIT_CLASSIFY", "build/apps/vit-classify/vit-classify")
DATA = os.environ.get("VIT_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
ARTIFACTS = os.environ.get("VIT_ARTIFACTS", "test-artifacts")

TINY = os.path.join(DATA, "vit-tiny-random", "model")        # classifier, 10 labels
FEATURES = os.path.join(DATA, "vit-tiny-features", "model")  # backbone with pooler
IMAGES = os.path.join(DATA, "images")


def image(name):
    return os.path.join(IMAGES, name)


class Server:
    """vit-serve as a child process: `with Server(TINY) as s: s.url`.

    Binds port 0 and reads the chosen port from the first stderr line. Every
    stderr line is kept in `lines` (the JSON request log)."""

    def __init__(self, model, *args, wait_ready=True, timeout=60, prefix=()):
        self.cmd = [*prefix, SERVE, "--model", model, "--port", "0", *map(str, args)]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.wait_line(lambda j: "listening" in j, timeout)
        host, port = first["listening"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.url = "http://%s:%d" % (host, self.port)
        if wait_ready:
            self.wait_line(lambda j: j.get("event") == "ready", timeout)

    def _read(self):
        for line in self.proc.stderr:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def log(self):
        """Parsed JSON lines of stderr so far (other lines skipped)."""
        out = []
        with self._cv:
            lines = list(self.lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_line(self, pred, timeout=60):
        """The first JSON stderr line for which pred holds; fails on exit or timeout."""
        end = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    try:
                        j = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(j, dict) and pred(j):
                        return j
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("vit-serve exited (%s) before the expected line; stderr:\n%s"
                                         % (self.proc.returncode, "\n".join(self.lines)))
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for a line from vit-serve; stderr:\n" + "\n".join(self.lines))
                self._cv.wait(min(left, 0.2))

    def wait_count(self, pred, n, timeout=10):
        """Waits until n JSON stderr lines satisfy pred (a request's log line
        may land just after its response) and returns how many did."""
        end = time.monotonic() + timeout
        while True:
            count = sum(1 for j in self.log() if isinstance(j, dict) and pred(j))
            if count >= n or time.monotonic() >= end:
                return count
            with self._cv:
                self._cv.wait(0.1)

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def classify_json(model, *files, top=5):
    """vit-classify --json --logits on files: the reference the server must match."""
    out = subprocess.run([CLASSIFY, "--model", model, "--json", "--logits", "--top-k", str(top), *files],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_tests(namespace, argv):
    """Runs the test_* functions of a module's namespace (or those named in
    argv), reports every failure, and returns the exit status."""
    tests = {k: v for k, v in namespace.items() if k.startswith("test_") and callable(v)}
    names = argv or list(tests)
    failed = []
    for n in names:
        if n not in tests:
            print("no test %s (have: %s)" % (n, " ".join(tests)))
            return 2
        t0 = time.monotonic()
        try:
            tests[n]()
            print("ok   %s (%.1f s)" % (n, time.monotonic() - t0))
        except Exception as e:  # report every failing test, then fail
            import traceback
            traceback.print_exc()
            print("FAIL %s: %s" % (n, e))
            failed.append(n)
    return 1 if failed else 0
