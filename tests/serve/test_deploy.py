"""docs/deploy/ against the real vit-serve: the systemd unit's, the Kubernetes
container's and nginx's settings are options vit-serve accepts, agree with
each other, and the probe paths answer 200 on a server started with them.

  /usr/bin/python3 tests/serve/test_deploy.py [TEST...]   (no name: all)

The manifest is read with PyYAML (Debian's python3-yaml) when it is
installed, else with the small block-YAML reader below, which the test also
checks against PyYAML when both are there. nginx, when installed, runs the
config in front of two replicas (nginx -t alone would not see the upstream)."""
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as S  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEPLOY = os.path.join(ROOT, "docs", "deploy")
UNIT = os.path.join(DEPLOY, "vit-serve.service")
KUBE = os.path.join(DEPLOY, "kubernetes.yaml")
NGINX = os.path.join(DEPLOY, "nginx.conf")

try:
    import yaml
except ImportError:
    yaml = None


# ---------------------------------------------------------------- readers

def _scalar(s):
    s = s.strip()
    if s.startswith("[") and s.endswith("]"):
        inner = s[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    if s in ("true", "false"):
        return s == "true"
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return s


def _block(lines, i, indent):
    """The mapping or list starting at lines[i] (all at `indent`); returns (value, next i)."""
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        out = []
        while i < len(lines) and lines[i][0] == indent and (lines[i][1].startswith("- ") or lines[i][1] == "-"):
            rest = lines[i][1][1:].strip()
            if not rest:
                v, i = _block(lines, i + 1, lines[i + 1][0])
            elif re.match(r"^[\w.-]+:(\s|$)", rest):  # "- key: v": a mapping one step in
                lines[i] = (indent + 2, rest)
                v, i = _block(lines, i, indent + 2)
            else:
                v, i = _scalar(rest), i + 1
            out.append(v)
        return out, i
    out = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        key, _, rest = lines[i][1].partition(":")
        i += 1
        if rest.strip():
            out[key.strip()] = _scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or (lines[i][0] == indent and lines[i][1].startswith("- "))):
            out[key.strip()], i = _block(lines, i, lines[i][0])
        else:
            out[key.strip()] = None
    return out, i


def mini_yaml(text):
    """The block YAML subset kubernetes.yaml uses: documents, mappings, lists,
    scalars and one-line flow lists; whole-line comments only."""
    docs, cur = [], []
    for raw in text.splitlines() + ["---"]:
        if raw.strip() == "---":
            if cur:
                docs.append(_block(cur, 0, cur[0][0])[0])
            cur = []
            continue
        if not raw.strip() or raw.strip().startswith("#"):
            continue
        cur.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))
    return docs


def kube_docs():
    with open(KUBE) as f:
        text = f.read()
    return list(yaml.safe_load_all(text)) if yaml else mini_yaml(text)


def kube_container():
    deploy = [d for d in kube_docs() if d["kind"] == "Deployment"][0]
    spec = deploy["spec"]["template"]["spec"]
    c = [c for c in spec["containers"] if c["name"] == "vit-serve"][0]
    return deploy, spec, c


def unit():
    """[section] -> {key: [values]} (keys repeat: Environment, SystemCallFilter)."""
    out, sec = {}, None
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sec = out.setdefault(line.strip("[]"), {})
                continue
            k, _, v = line.partition("=")
            sec.setdefault(k.strip(), []).append(v.strip())
    return out


def unit_argv(cred_dir="/run/credentials/vit-serve.service"):
    """ExecStart as systemd would run it: ${VAR} from Environment=, %d the credentials folder."""
    svc = unit()["Service"]
    env = {}
    for e in svc["Environment"]:
        for kv in shlex.split(e):
            k, _, v = kv.partition("=")
            env[k] = v
    cmd = svc["ExecStart"][-1].replace("%d", cred_dir)
    cmd = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], cmd)
    return shlex.split(cmd)


def nginx_text():
    with open(NGINX) as f:
        return re.sub(r"#[^\n]*", "", f.read())


def options(argv):
    """--opt -> value (every vit-serve option takes one)."""
    out, i = {}, 0
    while i < len(argv):
        assert argv[i].startswith("--"), ("not an option", argv[i], argv)
        assert i + 1 < len(argv), ("no value", argv[i])
        out[argv[i]] = str(argv[i + 1])
        i += 2
    return out


def usage():
    """The options and defaults vit-serve's usage line gives, e.g. {'--port': '8000', '--model': 'M'}."""
    p = subprocess.run([S.SERVE, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "usage: vit-serve" in p.stderr, (p.returncode, p.stderr)
    found = dict(re.findall(r"(--[a-z-]+) ([^\s\]]+)", p.stderr))
    assert "--port" in found and "--max-body-mb" in found, p.stderr
    return found


def nginx_body_mb():
    m = re.search(r"client_max_body_size\s+(\d+)([kKmMgG]?)\s*;", nginx_text())
    assert m, "no client_max_body_size in nginx.conf"
    n, unit_ = int(m.group(1)), m.group(2).lower()
    return {"": n / 2**20, "k": n / 1024, "m": n, "g": n * 1024}[unit_]


def without(args, *drop):
    """args minus the given options and their values."""
    out, i = [], 0
    while i < len(args):
        if args[i] in drop:
            i += 2
        else:
            out.append(str(args[i]))
            i += 1
    return out


def get_ok(url, path, **kw):
    r = requests.get(url + path, timeout=10, **kw)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r


# ---------------------------------------------------------------- tests

def test_yaml_reader():
    docs = kube_docs()
    print("  kubernetes.yaml read with %s" % ("PyYAML %s" % yaml.__version__ if yaml else "the built-in block reader"))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "PodDisruptionBudget"], [d.get("kind") for d in docs]
    if yaml:
        with open(KUBE) as f:
            assert mini_yaml(f.read()) == docs, "the fallback reader disagrees with PyYAML"


def test_options_are_vit_serves():
    known = usage()
    # Unknown options exit 2, so a typo in a manifest stops the unit instead of being ignored.
    p = subprocess.run([S.SERVE, "--model", S.TINY, "--port", "0", "--max-batch", "8"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "unknown option" in p.stderr, (p.returncode, p.stderr)
    argv = unit_argv()
    assert os.path.basename(argv[0]) == "vit-serve", argv
    _, _, c = kube_container()
    assert os.path.basename(c["command"][0]) == "vit-serve", c["command"]
    for where, opts in (("vit-serve.service ExecStart", options(argv[1:])), ("kubernetes.yaml args", options(c["args"]))):
        unknown = set(opts) - set(known)
        assert not unknown, "%s: options vit-serve does not have: %s" % (where, sorted(unknown))
        assert "--model" in opts, where


def test_ports_and_limits_agree():
    default_port = int(usage()["--port"])
    assert default_port == 8000, default_port
    deploy, spec, c = kube_container()
    args = options(c["args"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert int(args["--port"]) == ports["http"] == default_port, (args["--port"], ports)
    assert args["--host"] not in ("127.0.0.1", "localhost", "::1"), "the kubelet probes the pod's address, not loopback"
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        g = c[probe]["httpGet"]
        assert g["path"] == path, (probe, g)
        assert g["port"] == "http" or g["port"] == ports["http"], (probe, g, ports)
    svc = [d for d in kube_docs() if d["kind"] == "Service"][0]
    assert svc["spec"]["selector"] == deploy["spec"]["template"]["metadata"]["labels"]
    assert all(p["targetPort"] in ("http", ports["http"]) for p in svc["spec"]["ports"]), svc["spec"]["ports"]
    assert deploy["spec"]["replicas"] >= 2

    # Draining: the grace period covers preStop and a full queue (72 images
    # at up to 0.5 s each, the slow phases of BENCHMARKS.md).
    drain_s = (int(args["--max-queue"]) + int(args["--max-batch-size"])) * 0.5
    pre = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert spec["terminationGracePeriodSeconds"] >= pre + drain_s, (spec["terminationGracePeriodSeconds"], pre, drain_s)

    u = unit()["Service"]
    uargs = options(unit_argv()[1:])
    assert int(uargs["--port"]) == default_port, uargs
    assert u["KillSignal"] == ["SIGTERM"] and u["Restart"] == ["on-failure"], u
    stop_s = int(u["TimeoutStopSec"][0])
    assert stop_s >= (int(uargs["--max-queue"]) + int(uargs["--max-batch-size"])) * 0.5, stop_s
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("DynamicUser", "yes"), ("PrivateTmp", "yes")):
        assert u.get(k) == [v], (k, u.get(k))

    text = nginx_text()
    mb = nginx_body_mb()
    assert mb == int(args["--max-body-mb"]) == int(uargs["--max-body-mb"]) == int(usage()["--max-body-mb"]), \
        (mb, args["--max-body-mb"], uargs["--max-body-mb"])
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", text)
    servers = re.findall(r"server\s+[^\s:;]+:(\d+)", upstream.group(2))
    assert len(servers) >= 2 and set(map(int, servers)) == {default_port}, servers
    assert re.search(r"proxy_pass\s+http://%s\s*;" % upstream.group(1), text)
    assert re.search(r"listen\s+443\s+ssl", text) and "ssl_certificate " in text
    assert re.search(r"proxy_set_header\s+Authorization\s+\$http_authorization\s*;", text)
    read_s = int(re.search(r"proxy_read_timeout\s+(\d+)s", text).group(1))
    assert read_s >= (int(uargs["--max-queue"]) + int(uargs["--max-batch-size"])) * 0.5, read_s


def test_unit_command_line_serves():
    """The unit's ExecStart, with the tiny model, a free port and a key in the credentials folder."""
    with tempfile.TemporaryDirectory() as cred:
        with open(os.path.join(cred, "api-key"), "w") as f:
            f.write("s3cret\n")
        argv = unit_argv(cred)
        opts = options(argv[1:])
        with S.Server(S.TINY, *without(argv[1:], "--model", "--port")) as s:
            for path in ("/v2/health/live", "/v2/health/ready"):  # probes carry no key
                get_ok(s.url, path)
            name = opts["--name"]
            assert requests.get(s.url + "/v2/models/%s/ready" % name, timeout=10).status_code == 401
            auth = {"Authorization": "Bearer s3cret"}
            get_ok(s.url, "/v2/models/%s/ready" % name, headers=auth)
            with open(S.image("coco_cats.png"), "rb") as f:
                r = requests.post(s.url + "/predict", data=f.read(), headers=auth, timeout=30)
            assert r.status_code == 200 and len(r.json()) == 5, (r.status_code, r.text)


def test_kubernetes_args_serve_and_drain():
    """The container's args (tiny model, free loopback port): the probes' paths
    answer 200; after SIGTERM ready is 503 on an open connection, new
    connections are refused, and the exit is 0."""
    _, spec, c = kube_container()
    args = without(c["args"], "--model", "--port", "--host")
    with S.Server(S.TINY, "--host", "127.0.0.1", *args) as s:
        for probe in ("readinessProbe", "livenessProbe"):
            get_ok(s.url, c[probe]["httpGet"]["path"])
        keep = http.client.HTTPConnection(s.host, s.port, timeout=10)
        keep.request("GET", c["readinessProbe"]["httpGet"]["path"])
        r = keep.getresponse()
        r.read()
        assert r.status == 200
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        s.wait_line(lambda j: j.get("event") == "draining", 10)
        keep.request("GET", c["readinessProbe"]["httpGet"]["path"])
        r = keep.getresponse()
        r.read()
        assert r.status == 503 and r.getheader("Retry-After"), r.status
        try:
            socket.create_connection((s.host, s.port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        assert refused, "still accepting while draining"
        assert s.wait(spec["terminationGracePeriodSeconds"]) == 0, s.proc.returncode
        print("  drained and exited in %.2f s" % (time.monotonic() - t0))


def _free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def test_nginx_in_front():
    """nginx.conf with its TLS port, certificate and upstream addresses moved to
    a temporary folder and two local replicas: a keyed request passes, an
    oversized body gets nginx's 413, a stopped replica is skipped."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    assert nginx, "nginx not found: apt-get install nginx-light (the README's setup command installs it)"
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                        "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem")],
                       check=True, capture_output=True)
        with open(os.path.join(d, "api-key"), "w") as f:
            f.write("s3cret\n")
        reps = [S.Server(S.TINY, "--api-key-file", os.path.join(d, "api-key")) for _ in range(2)]
        try:
            with open(NGINX) as f:
                conf = f.read()
            https, plain = _free_port(), _free_port()
            conf = re.sub(r"listen\s+\[::\]:\d+[^;]*;", "", conf)
            conf = re.sub(r"listen\s+443\s", "listen 127.0.0.1:%d " % https, conf)
            conf = re.sub(r"listen\s+80\s*;", "listen 127.0.0.1:%d;" % plain, conf)
            conf = re.sub(r"ssl_certificate\s+\S+;", "ssl_certificate %s/cert.pem;" % d, conf)
            conf = re.sub(r"ssl_certificate_key\s+\S+;", "ssl_certificate_key %s/key.pem;" % d, conf)
            # The first upstream servers become the local replicas; the rest go.
            ports = iter([r.port for r in reps])
            conf = re.sub(r"server\s+[\d.]+:\d+[^;]*;",
                          lambda m: "server 127.0.0.1:%d max_fails=1 fail_timeout=10s;" % next(ports, 0), conf)
            conf = conf.replace("server 127.0.0.1:0 max_fails=1 fail_timeout=10s;", "")
            with open(os.path.join(d, "site.conf"), "w") as f:
                f.write(conf)
            with open(os.path.join(d, "nginx.conf"), "w") as f:
                f.write("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                        "events {}\nhttp {\n access_log %s/access.log;\n client_body_temp_path %s/body;\n"
                        " proxy_temp_path %s/proxy;\n include %s/site.conf;\n}\n" % ((d,) * 6))
            t = subprocess.run([nginx, "-t", "-p", d, "-c", os.path.join(d, "nginx.conf")], capture_output=True, text=True)
            assert t.returncode == 0, t.stderr
            proc = subprocess.Popen([nginx, "-p", d, "-c", os.path.join(d, "nginx.conf")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            import urllib3
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # the throwaway certificate
            try:
                url = "https://127.0.0.1:%d" % https
                for _ in range(100):
                    try:
                        requests.get(url + "/v2/health/live", verify=False, timeout=1)
                        break
                    except requests.ConnectionError:
                        time.sleep(0.05)
                get_ok(url, "/v2/health/ready", verify=False)
                r = requests.get("http://127.0.0.1:%d/v2" % plain, allow_redirects=False, timeout=5)
                assert r.status_code == 308 and r.headers["Location"].startswith("https://"), (r.status_code, r.headers)
                with open(S.image("coco_cats.png"), "rb") as f:
                    img = f.read()
                auth = {"Authorization": "Bearer s3cret"}
                r = requests.post(url + "/predict", data=img, headers=auth, verify=False, timeout=30)
                assert r.status_code == 200 and len(r.json()) == 5, (r.status_code, r.text)
                r = requests.post(url + "/predict", data=img, verify=False, timeout=30)
                assert r.status_code == 401, r.status_code  # no key: vit-serve's answer, passed through
                big = b"\0" * ((int(nginx_body_mb()) << 20) + 1)
                r = requests.post(url + "/predict", data=big, headers=auth, verify=False, timeout=30)
                assert r.status_code == 413 and "nginx" in r.text, (r.status_code, r.text[:200])
                # One replica drained and gone: every request still answered.
                reps[0].stop()
                for _ in range(4):
                    r = requests.post(url + "/predict", data=img, headers=auth, verify=False, timeout=30)
                    assert r.status_code == 200, (r.status_code, r.text)
                served = reps[1].wait_count(lambda j: j.get("route") == "/predict" and j.get("status") == 200, 4)
                assert served >= 4, served
            finally:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            for r in reps:
                r.stop()


def main(argv):
    return S.run_tests(globals(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
