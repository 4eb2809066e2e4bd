"""Where one pass's time goes on the default model: the forward, and outside it propose, process
(CFG, layout mask, softmax), verify (acceptance and redrafting) and the loop's own inputs, commit
and cache bookkeeping. Means over 3 decodes after a warm-up, one thread.

    python perf/pass_breakdown.py
"""
import time, statistics, sys, collections, torch
torch.set_num_threads(1)
import pardecode
from pardecode.core import loop
b = pardecode.get_backbone("fashion")
spent = collections.defaultdict(float)
def timed(name, fn):
    def wrapper(*a, **k):
        t = time.perf_counter(); r = fn(*a, **k); spent[name] += time.perf_counter() - t; return r
    return wrapper
loop.target_probs = timed("process (CFG, mask, softmax)", loop.target_probs)
for batch, name, opts in [(8, "ar", {}), (8, "sjd", {"window": 2}), (1, "sjd", {"window": 8})]:
    strategy = pardecode.get_strategy(name, **opts)
    strategy.propose = timed("propose", strategy.propose)
    strategy.verify = timed("verify (accept, redraft)", strategy.verify)
    spent.clear(); steps = []; fwd = []
    for seed in range(4):
        r = pardecode.decode(b, strategy, ["a sneaker"] * batch, seed=seed)
        if seed: steps += r.trace.step_seconds; fwd += r.trace.forward_seconds
        else: spent.clear()
    n = len(steps)
    total = sum(steps) / n * 1e3; forward = sum(fwd) / n * 1e3
    parts = {k: v / n * 1e3 for k, v in spent.items()}
    parts["loop: inputs, commit, cache"] = total - forward - sum(parts.values())
    print(f"{name} {opts} batch {batch}: pass {total:.3f} ms = forward {forward:.3f} + " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
