"""longseq's functional cores as PyTorch operators (torch.ops.longseq.*), with autograd.

Every op runs the same C++ code as the library: on CPU float32/float64 its fused kernel (forward
and backward), elsewhere its composite LibTorch path. Each has a twin `<op>_composite` that always
runs the composite path, the reference the tests compare against. Defaults are those of the C++
schemas (read from the library's option structs when it registers them).

Layouts: attention takes q, k [B, H, T|S, D] and v [B, H, S, Dv] and returns [B, H, T, Dv].
Masks: `causal` (query i sees key j only if j <= i + S - T) and `key_padding` bool [B, S]
(True = a real token). A query that sees no key gets a zero row, never NaN. A bad argument raises
RuntimeError with the op's own message.
"""

import torch

_ops = torch.ops.longseq


def _pick(composite, name):
    return getattr(_ops, name + "_composite" if composite else name)


def exact_attention(q, k, v, causal=False, key_padding=None, allowed=None, dropout_p=0.0,
                    train=False, scale=None, composite=False):
    """softmax(q kᵀ·scale + mask) v in O(T) memory (FlashAttention on CPU).

    q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] -> [B, H, T, Dv]. scale defaults to 1/√D.
    allowed: optional bool pattern broadcastable to [B, H, T, S] (True = visible), and-ed with the
    causal and padding masks; it runs the composite path. dropout_p applies to the attention
    probabilities when train is True.
    """
    return _pick(composite, "exact_attention")(q, k, v, causal, key_padding, allowed, dropout_p,
                                                train, scale)


def linformer_attention(q, k, v, e_proj, f_proj, key_padding=None, dropout_p=0.0, train=False,
                        composite=False):
    """Linformer: softmax(q (E k)ᵀ/√D) (F v), E, F [R, >= S] sliced to their first S columns.

    q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] -> [B, H, T, Dv]. Non-causal only; padded
    keys are zeroed before the projection.
    """
    return _pick(composite, "linformer_attention")(q, k, v, e_proj, f_proj, key_padding,
                                                    dropout_p, train)


def longformer_attention(q, k, v, window=None, dilation=(1,), global_positions=(), causal=False,
                         key_padding=None, q_global=None, k_global=None, v_global=None,
                         dropout_p=0.0, train=False, block=None, composite=False):
    """Longformer: a sliding window with per-head dilation and global tokens. Self-attention.

    Non-causal: query i sees keys i + d·m, m in [-W/2, W/2] (W even); causal: i - d·m, m in [0, W].
    dilation: one value or one per head. Global positions (sorted, unique) see and are seen by every
    token; q_global/k_global/v_global [B, H, T, D] give them their own projections.
    q, k [B, H, T, D], v [B, H, T, Dv] -> [B, H, T, Dv]. window/block default to the library's.
    """
    op = _pick(composite, "longformer_attention")
    kwargs = {}
    if window is not None:
        kwargs["window"] = window
    if block is not None:
        kwargs["block"] = block
    return op(q, k, v, dilation=list(dilation), global_positions=list(global_positions),
              causal=causal, key_padding=key_padding, q_global=q_global, k_global=k_global,
              v_global=v_global, dropout_p=dropout_p, train=train, **kwargs)


def performer_draw_features(features, head_dim, seed=0, dtype=None):
    """Orthogonal random features omega [R, D] for FAVOR+ (a local RNG: same seed, same draw)."""
    return _ops.performer_draw_features(features, head_dim, seed, dtype)


def performer_features(q, k, omega, kernel="softmax", causal=False, key_padding=None,
                       composite=False):
    """FAVOR+ feature maps: (φ(q) [B, H, T, R], φ(k) [B, H, S, R], m).

    m [B, H, S] is the running key stabiliser of the causal softmax map (query t weighs key j by
    exp(m_j - m_t)), else None. Padded keys get zero features. kernel: "softmax" or "relu".
    """
    fq, fk, m = _pick(composite, "performer_features")(q, k, omega, kernel, causal, key_padding)
    return fq, fk, m


def performer_attention(q, k, v, omega, kernel="softmax", causal=False, chunk=None,
                        key_padding=None, composite=False):
    """FAVOR+ (Performer) attention with random features omega [R, D].

    q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] -> [B, H, T, Dv]. Causal (T == S) by chunked
    prefix sums of `chunk` positions, strictly causal in floating point; O(T·R) memory.
    """
    op = _pick(composite, "performer_attention")
    if chunk is None:
        return op(q, k, v, omega, kernel=kernel, causal=causal, key_padding=key_padding)
    return op(q, k, v, omega, kernel=kernel, causal=causal, chunk=chunk, key_padding=key_padding)


def linear_attention(fq, fk, v, causal=False, key_padding=None, chunk=None, composite=False):
    """Normalised linear attention over non-negative features (Katharopoulos et al. 2020).

    out_t = Σ_j (fq_t·fk_j) v_j / Σ_j fq_t·fk_j over the keys t sees. fq [B, H, T, R],
    fk [B, H, S, R], v [B, H, S, Dv] -> [B, H, T, Dv].
    """
    op = _pick(composite, "linear_attention")
    if chunk is None:
        return op(fq, fk, v, causal=causal, key_padding=key_padding)
    return op(fq, fk, v, causal=causal, key_padding=key_padding, chunk=chunk)


def reformer_draw_rotations(head_dim, buckets=None, n_hashes=None, seed=0, dtype=None):
    """Random rotations [n_hashes, D, max(buckets/2, 1)] for the LSH of reformer_attention."""
    kwargs = {}
    if buckets is not None:
        kwargs["buckets"] = buckets
    if n_hashes is not None:
        kwargs["n_hashes"] = n_hashes
    return _ops.reformer_draw_rotations(head_dim, seed=seed, dtype=dtype, **kwargs)


def reformer_attention(qk, v, rotations, buckets=None, n_hashes=None, chunk=None, causal=False,
                       key_padding=None, dropout_p=0.0, train=False, composite=False):
    """Reformer LSH attention with shared QK (keys are the queries normalised).

    qk [B, H, T, D], v [B, H, T, Dv], rotations from reformer_draw_rotations -> [B, H, T, Dv].
    Tokens see their own bucket in their own and the previous chunk of the sorted order, in each
    of n_hashes rounds; a token attends to itself only when it sees nothing else.
    """
    op = _pick(composite, "reformer_attention")
    kwargs = {}
    for name, value in (("buckets", buckets), ("n_hashes", n_hashes), ("chunk", chunk)):
        if value is not None:
            kwargs[name] = value
    if "n_hashes" not in kwargs and rotations is not None and rotations.dim() == 3:
        kwargs["n_hashes"] = rotations.size(0)
    return op(qk, v, rotations, causal=causal, key_padding=key_padding, dropout_p=dropout_p,
              train=train, **kwargs)


def linear_scan(a, b, h0=None, composite=False):
    """h_t = a_t ⊙ h_{t-1} + b_t; a, b [B, T, C], h0 [B, C] (zeros if None) -> h [B, T, C]."""
    return _pick(composite, "linear_scan")(a, b, h0)


def causal_conv1d(x, weight, bias=None, prefix=None, composite=False):
    """Causal depthwise convolution over time, channels last (Mamba's short convolution).

    x [B, T, E], weight [E, K], bias [E], prefix [B, K - 1, E] (the inputs before x; zeros if
    None) -> out [B, T, E], out[:, t] = bias + sum_k weight[:, k] * [prefix; x][:, t + k].
    """
    return _pick(composite, "causal_conv1d")(x, weight, bias, prefix)


def min_rnn_scan(xp, lstm=False, valid=None, h0=None, composite=False):
    """minGRU (lstm=False, xp [B, T, 2H]) or minLSTM (xp [B, T, 3H]) from the input projection.

    valid bool [B, T]: where False the state is kept. h0 [B, H]. Returns h [B, T, H].
    """
    return _pick(composite, "min_rnn_scan")(xp, lstm, valid, h0)


def selective_scan(u, delta, A, Bm, Cm, D=None, h0=None, composite=False):
    """Mamba's S6 scan: h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t, y_t = C_t h_t + D u_t.

    u, delta [B, T, E]; A [E, N]; Bm, Cm [B, T, N]; D [E]; h0 [B, E, N]. Returns (y [B, T, E],
    h_T [B, E, N]).
    """
    return _pick(composite, "selective_scan")(u, delta, A, Bm, Cm, D, h0)


def rnn_layer(cell, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, valid=None,
              reverse=False, composite=False):
    """One direction of an Elman/LSTM/GRU layer with PyTorch's weight layout and gate order.

    cell: "elman", "lstm" or "gru". x [B, T, I]; w_ih [G·H, I]; w_hh [G·H, H]. Returns
    (out [B, T, H], h [B, H], c [B, H] for LSTM else None).
    """
    out, h, c = _pick(composite, "rnn_layer")(cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, valid,
                                              reverse)
    return out, h, c


def lmu_system(order, window):
    """The LMU's discretised Legendre system (Ā [d, d], B̄ [d]), float64."""
    return _ops.lmu_system(order, float(window))


def lmu_memory(u, a_bar, b_bar):
    """The LMU memory m [B, T, U, d] of u [B, T, U] for all t (FFT convolution)."""
    return _ops.lmu_memory(u, a_bar, b_bar)


def lmu_memory_recurrent(u, a_bar, b_bar, m0=None):
    """The LMU memory by its recurrence m_t = Ā m_{t-1} + B̄ u_t from m0 [B, U, d]."""
    return _ops.lmu_memory_recurrent(u, a_bar, b_bar, m0)


def padding_mask_from_lengths(lengths, max_len):
    """Bool [B, max_len] key mask (True = real token) from lengths [B]."""
    return _ops.padding_mask_from_lengths(lengths, max_len)


__all__ = [name for name in dir() if not name.startswith("_") and name != "torch"]
