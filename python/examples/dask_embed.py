#!/usr/bin/env python3
"""Embed a folder of images on a Dask cluster: one vit model per worker process.

    dask_embed.py --model google/vit-large-patch32-384-in21k photos/ --output out/          # a LocalCluster
    dask_embed.py --model M photos/ --output out/ --scheduler tcp://host:8786             # an existing cluster

Writes OUT/part-00000-of-00001.jsonl and OUT/part-00000-of-00001.npy in the
part format of `vit-classify --features --output` (a JSON record per image
with its "row" in the float32 [rows, D] .npy, or its "error"), gathered in
the order of the sorted file list. The workers read the images and the
model from paths they all see (a shared file system), and send back only
the embeddings. See README.md ("Python") for Slurm and Kubernetes.
"""

import argparse
import json
import os
import sys

import numpy as np

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".pgm", ".ppm", ".pnm", ".tga", ".psd", ".hdr"}
PLUGIN = "vit-model"


def list_images(folder):
    """Every image file under folder, sorted (the order of the output rows)."""
    out = []
    for d, _, names in os.walk(folder):
        out += [os.path.join(d, n) for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
    return sorted(out)


class ModelPlugin:
    """Loads the model once per worker process, when the worker starts (or joins)."""

    name = PLUGIN

    def __init__(self, model, dtype="f32", threads=None):
        self.args = (model, dtype, threads)
        self.model = None

    def setup(self, worker):
        import vit

        self.model = vit.load_model(*self.args)

    def teardown(self, worker):
        self.model = None


def embed_chunk(files, normalize):
    """On a worker: the embeddings of files [n, D] and a record per file (errors isolated)."""
    import vit
    from distributed import get_worker

    model = get_worker().plugins[PLUGIN].model
    try:
        return model.embed(files, normalize=normalize), [None] * len(files), model.embedding_kind
    except vit.Error:
        pass  # one bad file fails a batch: embed them one by one to name it
    rows, errors = [], []
    for f in files:
        try:
            rows.append(model.embed([f], normalize=normalize)[0])
            errors.append(None)
        except vit.Error as e:
            errors.append(str(e))
    width = model.embedding_size
    return (np.stack(rows) if rows else np.zeros((0, width), np.float32)), errors, model.embedding_kind


def embed_files(client, model, files, normalize=False, chunk=32, dtype="f32", threads=None):
    """Embeds files on the client's workers; returns (kind, rows float32 [ok, D], records)."""
    if __name__ != "__main__":  # the workers may not see this module's file: send its code
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    client.register_worker_plugin(ModelPlugin(model, dtype, threads), name=PLUGIN)
    chunks = [files[i : i + chunk] for i in range(0, len(files), chunk)]
    futures = client.map(embed_chunk, chunks, normalize=normalize, pure=False)
    results = client.gather(futures)
    kind = results[0][2] if results else ""
    rows, records = [], []
    n = 0
    for names, (emb, errors, _) in zip(chunks, results):
        k = 0
        for f, err in zip(names, errors):
            if err is not None:
                records.append({"image": f, "error": err})
                continue
            r = {"image": f, "kind": kind}
            if normalize:
                r["normalized"] = True
            r["row"] = n
            records.append(r)
            rows.append(emb[k])
            k += 1
            n += 1
    width = results[0][0].shape[1] if results else 0
    return kind, (np.stack(rows) if rows else np.zeros((0, width), np.float32)), records


def write_part(out_dir, rows, records):
    """OUT/part-00000-of-00001.{npy,jsonl}, as vit-classify --features --output writes one shard."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, "part-00000-of-00001")
    np.save(base + ".npy", np.ascontiguousarray(rows, dtype="<f4"))
    with open(base + ".jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--model", required=True, help="checkpoint folder or hub id (in every worker's HF cache)")
    p.add_argument("--output", required=True, help="folder for the part files")
    p.add_argument("--scheduler", help="address of a running scheduler (default: a LocalCluster)")
    p.add_argument("--scheduler-file", help="a running scheduler's file (dask-scheduler --scheduler-file)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    p.add_argument("--threads", type=int, default=None, help="threads per model (default: every core)")
    p.add_argument("--dtype", default="f32", choices=["f32", "bf16", "int8"])
    p.add_argument("--chunk", type=int, default=32, help="images per task (default 32)")
    p.add_argument("--normalize", action="store_true", help="L2-normalised embeddings")
    a = p.parse_args(argv)

    from distributed import Client, LocalCluster

    files = list_images(a.folder)
    if not files:
        sys.exit(f"dask_embed: no images under {a.folder}")
    if a.scheduler_file:
        client = Client(scheduler_file=a.scheduler_file)
    elif a.scheduler:
        client = Client(a.scheduler)
    else:
        client = Client(LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True))
    with client:
        kind, rows, records = embed_files(client, a.model, files, a.normalize, a.chunk, a.dtype, a.threads)
    write_part(a.output, rows, records)
    failed = sum("error" in r for r in records)
    print(f"dask_embed: {len(files)} images, {failed} failed, {kind} [{rows.shape[0]}, {rows.shape[1]}] -> {a.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
