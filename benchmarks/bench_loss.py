"""The decoder's cross-entropy pass, before and after the logsumexp change, interleaved in one process.

Run: ``.venv/bin/python benchmarks/bench_loss.py`` (about 20 s). Times value_and_grad of the
next-token NLL over [B=8, N=128, V=64128] float32 logits with the old formulation
(log_softmax + take_along_axis: the gradient is a zero-fill plus a scatter over the
logits) beside the one in mm_jax/model/loss.py (logsumexp minus the target logit picked
with an iota compare), and checks they agree.
"""
import time, jax, jax.numpy as jnp, numpy as np
B, N, V = 8, 128, 64128
k = jax.random.key(0)
logits = jax.random.normal(k, (B, N, V))
tgt = jax.random.randint(jax.random.key(1), (B, N), 0, 64000)
w = jnp.ones((B, N-1))
def old(l):
    lp = jax.nn.log_softmax(l[:, :-1], -1)
    return jnp.sum(-jnp.take_along_axis(lp, tgt[:, 1:, None], -1)[..., 0] * w)
def new(l):
    l = l[:, :-1]
    lse = jax.nn.logsumexp(l, -1)
    hit = jnp.sum(jnp.where(jnp.arange(V) == tgt[:, 1:, None], l, 0.0), -1)
    return jnp.sum((lse - hit) * w)
fo, fn = jax.jit(jax.value_and_grad(old)), jax.jit(jax.value_and_grad(new))
a, b = fo(logits), fn(logits)
print('value diff', float(abs(a[0]-b[0])/abs(a[0])), 'grad max diff', float(jnp.abs(a[1]-b[1]).max()))
to, tn = [], []
for i in range(6):
    t=time.perf_counter(); fo(logits)[1].block_until_ready(); to.append(time.perf_counter()-t)
    t=time.perf_counter(); fn(logits)[1].block_until_ready(); tn.append(time.perf_counter()-t)
print('old ms', np.median(to)*1e3, 'new ms', np.median(tn)*1e3)
