"""The Graph VAE of deepbn.graph_vae.model written in plain PyTorch, for timing (bench only).

Same architecture (He et al., ICLR 2019, Appendix B as deepbn builds it): encoder
784-512-512-256-128 with batch norm and ELU, per-node bottom-up heads, top-down
prior and posterior heads on gated parents, precision-weighted fusion, decoder
80-128-256-512-512-784; learned gates by binary Gumbel-softmax; eager mode, Adam
with ``fused=True``. Prints one JSON line: steps/s over the timed steps.

    bench/.venv-torch/bin/python bench/_vae_torch.py DATA.npz --steps 300
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn

LOGVAR_RANGE = 12.0


def mlp(sizes, batch_norm, activate_last=False):
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2 or activate_last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b, momentum=0.1, eps=1e-5))
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


class GraphVAE(nn.Module):
    def __init__(self, input_dim=784, nodes=5, node_dim=16, structure="learned"):
        super().__init__()
        self.nodes, self.node_dim, self.structure = nodes, node_dim, structure
        self.edges = [(i, j) for j in range(nodes) for i in range(j + 1, nodes)]
        self.encoder = mlp([input_dim, 512, 512, 256, 128], True, activate_last=True)
        self.bottom_up = nn.ModuleList([mlp([128, 64, 2 * node_dim], False)
                                        for _ in range(nodes)])
        self.prior = nn.ModuleList([mlp([(nodes - 1 - j) * node_dim, 64, 2 * node_dim], False)
                                    for j in range(nodes - 1)])
        self.posterior = nn.ModuleList([mlp([(nodes - 1 - j) * node_dim, 64, 2 * node_dim],
                                            False) for j in range(nodes - 1)])
        self.decoder = mlp([nodes * node_dim, 128, 256, 512, 512, input_dim], True)
        self.gate_logits = nn.Parameter(torch.zeros(len(self.edges)))

    def head(self, net, x):
        out = net(x)
        mean, raw = out[:, : self.node_dim], out[:, self.node_dim :]
        return mean, LOGVAR_RANGE * torch.tanh(raw / LOGVAR_RANGE)

    @staticmethod
    def log_normal(z, mean, logvar):
        sq = (z - mean) ** 2 * torch.exp(-logvar)
        return -0.5 * (math.log(2 * math.pi) + logvar + sq).sum(-1)

    def forward(self, x, temperature):
        b = x.shape[0]
        u = torch.rand(b, len(self.edges)).clamp(1e-6, 1 - 1e-6)
        gates = torch.sigmoid((self.gate_logits + torch.log(u) - torch.log1p(-u)) / temperature)
        index = {e: k for k, e in enumerate(self.edges)}
        h = self.encoder(x)
        z = [None] * self.nodes
        kl = 0.0
        for j in reversed(range(self.nodes)):
            mean, logvar = self.head(self.bottom_up[j], h)
            if j == self.nodes - 1:
                p_mean, p_logvar = torch.zeros_like(mean), torch.zeros_like(logvar)
            else:
                pa = torch.cat([gates[:, index[(i, j)], None] * z[i]
                                for i in range(j + 1, self.nodes)], -1)
                p_mean, p_logvar = self.head(self.prior[j], pa)
                t_mean, t_logvar = self.head(self.posterior[j], pa)
                pb, pt = torch.exp(-logvar), torch.exp(-t_logvar)
                var = 1.0 / (pb + pt)
                mean, logvar = (mean * pb + t_mean * pt) * var, torch.log(var)
            z[j] = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            kl = kl + self.log_normal(z[j], mean, logvar) - self.log_normal(z[j], p_mean, p_logvar)
        logits = self.decoder(torch.cat(z, -1))
        bce = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        log_lik = -bce.sum(-1)
        return (log_lik - kl).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(0)
    train = torch.from_numpy(np.load(args.data)["train"].astype(np.float32))
    model = GraphVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    order = torch.randperm(train.shape[0])

    def step(k):
        idx = order[(k * args.batch) % (train.shape[0] - args.batch):][: args.batch]
        loss = -model(train[idx], 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    for k in range(args.warmup_steps):
        step(k)
    t0 = time.perf_counter()
    for k in range(args.steps):
        loss = step(args.warmup_steps + k)
    seconds = time.perf_counter() - t0
    print(json.dumps({"steps_per_second": args.steps / seconds, "steps": args.steps,
                      "threads": torch.get_num_threads(), "last_loss": loss,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
