#!/usr/bin/python3
"""compare_torch.py — the configurations of bench/bench_train, trained in PyTorch.

The same models (GPT-2 with a tied head; an embedding, nn.LSTM and a linear head), the same
sizes, float32, AdamW with clipping, batches of random byte tokens; prints one JSON line per
configuration: {"config": ..., "tokens_per_s": ..., "ms_per_step": ...}. Threads: --threads
(torch.set_num_threads); the environment (OMP_WAIT_POLICY, which OpenBLAS) is the caller's.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(c)
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.ln_2 = nn.LayerNorm(c)
        self.c_fc = nn.Linear(c, 4 * c)
        self.mlp_proj = nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q = q.view(b, t, self.h, c // self.h).transpose(1, 2)
        k = k.view(b, t, self.h, c // self.h).transpose(1, 2)
        v = v.view(b, t, self.h, c // self.h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.h))
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, c, h, ctx, vocab=256):
        super().__init__()
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Embedding(ctx, c)
        self.h = nn.ModuleList([Block(c, h) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(c)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


class LSTM(nn.Module):
    def __init__(self, layers, c, vocab=256):
        super().__init__()
        self.embedding = nn.Embedding(vocab, c)
        self.lstm = nn.LSTM(c, c, layers, batch_first=True)
        self.head = nn.Linear(c, vocab)

    def forward(self, idx):
        y, _ = self.lstm(self.embedding(idx))
        return self.head(y)


CONFIGS = {
    "gpt-small": dict(model="gpt", layers=4, dmodel=128, heads=4, ctx=64, batch=8),
    "gpt-medium": dict(model="gpt", layers=6, dmodel=384, heads=6, ctx=256, batch=4),
    "lstm": dict(model="lstm", layers=2, dmodel=256, heads=0, ctx=64, batch=32),
}


def run(name, cfg, steps, warmup):
    torch.manual_seed(1)
    if cfg["model"] == "gpt":
        m = GPT(cfg["layers"], cfg["dmodel"], cfg["heads"], cfg["ctx"])
    else:
        m = LSTM(cfg["layers"], cfg["dmodel"])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    b, t = cfg["batch"], cfg["ctx"]
    times = []
    for s in range(warmup + steps):
        x = torch.randint(0, 256, (b, t))
        y = torch.randint(0, 256, (b, t))
        t0 = time.perf_counter()
        loss = F.cross_entropy(m(x).view(-1, 256), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        loss.item()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    return {"config": name, "tokens_per_s": b * t / med, "ms_per_step": med * 1e3}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as installed)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("configs", nargs="*", default=list(CONFIGS))
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    for name in a.configs:
        if name not in CONFIGS:
            sys.exit("compare_torch.py: unknown configuration '%s' (%s)" % (name, ", ".join(CONFIGS)))
        r = run(name, CONFIGS[name], a.steps, a.warmup)
        r["threads"] = torch.get_num_threads()
        r["torch"] = torch.__version__
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
