"""longseq.ops from Python: every op against a plain-torch reference written here (forward and
backward, causal, padding, odd lengths), torch.autograd.gradcheck in float64 on tiny shapes for
the op and its composite twin, gradgradcheck where the backward is differentiable (the composite
twins), causality under perturbed future tokens, and the ops' own error messages."""

import math

import pytest
import torch

import longseq
from longseq import ops

torch.set_default_dtype(torch.float64)
F64 = torch.float64


def rand(*shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=F64).requires_grad_(requires_grad)


def lengths_mask(lengths, t):
    return torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # [B, T]


def close(a, b, tol=1e-9):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert err <= tol * (1 + b.abs().max().item() if b.numel() else 1), "max error %g" % err


def fwd_bwd_match(fn, ref, inputs, tol=1e-9, seed=7):
    """fn and ref agree in value and in the gradients of a random projection of the output."""
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    ys = [x.detach().clone().requires_grad_(True) for x in inputs]
    out, want = fn(*xs), ref(*ys)
    close(out, want, tol)
    probe = rand(*out.shape, seed=seed)
    g_out = torch.autograd.grad((out * probe).sum(), xs, allow_unused=True)
    g_ref = torch.autograd.grad((want * probe).sum(), ys, allow_unused=True)
    for a, b in zip(g_out, g_ref):
        if b is None:
            continue
        close(a, b, tol)


def softmax_masked(scores, allowed):
    """Plain softmax over allowed entries; rows with nothing allowed give zeros."""
    filled = scores.masked_fill(~allowed, float("-inf"))
    any_ = allowed.any(-1, keepdim=True)
    probs = torch.softmax(filled.masked_fill(~any_, 0.0), -1)
    return probs * any_


def allowed_of(b, t, s, causal, key_padding):
    allowed = torch.ones(b, 1, t, s, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(t, s, dtype=torch.bool).tril(s - t)
    if key_padding is not None:
        allowed = allowed & key_padding.view(b, 1, 1, s)
    return allowed


# ---- exact ------------------------------------------------------------------------------------


def exact_ref(q, k, v, causal=False, key_padding=None, scale=None):
    b, _, t, d = q.shape
    s = k.shape[2]
    scale = 1 / math.sqrt(d) if scale is None else scale
    allowed = allowed_of(b, t, s, causal, key_padding)
    probs = softmax_masked(q @ k.transpose(-1, -2) * scale, allowed)
    return probs @ v


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("composite", [False, True])
def test_exact_matches_reference(causal, padded, composite):
    b, h, t, s, d = 2, 3, 7, 11, 5
    q, k, v = rand(b, h, t, d, seed=1), rand(b, h, s, d, seed=2), rand(b, h, s, d, seed=3)
    kp = lengths_mask([11, 6], s) if padded else None
    fwd_bwd_match(lambda q, k, v: ops.exact_attention(q, k, v, causal, kp, composite=composite),
                  lambda q, k, v: exact_ref(q, k, v, causal, kp), [q, k, v])


def test_exact_float32_runs_the_fused_kernel():
    q = rand(1, 2, 33, 16, seed=4).float().requires_grad_(True)
    out = ops.exact_attention(q, q, q, causal=True)
    assert "Flash" in out.grad_fn.name()
    close(out.double(), exact_ref(q.double(), q.double(), q.double(), True), 1e-5)


def test_exact_explicit_pattern():
    b, h, t, d = 2, 2, 6, 4
    q, k, v = rand(b, h, t, d, seed=5), rand(b, h, t, d, seed=6), rand(b, h, t, d, seed=7)
    allowed = rand(h, t, t, seed=8) > 0
    allowed[:, :, 0] = True
    probs = softmax_masked(q @ k.transpose(-1, -2) / math.sqrt(d), allowed.unsqueeze(0))
    close(ops.exact_attention(q, k, v, allowed=allowed), probs @ v)


# ---- linformer --------------------------------------------------------------------------------


def linformer_ref(q, k, v, e, f, key_padding=None):
    s = k.shape[2]
    if key_padding is not None:
        keep = key_padding.view(k.shape[0], 1, s, 1).to(k.dtype)
        k, v = k * keep, v * keep
    kp, vp = e[:, :s] @ k, f[:, :s] @ v
    return torch.softmax(q @ kp.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vp


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("composite", [False, True])
def test_linformer_matches_reference(padded, composite):
    b, h, t, d, r = 2, 2, 9, 4, 5
    q, k, v = rand(b, h, t, d, seed=1), rand(b, h, t, d, seed=2), rand(b, h, t, d, seed=3)
    e, f = rand(r, 12, seed=4) / 3, rand(r, 12, seed=5) / 3
    kp = lengths_mask([9, 4], t) if padded else None
    fwd_bwd_match(
        lambda q, k, v, e, f: ops.linformer_attention(q, k, v, e, f, kp, composite=composite),
        lambda q, k, v, e, f: linformer_ref(q, k, v, e, f, kp), [q, k, v, e, f])


# ---- longformer -------------------------------------------------------------------------------


def longformer_allowed(h, t, window, dilation, globals_, causal):
    pos = torch.arange(t)
    rel = pos.view(1, -1) - pos.view(-1, 1)  # key - query
    out = torch.zeros(h, t, t, dtype=torch.bool)
    for head in range(h):
        d = dilation[head] if len(dilation) > 1 else dilation[0]
        on_grid = rel % d == 0
        steps = torch.div(rel, d, rounding_mode="floor")
        reach = (steps <= 0) & (steps >= -window) if causal else steps.abs() <= window // 2
        out[head] = on_grid & reach
    for g in globals_:
        out[:, g, :] = True
        out[:, :, g] = True
    if causal:
        out &= torch.ones(t, t, dtype=torch.bool).tril()
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("composite", [False, True])
def test_longformer_matches_reference(causal, padded, composite):
    b, h, t, d, w = 2, 2, 13, 4, 4
    dil, globals_ = [1, 2], [0, 7]
    q, k, v = rand(b, h, t, d, seed=1), rand(b, h, t, d, seed=2), rand(b, h, t, d, seed=3)
    kp = lengths_mask([13, 9], t) if padded else None
    allowed = longformer_allowed(h, t, w, dil, globals_, causal).unsqueeze(0)
    if kp is not None:
        allowed = allowed & kp.view(b, 1, 1, t)

    def ref(q, k, v):
        return softmax_masked(q @ k.transpose(-1, -2) / math.sqrt(d), allowed) @ v

    fwd_bwd_match(lambda q, k, v: ops.longformer_attention(
        q, k, v, window=w, dilation=dil, global_positions=globals_, causal=causal,
        key_padding=kp, composite=composite), ref, [q, k, v])


# ---- performer, its features, linear attention ---------------------------------------------------


def performer_features_ref(x, omega, kernel):
    """Unstabilised FAVOR+ features (the stabilisers cancel exactly)."""
    d, r = x.shape[-1], omega.shape[0]
    xs = x * d ** -0.25
    proj = xs @ omega.t()
    if kernel == "relu":
        return torch.relu(proj) / math.sqrt(r) + 1e-3
    return torch.exp(proj - (xs * xs).sum(-1, keepdim=True) / 2) / math.sqrt(r)


def linear_ref(fq, fk, v, causal=False, key_padding=None):
    w = fq @ fk.transpose(-1, -2)  # [B, H, T, S]
    b, _, t, s = w.shape
    w = w * allowed_of(b, t, s, causal, key_padding).to(w.dtype)
    den = w.sum(-1, keepdim=True)
    return (w @ v) / den.masked_fill(den == 0, 1)


@pytest.mark.parametrize("kernel", ["softmax", "relu"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("composite", [False, True])
def test_performer_matches_reference(kernel, causal, padded, composite):
    b, h, t, d, r = 2, 2, 11, 4, 6
    q, k, v = rand(b, h, t, d, seed=1), rand(b, h, t, d, seed=2), rand(b, h, t, d, seed=3)
    omega = ops.performer_draw_features(r, d, seed=3, dtype=F64)
    kp = lengths_mask([11, 7], t) if padded else None

    def ref(q, k, v):
        fq, fk = performer_features_ref(q, omega, kernel), performer_features_ref(k, omega, kernel)
        return linear_ref(fq, fk, v, causal, kp)

    fwd_bwd_match(lambda q, k, v: ops.performer_attention(
        q, k, v, omega, kernel=kernel, causal=causal, chunk=4, key_padding=kp,
        composite=composite), ref, [q, k, v])


@pytest.mark.parametrize("causal", [False, True])
def test_performer_features_times_linear_attention_is_performer_attention(causal):
    b, h, t, d = 1, 2, 9, 4
    q, k, v = rand(b, h, t, d, seed=1), rand(b, h, t, d, seed=2), rand(b, h, t, d, seed=3)
    omega = ops.performer_draw_features(8, d, seed=1, dtype=F64)
    fq, fk, m = ops.performer_features(q, k, omega, causal=causal)
    assert (m is not None) == causal
    if causal:  # query t weighs key j by exp(m_j - m_t): fold it into the features
        fq, fk = fq * torch.exp(-m).unsqueeze(-1), fk * torch.exp(m).unsqueeze(-1)
    close(ops.linear_attention(fq, fk, v, causal=causal),
          ops.performer_attention(q, k, v, omega, causal=causal), 1e-9)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("composite", [False, True])
def test_linear_attention_matches_reference(causal, padded, composite):
    b, h, t, r = 2, 2, 10, 3
    fq, fk = rand(b, h, t, r, seed=1).exp(), rand(b, h, t, r, seed=2).exp()
    v = rand(b, h, t, 4, seed=3)
    kp = lengths_mask([10, 3], t) if padded else None
    fwd_bwd_match(lambda fq, fk, v: ops.linear_attention(fq, fk, v, causal, kp, chunk=3,
                                                         composite=composite),
                  lambda fq, fk, v: linear_ref(fq, fk, v, causal, kp), [fq, fk, v])


# ---- reformer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("composite", [False, True])
def test_reformer_one_bucket_one_chunk_is_shared_qk_attention(causal, composite):
    b, h, t, d = 2, 2, 9, 4
    qk, v = rand(b, h, t, d, seed=1), rand(b, h, t, d, seed=2)
    kp = lengths_mask([9, 6], t)
    rot = ops.reformer_draw_rotations(d, buckets=1, n_hashes=1, seed=0, dtype=F64)

    def ref(qk, v):
        kn = qk / qk.norm(dim=-1, keepdim=True)
        allowed = allowed_of(b, t, t, causal, kp)
        eye = torch.eye(t, dtype=torch.bool)
        others = allowed & ~eye
        # A token attends to itself only when it sees nothing else.
        allowed = torch.where(others.any(-1, keepdim=True), others, allowed & eye)
        if causal:  # padded tokens hash to a bucket of their own, and causal rounds stay in theirs
            allowed = allowed & kp.view(b, 1, t, 1)
        return softmax_masked(qk @ kn.transpose(-1, -2) / math.sqrt(d), allowed) @ v

    fwd_bwd_match(lambda qk, v: ops.reformer_attention(qk, v, rot, buckets=1, n_hashes=1, chunk=t,
                                                       causal=causal, key_padding=kp,
                                                       composite=composite), ref, [qk, v])


def test_reformer_fused_matches_composite_with_buckets_and_rounds():
    qk, v = rand(2, 2, 37, 8, seed=1), rand(2, 2, 37, 8, seed=2)
    rot = ops.reformer_draw_rotations(8, buckets=4, n_hashes=3, seed=5, dtype=F64)
    for causal in (False, True):
        fwd_bwd_match(
            lambda qk, v: ops.reformer_attention(qk, v, rot, buckets=4, chunk=5, causal=causal),
            lambda qk, v: ops.reformer_attention(qk, v, rot, buckets=4, chunk=5, causal=causal,
                                                 composite=True), [qk, v])


# ---- scans and recurrences ----------------------------------------------------------------------


def linear_scan_ref(a, b, h0=None):
    h = torch.zeros_like(a[:, 0]) if h0 is None else h0
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def g(x):
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def min_rnn_ref(xp, lstm, valid=None, h0=None):
    parts = xp.chunk(3 if lstm else 2, -1)
    if lstm:
        f, i = torch.sigmoid(parts[0]), torch.sigmoid(parts[1])
        a, gate = f / (f + i), i / (f + i)
    else:
        gate = torch.sigmoid(parts[0])
        a = 1 - gate
    b = gate * g(parts[-1])
    if valid is not None:
        a = torch.where(valid.unsqueeze(-1), a, torch.ones_like(a))
        b = torch.where(valid.unsqueeze(-1), b, torch.zeros_like(b))
    return linear_scan_ref(a, b, h0)


@pytest.mark.parametrize("composite", [False, True])
def test_linear_scan_matches_reference(composite):
    a, b, h0 = rand(2, 9, 5, seed=1).sigmoid(), rand(2, 9, 5, seed=2), rand(2, 5, seed=3)
    fwd_bwd_match(lambda a, b, h0: ops.linear_scan(a, b, h0, composite=composite),
                  linear_scan_ref, [a, b, h0])


@pytest.mark.parametrize("lstm", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("composite", [False, True])
def test_min_rnn_scan_matches_reference(lstm, padded, composite):
    h = 4
    xp, h0 = rand(2, 7, (3 if lstm else 2) * h, seed=1), rand(2, h, seed=2).abs() + 0.1
    valid = lengths_mask([7, 4], 7) if padded else None
    fwd_bwd_match(lambda xp, h0: ops.min_rnn_scan(xp, lstm, valid, h0, composite=composite),
                  lambda xp, h0: min_rnn_ref(xp, lstm, valid, h0), [xp, h0], tol=1e-8)


def causal_conv_ref(x, weight, bias, prefix):
    k = weight.shape[1]
    full = torch.cat([prefix, x], 1)
    return bias + sum(weight[:, j] * full[:, j:j + x.shape[1]] for j in range(k))


@pytest.mark.parametrize("composite", [False, True])
def test_causal_conv1d_matches_reference(composite):
    x, w, bias, prefix = rand(2, 9, 5, seed=1), rand(5, 4, seed=2), rand(5, seed=3), \
        rand(2, 3, 5, seed=4)
    fwd_bwd_match(lambda x, w, b, p: ops.causal_conv1d(x, w, b, p, composite=composite),
                  causal_conv_ref, [x, w, bias, prefix])
    close(ops.causal_conv1d(x, w, composite=composite),
          causal_conv_ref(x, w, torch.zeros(5, dtype=F64), torch.zeros(2, 3, 5, dtype=F64)), 1e-12)


def selective_ref(u, delta, A, Bm, Cm, D, h0):
    h, ys = h0, []
    for t in range(u.shape[1]):
        da = torch.exp(delta[:, t].unsqueeze(-1) * A)
        h = da * h + (delta[:, t] * u[:, t]).unsqueeze(-1) * Bm[:, t].unsqueeze(1)
        ys.append((h * Cm[:, t].unsqueeze(1)).sum(-1) + D * u[:, t])
    return torch.stack(ys, 1), h


@pytest.mark.parametrize("composite", [False, True])
def test_selective_scan_matches_reference(composite):
    b, t, e, n = 2, 7, 3, 4
    u, delta = rand(b, t, e, seed=1), rand(b, t, e, seed=2).sigmoid()
    A, Bm, Cm = -rand(e, n, seed=3).exp(), rand(b, t, n, seed=4), rand(b, t, n, seed=5)
    D, h0 = rand(e, seed=6), rand(b, e, n, seed=7)
    inputs = [u, delta, A, Bm, Cm, D, h0]
    fwd_bwd_match(lambda *x: torch.cat([y.flatten() for y in
                                        ops.selective_scan(*x, composite=composite)]),
                  lambda *x: torch.cat([y.flatten() for y in selective_ref(*x)]), inputs)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("composite", [False, True])
def test_rnn_layer_matches_torch_nn(cell, composite):
    i, h = 3, 4
    torch.manual_seed(0)
    ref = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        i, h, batch_first=True).double()
    x = rand(2, 6, i, seed=1)
    w = [ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0]

    def ours(x, *w):
        out, hn, _ = ops.rnn_layer(cell, x, *w, composite=composite)
        return torch.cat([out.flatten(), hn.flatten()])

    def theirs(x, *w):
        out, state = torch.nn.utils.stateless.functional_call(
            ref, dict(zip(["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"], w)), (x,))
        hn = state[0] if cell == "lstm" else state
        return torch.cat([out.flatten(), hn[0].flatten()])

    fwd_bwd_match(ours, theirs, [x] + [t.detach() for t in w])


def test_rnn_layer_padding_keeps_the_state():
    x, valid = rand(2, 6, 3, seed=1), lengths_mask([6, 3], 6)
    w_ih, w_hh = rand(16, 3, seed=2) / 2, rand(16, 4, seed=3) / 2
    out, h, c = ops.rnn_layer("lstm", x, w_ih, w_hh, valid=valid)
    short, h_short, c_short = ops.rnn_layer("lstm", x[1:, :3], w_ih, w_hh)
    close(h[1:], h_short)
    close(c[1:], c_short)
    assert out[1, 3:].abs().max().item() == 0


def test_lmu_memory_matches_its_recurrence():
    a_bar, b_bar = ops.lmu_system(6, 8.0)
    u = rand(2, 11, 3, seed=1)
    fwd_bwd_match(lambda u: ops.lmu_memory(u, a_bar, b_bar),
                  lambda u: ops.lmu_memory_recurrent(u, a_bar, b_bar), [u])

    def plain(u):
        m, ms = torch.zeros(2, 3, 6), []
        for t in range(u.shape[1]):
            m = m @ a_bar.t() + u[:, t].unsqueeze(-1) * b_bar
            ms.append(m)
        return torch.stack(ms, 1)

    fwd_bwd_match(lambda u: ops.lmu_memory(u, a_bar, b_bar), plain, [u])


# ---- gradcheck / gradgradcheck ------------------------------------------------------------------


def tiny_cases():
    """(name, function of the differentiable inputs, inputs, backward differentiable?)."""
    b, h, t, d = 1, 2, 5, 3
    q, k, v = rand(b, h, t, d, seed=1), rand(b, h, t, d, seed=2), rand(b, h, t, d, seed=3)
    kp = lengths_mask([4], t)
    omega = ops.performer_draw_features(4, d, seed=2, dtype=F64)
    rot = ops.reformer_draw_rotations(d, buckets=2, n_hashes=2, seed=1, dtype=F64)
    e, f = rand(3, t, seed=4) / 2, rand(3, t, seed=5) / 2
    cases = []
    for comp in (False, True):
        tag = "_composite" if comp else ""
        cases += [
            ("exact" + tag, lambda q, k, v, c=comp: ops.exact_attention(
                q, k, v, True, kp, composite=c), [q, k, v], comp),
            ("linformer" + tag, lambda q, k, v, c=comp: ops.linformer_attention(
                q, k, v, e, f, kp, composite=c), [q, k, v], comp),
            ("longformer" + tag, lambda q, k, v, c=comp: ops.longformer_attention(
                q, k, v, window=2, global_positions=[1], causal=True, key_padding=kp,
                composite=c), [q, k, v], comp),
            ("performer" + tag, lambda q, k, v, c=comp: ops.performer_attention(
                q, k, v, omega, causal=True, chunk=2, key_padding=kp, composite=c),
             [q, k, v], comp),
            ("performer_features" + tag, lambda q, k, c=comp: torch.cat([
                x.flatten() for x in ops.performer_features(q, k, omega, "relu", composite=c)[:2]]),
             [q, k], comp),
            ("linear" + tag, lambda q, k, v, c=comp: ops.linear_attention(
                q.exp(), k.exp(), v, True, kp, chunk=2, composite=c), [q, k, v], comp),
            ("reformer" + tag, lambda q, v, c=comp: ops.reformer_attention(
                q, v, rot, buckets=2, chunk=2, causal=True, key_padding=kp, composite=c),
             [q, v], comp),
            ("linear_scan" + tag, lambda a, b, c=comp: ops.linear_scan(a.sigmoid(), b, composite=c),
             [rand(2, 4, 3, seed=6), rand(2, 4, 3, seed=7)], comp),
            ("min_rnn_scan" + tag, lambda x, c=comp: ops.min_rnn_scan(x, True, composite=c),
             [rand(2, 4, 6, seed=8)], comp),
            ("selective_scan" + tag, lambda u, dl, c=comp: ops.selective_scan(
                u, dl.sigmoid(), -torch.ones(3, 2), rand(2, 4, 2, seed=9), rand(2, 4, 2, seed=10),
                composite=c)[0], [rand(2, 4, 3, seed=11), rand(2, 4, 3, seed=12)], comp),
            ("rnn_layer" + tag, lambda x, wi, wh, c=comp: ops.rnn_layer(
                "gru", x, wi, wh, composite=c)[0],
             [rand(2, 4, 3, seed=13), rand(6, 3, seed=14) / 2, rand(6, 2, seed=15) / 2], comp),
        ]
    cases.append(("lmu_memory", lambda u: ops.lmu_memory(u, *ops.lmu_system(3, 4.0)),
                  [rand(1, 5, 2, seed=16)], True))
    return cases


@pytest.mark.parametrize("case", tiny_cases(), ids=lambda c: c[0])
def test_gradcheck(case):
    _, fn, inputs, backward_differentiable = case
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)
    if backward_differentiable:
        assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5)


# ---- causality ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["exact", "longformer", "performer", "linear", "reformer",
                                  "linear_scan", "min_rnn_scan", "selective_scan", "rnn_layer",
                                  "lmu_memory", "causal_conv1d"])
def test_future_tokens_do_not_change_earlier_outputs(name):
    b, h, t, d, cut = 2, 2, 16, 4, 9
    omega = ops.performer_draw_features(8, d, seed=0, dtype=F64)
    rot = ops.reformer_draw_rotations(d, buckets=4, n_hashes=2, seed=0, dtype=F64)
    w_ih, w_hh = rand(16, d, seed=20) / 2, rand(16, 4, seed=21) / 2
    a_bar, b_bar = ops.lmu_system(4, 6.0)
    fns = {
        "exact": lambda x: ops.exact_attention(x, x, x, causal=True),
        "longformer": lambda x: ops.longformer_attention(x, x, x, window=3, dilation=[1, 2],
                                                         causal=True),
        "performer": lambda x: ops.performer_attention(x, x * 3, x, omega, causal=True, chunk=4),
        "linear": lambda x: ops.linear_attention(x.exp(), x.exp(), x, causal=True, chunk=4),
        "reformer": lambda x: ops.reformer_attention(x, x, rot, buckets=4, chunk=4, causal=True),
        "linear_scan": lambda x: ops.linear_scan(x[0].sigmoid(), x[1]),
        "min_rnn_scan": lambda x: ops.min_rnn_scan(x[0], False),
        "selective_scan": lambda x: ops.selective_scan(
            x[0][..., :2], x[1][..., :2].sigmoid(), -torch.ones(2, 3), x[0][..., :3],
            x[1][..., :3])[0],
        "rnn_layer": lambda x: ops.rnn_layer("lstm", x[0], w_ih, w_hh)[0],
        "lmu_memory": lambda x: ops.lmu_memory(x[0], a_bar, b_bar),
        "causal_conv1d": lambda x: ops.causal_conv1d(x[0], x[1][0, :3, :].t()),
    }
    # Inputs [2, 2, T, 4]: attention reads them as [B, H, T, D], the scans as two [B, T, C].
    out_dim = 2 if name in ("exact", "longformer", "performer", "linear", "reformer") else 1
    x = rand(b, h, t, d, seed=1)
    y = x.clone()
    y.narrow(2, cut, t - cut).mul_(30).add_(5)  # huge future tokens
    base, pert = fns[name](x), fns[name](y)
    early, early_pert = base.narrow(out_dim, 0, cut), pert.narrow(out_dim, 0, cut)
    if name == "lmu_memory":
        # An FFT convolution is causal up to rounding: every output carries float64 round-off of
        # the whole (perturbed) input.
        assert (early - early_pert).abs().max() <= 1e-12 * pert.abs().max()
    else:
        assert torch.equal(early, early_pert), name
    assert not torch.equal(base, pert)


# ---- errors -------------------------------------------------------------------------------------


def test_errors_are_python_exceptions_with_the_ops_message():
    q = rand(1, 2, 6, 8)
    with pytest.raises(RuntimeError,
                       match=r"exact_attention: expected 4-D `q` \[B, H, T, D\], got 3-D"):
        ops.exact_attention(q[0], q, q)
    with pytest.raises(RuntimeError,
                       match=r"expected `key_padding` of shape \[1, 6\], got \[1, 5\]"):
        ops.exact_attention(q, q, q, key_padding=torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(RuntimeError, match=r"exact_attention: expected `allowed` broadcastable to "
                                           r"\[B, H, T, S\] = \[1, 2, 6, 6\].*got \[6, 5\]"):
        ops.exact_attention(q, q, q, allowed=torch.ones(6, 5, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="linformer_attention: sequence length 6 exceeds"):
        ops.linformer_attention(q, q, q, torch.ones(3, 4), torch.ones(3, 4))
    with pytest.raises(RuntimeError,
                       match="performer_attention: expected `kernel` softmax or relu"):
        ops.performer_attention(q, q, q, torch.ones(4, 8), kernel="gelu")
    with pytest.raises(RuntimeError,
                       match=r"longformer_attention: non-causal `window` must be even"):
        ops.longformer_attention(q, q, q, window=3)
    with pytest.raises(RuntimeError,
                       match="reformer_attention: expected `buckets` to be 1 or an even"):
        ops.reformer_attention(q, q, torch.ones(2, 8, 1), buckets=3)
    with pytest.raises(RuntimeError, match="rnn_layer: expected `cell` elman, lstm or gru"):
        ops.rnn_layer("tanh", q[0], torch.ones(4, 6), torch.ones(4, 4))
    with pytest.raises(RuntimeError, match=r"linear_scan: expected .*`b`"):
        ops.linear_scan(q[0], q[0, :1])


def test_fused_or_an_error_under_the_fused_switch(monkeypatch):
    """LONGSEQ_IMPL=fused is read at first use; the ops then refuse what no kernel covers."""
    import subprocess, sys, os
    code = ("import torch, longseq; q = torch.randn(1, 2, 6, 4);"
            "longseq.ops.exact_attention(q, q, q, dropout_p=0.5, train=True)")
    env = dict(os.environ, LONGSEQ_IMPL="fused")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "exact_attention: the fused kernel was required" in r.stderr
    assert "dropout while training" in r.stderr
