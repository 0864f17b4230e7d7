"""vit-train-head --l2-grid: every grid point at its optimum, the choice by the stated rule.

Writes UCI digits as PNG class folders, a training folder and a validation
folder, runs vit-train-head --l2-grid with a feature cache, then checks
training.json's grid against an independent solver (train_objective.newton,
Newton's method in float64 numpy, on the cached features): the grid is
1e1, 1e0, ..., 1e-6; each point's objective equals the optimum of
mean cross-entropy + (l2 / 2) * ||W||^2 to 1e-6 relative (or, at the
smallest l2, to the bound its gradient norm gives); its validation
accuracy is the optimum's (within one image, for near-ties); the chosen l2
is the largest of those with the best validation accuracy; OUT's head is
that point's.

usage: train_grid.py TRAIN_HEAD MODEL WORK
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_objective import newton, objective, read_cache, read_safetensors, write_digits  # noqa: E402


def main():
    train_head, model, work = sys.argv[1], sys.argv[2], sys.argv[3]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    write_digits(f"{work}/all", 600)
    for name, lo, hi in (("train", 0, 400), ("val", 400, 600)):
        for c in os.listdir(f"{work}/all"):
            os.makedirs(f"{work}/{name}/{c}")
            for f in sorted(os.listdir(f"{work}/all/{c}")):
                if lo <= int(f[:4]) < hi:
                    shutil.copy(f"{work}/all/{c}/{f}", f"{work}/{name}/{c}/{f}")
    cache, out = f"{work}/cache", f"{work}/out"
    subprocess.run([train_head, "--model", model, "--train", f"{work}/train", "--val", f"{work}/val", "--output", out,
                    "--features-cache", cache, "--l2-grid", "--threads", "2"], check=True)
    report = json.load(open(f"{out}/training.json"))
    rows, feats = read_cache(cache)

    def features(folder):
        images = sorted(i for i in rows if os.path.dirname(os.path.dirname(os.path.abspath(i))) ==
                        os.path.abspath(f"{work}/{folder}"))
        x = np.array([feats[rows[i]] for i in images], dtype=np.float64)
        y = np.array([int(os.path.basename(os.path.dirname(i))) for i in images])
        return x, y

    xt, yt = features("train")
    xv, yv = features("val")
    assert len(yt) == 400 and len(yv) == 200, (len(yt), len(yv))
    grid = report["l2_grid"]
    assert [g["l2"] for g in grid] == [10.0 ** e for e in range(1, -7, -1)], [g["l2"] for g in grid]
    for g in grid:
        best, _, w, b = newton(xt, yt, 10, g["l2"])
        acc = float(np.mean(np.argmax(xv @ w.T + b, axis=1) == yv))
        print(f"l2 {g['l2']:g}: Newton {best:.12g}, vit-train-head {g['objective']:.12g} "
              f"(gradient norm {g['gradient_norm']:.1e}); validation accuracy {acc} / {g['validation_accuracy']}")
        assert g["gradient_norm"] <= 1e-6, g
        # 1e-6 relative, or what the stopping rule (gradient norm <= 1e-6) can
        # promise at all: the ridge term makes the objective l2-strongly convex
        # in W, so f - f* <= |g|^2 / (2 l2) (at l2 = 1e-6 that is 5e-7, above
        # 1e-6 of an objective of 0.02).
        tol = max(1e-6 * abs(best), g["gradient_norm"] ** 2 / (2 * g["l2"]))
        assert abs(g["objective"] - best) <= tol, (g, best, tol)
        assert abs(acc - g["validation_accuracy"]) <= 1.0 / len(yv) + 1e-12, (g, acc)
    top = max(g["validation_accuracy"] for g in grid)
    chosen = max(g["l2"] for g in grid if g["validation_accuracy"] == top)  # ties to the larger l2
    assert report["l2"] == chosen, (report["l2"], chosen)
    t = read_safetensors(f"{out}/model.safetensors")
    w, b = t["classifier.weight"].astype(np.float64), t["classifier.bias"].astype(np.float64)
    point = next(g for g in grid if g["l2"] == chosen)
    assert abs(objective(w, b, xt, yt, chosen) - point["objective"]) <= 1e-6 * abs(point["objective"])
    assert abs(report["validation"]["accuracy"] - top) <= 1e-12, (report["validation"]["accuracy"], top)
    shutil.rmtree(work, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
