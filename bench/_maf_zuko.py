"""zuko's MAF with a given adjacency, trained by maximum likelihood (bench only).

The reference for bench/grf_vs_maf.py: reads the standardised training and test
sets and the DAG that bench wrote, builds ``zuko.flows.MAF`` with
``adjacency = A^T + I`` (row i: the nodes x_i may read; zuko wants ones on the
diagonal) so that every transformation follows the DAG, trains it with Adam on
minibatches (same batches, steps and learning-rate schedule as the deepbn run) and prints
one JSON line: test NLL (standardised units), steps/s over the timed steps and
the number of parameters.

    bench/.venv-torch/bin/python bench/_maf_zuko.py DATA.npz --steps 2000
"""

import argparse
import json
import time

import numpy as np
import torch
import zuko


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--transforms", type=int, default=4)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                    help="cosine: the learning rate decays to 0 over --steps (as optax's "
                         "cosine_decay_schedule on the deepbn side)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    data = np.load(args.data)
    train = torch.tensor(data["train"], dtype=torch.float32)
    test = torch.tensor(data["test"], dtype=torch.float32)
    order = torch.tensor(data["batches"], dtype=torch.long)  # (steps, batch) indices
    A = np.asarray(data["adjacency"], bool)
    d = A.shape[0]
    adjacency = torch.tensor(A.T | np.eye(d, dtype=bool))
    flow = zuko.flows.MAF(d, transforms=args.transforms, adjacency=adjacency,
                          hidden_features=args.hidden, activation=torch.nn.ELU)
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr)
    cosine = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
              if args.schedule == "cosine" else None)

    def step(idx):
        loss = -flow().log_prob(train[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if cosine is not None:
            cosine.step()
        return loss

    for k in range(args.steps):
        if k == args.warmup:  # the first steps (allocations, autograd set-up) are not timed
            start = time.perf_counter()
        step(order[k])
    seconds = time.perf_counter() - start
    with torch.no_grad():
        nll = float(-flow().log_prob(test).mean())
    print(json.dumps({"nll": nll, "steps_per_second": (args.steps - args.warmup) / seconds,
                      "seconds": seconds, "parameters": sum(p.numel() for p in
                                                            flow.parameters()),
                      "torch": torch.__version__, "zuko": zuko.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
