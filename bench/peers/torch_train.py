#!/usr/bin/env python3
"""PyTorch CPU training-step peer for bench/train.ts.

    /usr/bin/python3 bench/peers/torch_train.py --threads T --data DIR

Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the environment
(bench/train.ts does): see /work/shared/BENCH.md.

It speaks the line protocol of bench/train.ts:
    stdout: READY {info}                        once torch is imported
    stdin:  run {"net":[784,300,100,10],"batch":128,"steps":N}
    stdout: RESULT {"ms":..., "loss_first":..., "loss_last":...}   or   ERROR message

Threads: T OpenBLAS threads do the GEMMs (nearly all of the work), and ATen's
own OpenMP pool (the elementwise ops) gets --intra-op threads, default 1. With
both pools at T on a small machine, OpenMP workers spin while OpenBLAS wants the
cores and a step gets several times slower (measured here: 784-1024-1024-10 at
batch 128 on 2 cores, 5.3 ms/step with 1 OpenMP + 2 OpenBLAS threads against
~15 ms/step with 2 + 2), so the default gives PyTorch its best setting.

DIR holds x.f32 (n x 784 float32, row-major) and y.u8 (n labels) written by the
parent: the same training samples our own worker trains on. Each run is what a
PyTorch user writes: per step, a shuffled batch gathered with index_select from
the first steps*batch samples (a fresh torch.randperm per run, like one epoch of
fit(shuffle=True)), forward, F.cross_entropy on logits, zero_grad, backward,
torch.optim.SGD(lr=0.01, momentum=0.9).step().
"""
import json
import os
import sys
import time


def reply(kind, body):
    text = body if isinstance(body, str) else json.dumps(body)
    sys.stdout.write(f"{kind} {text}\n")
    sys.stdout.flush()


def arg(name, default=None):
    if name in sys.argv:
        i = sys.argv.index(name)
        if i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    if default is None:
        raise SystemExit(f"torch_train.py: missing {name}")
    return default


def main():
    threads = int(arg("--threads"))
    intra_op = int(arg("--intra-op", "1"))
    data_dir = arg("--data")
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except Exception as err:  # noqa: BLE001 - report any import failure
        reply("ERROR", f"cannot import torch/numpy: {err}".replace("\n", " "))
        return 1

    default_threads = "--default-threads" in sys.argv
    torch.set_num_threads(threads if default_threads else intra_op)
    torch.manual_seed(0)
    blas_core = "unknown"
    try:
        # Debian's torch does its float GEMMs in the system libblas.so.3, which is
        # OpenBLAS here: it keeps its own thread count, so pin it to ours too.
        import ctypes
        blas = ctypes.CDLL("libblas.so.3")
        if not default_threads:  # as users run it: OpenBLAS keeps its own default
            blas.openblas_set_num_threads(threads)
        blas.openblas_get_corename.restype = ctypes.c_char_p
        blas_core = "openblas-" + blas.openblas_get_corename().decode()
    except Exception:  # noqa: BLE001 - not OpenBLAS: let ATen's pool have the threads
        torch.set_num_threads(threads)
    x_all = torch.from_numpy(np.fromfile(os.path.join(data_dir, "x.f32"), dtype=np.float32).reshape(-1, 784))
    y_all = torch.from_numpy(np.fromfile(os.path.join(data_dir, "y.u8"), dtype=np.uint8).astype(np.int64))

    models = {}

    def setup(net, batch):
        key = (tuple(net), batch)
        if key in models:
            return models[key]
        mods = []
        for i in range(1, len(net)):
            mods.append(torch.nn.Linear(net[i - 1], net[i]))
            if i < len(net) - 1:
                mods.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*mods)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        models[key] = (model, opt)
        return models[key]

    def run(req):
        net, batch, steps = req["net"], int(req["batch"]), int(req["steps"])
        n = steps * batch
        if x_all.shape[0] < n:
            raise ValueError(f"only {x_all.shape[0]} samples, need {n}")
        model, opt = setup(net, batch)
        x, y = x_all[:n], y_all[:n]
        first = last = float("nan")
        start = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            xb = x.index_select(0, idx)
            yb = y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            # Reading the loss back each step, as a training loop that logs would
            # (and as ours and TF.js do); it also keeps the step synchronous.
            value = loss.item()
            if s == 0:
                first = value
            last = value
        ms = (time.perf_counter() - start) * 1e3
        return {"ms": ms, "loss_first": first, "loss_last": last}

    reply("READY", {
        "impl": "pytorch",
        "version": torch.__version__,
        "numpy": np.__version__,
        "threads": threads,
        "intra_op_threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "blas": blas_core,
        "data": "the parent's training samples, shuffled batches (index_select)",
    })
    for line in sys.stdin:
        text = line.strip()
        if text == "quit":
            break
        if not text.startswith("run "):
            continue
        try:
            reply("RESULT", run(json.loads(text[4:])))
        except Exception as err:  # noqa: BLE001 - report, keep serving
            reply("ERROR", str(err).replace("\n", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
