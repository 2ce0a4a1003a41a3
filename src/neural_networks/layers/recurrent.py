"""Recurrent layers: RNN, LSTM and GRU (``torch.nn``'s equations, batch-first), and the
course's Elman network.

Shared conventions
------------------
Sequences are batch-first, X (N, T, d); the initial state is zero; one layer, one
direction. Parameters are ``torch.nn.RNN/LSTM/GRU``'s, transposed to this library's
(n_in, n_out) layout, with the g gates side by side in torch's order::

    W_ih (d, g·n)    W_hh (n, g·n)    b_ih (1, g·n)    b_hh (1, g·n)

so torch's ``weight_ih_l0`` is ``W_ih.T`` and ``bias_ih_l0`` is ``b_ih[0]``.

Computation: the input projection of every time step is ONE matrix product on the
(T·N, d + 1) stack of the inputs with a column of ones appended, [X 1] [W_ih; b], which
adds the bias too; each step then adds one product ``h_{t-1} W_hh``. In the backward
pass (backpropagation through time) each step costs one product ``dG_t W_hhᵀ`` (the
gradient carried to h_{t-1}), where dG_t = dL/d(gate pre-activations)_t; after the loop
the parameter gradients are one product each on the stacked steps::

    [dW_ih; db_ih] = Σ_t [x_t 1]ᵀ dG_t  = [X 1]_stackᵀ dG_stack
    dW_hh          = Σ_t h_{t-1}ᵀ dG_t  = H_prev_stackᵀ dG_stack
    dX_t           = dG_t W_ihᵀ         = (dG_stack W_ihᵀ) reshaped

Internally everything is time-major, (T, N, ·), so every step's slice is contiguous.
LSTM and GRU compute their sigmoids and tanhs from one exponential each
(σ(a) = 1/(1 + e^{−a}), tanh(a) = 2σ(2a) − 1), with e^{−a} overflowing to inf on
purpose: that gives the exact limits 0 and −1 (the overflow warning is silenced).

The arrays a forward keeps for backward (``cache``) are fresh for every forward; the
outputs returned are copies, never views of the cache.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..activations import Activation, ReLU, TanH, initialize_activation, keep_where
from ..errors import ShapeError, UnknownNameError
from ..utils.validation import BOOLEAN, Integral, Interval, StrOptions, validate_params
from ..weights import initialize_weights
from .base import KernelLayer, Layer


# -- element-wise helpers ------------------------------------------------------------------
def _logistic_of_negated(E: np.ndarray) -> np.ndarray:
    """In place: E holds −a on entry and σ(a) = 1/(1 + e^{−a}) on exit."""
    np.exp(E, out=E)
    E += 1
    np.reciprocal(E, out=E)
    return E


def _tanh_into(A: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = tanh(A) = 2/(1 + e^{−2A}) − 1 (one exponential; ``out`` may be A)."""
    np.multiply(A, -2.0, out=out)
    np.exp(out, out=out)
    out += 1
    np.divide(2.0, out, out=out)
    out -= 1
    return out


def _activate_into(activation: Activation, A: np.ndarray, out: np.ndarray) -> None:
    """out = activation(A), without a temporary for tanh and relu."""
    if isinstance(activation, TanH):
        np.tanh(A, out=out)
    elif isinstance(activation, ReLU):
        np.maximum(A, 0, out=out)
    else:
        out[...] = activation(A)


def _activation_backward(activation: Activation, A: np.ndarray, H: np.ndarray, dH: np.ndarray) -> np.ndarray:
    """dL/dA from dL/dH where H = activation(A): tanh' = 1 − H², relu' = [H > 0]."""
    if isinstance(activation, TanH):
        return dH * (1 - H * H)
    if isinstance(activation, ReLU):
        return keep_where(H > 0, dH)
    return activation.backward(A, dH)


# -- the plain recurrence h_t = f(P_t + h_{t-1} W_hh), shared by RNN and Elman ----------------
def _simple_forward(P: np.ndarray, W_hh: np.ndarray, activation: Activation) -> np.ndarray:
    """Run h_t = f(P_t + h_{t-1} W_hh) from h_0 = 0 (P (T, N, n) holds x_t W_ih + biases).

    P is overwritten with the pre-activations A_t; returns H (T+1, N, n), H[0] = 0."""
    T, N, n = P.shape
    H = np.empty((T + 1, N, n), dtype=P.dtype)
    H[0] = 0
    recurrent = np.empty((N, n), dtype=P.dtype)
    for t in range(T):
        np.matmul(H[t], W_hh, out=recurrent)
        P[t] += recurrent
        _activate_into(activation, P[t], H[t + 1])
    return H


def _simple_backward(A, H, W_hh, activation, upstream, sequences: bool, pre_activation: bool) -> np.ndarray:
    """dL/dA_t for every step (T, N, n), by backpropagation through time.

    ``upstream`` is dL/dY: (N, T, n) with ``sequences``, else (N, n) for the last state.
    With ``pre_activation`` it is already dL/dA of the output terms (a loss fused with
    the activation), so f' applies only to the gradient carried back from later steps:

        dA_t = f'(A_t) ⊙ (dY_t + dA_{t+1} W_hhᵀ)         (pre_activation False)
        dA_t = dZ_t + f'(A_t) ⊙ (dA_{t+1} W_hhᵀ)          (pre_activation True)
    """
    T = A.shape[0]
    dA = np.empty_like(A)
    carried = None  # dL/dh_t through h_{t+1}: dA_{t+1} W_hhᵀ
    for t in reversed(range(T)):
        if sequences:
            direct = upstream[:, t]
        else:
            direct = upstream if t == T - 1 else None
        if pre_activation:
            through = 0 if carried is None else _activation_backward(activation, A[t], H[t + 1], carried)
            dA[t] = through if direct is None else direct + through
        else:
            dH = carried if direct is None else (direct if carried is None else direct + carried)
            dA[t] = _activation_backward(activation, A[t], H[t + 1], dH)
        if t > 0:
            carried = dA[t] @ W_hh.T
    return dA


def _stack(array: np.ndarray) -> np.ndarray:
    """(T, N, k) → (T·N, k) without a copy."""
    return array.reshape(-1, array.shape[-1])


def _time_major_with_ones(X: np.ndarray, axes: tuple[int, int, int]) -> np.ndarray:
    """X transposed by ``axes`` to time-major (T, N, d), with a column of ones appended:
    (T, N, d + 1). The ones carry the bias through the input projection's product, and
    give db with dW from one product in backward."""
    steps = X.transpose(axes)
    X_ones = np.empty(steps.shape[:2] + (steps.shape[2] + 1,), dtype=X.dtype)
    X_ones[..., :-1] = steps
    X_ones[..., -1] = 1
    return X_ones


def _project(X_ones: np.ndarray, W: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The input projection of every step in one product: x_t W + bias, (T, N, k)."""
    T, N, _ = X_ones.shape
    return (_stack(X_ones) @ np.concatenate([W, bias])).reshape(T, N, -1)


def _projection_gradients(X_ones: np.ndarray, dP: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dW, db) = (Σ_t x_tᵀ dP_t, Σ_t Σ_rows dP_t) from one product [X 1]ᵀ dP."""
    dW_and_db = _stack(X_ones).T @ _stack(dP)
    return dW_and_db[:-1], dW_and_db[-1:]


def _input_gradient(dP: np.ndarray, W: np.ndarray) -> np.ndarray:
    """dL/dx_t = dP_t Wᵀ for every step at once, (T, N, d)."""
    T, N, _ = dP.shape
    return (_stack(dP) @ W.T).reshape(T, N, -1)


# -- the torch-style layers ------------------------------------------------------------------
class _Recurrent(Layer):
    """Common part of RNN, LSTM and GRU: settings, parameters, input handling and the
    parameter gradients from the per-step gate gradients. Subclasses implement
    ``_steps_forward`` and ``_steps_backward``."""

    #: gates side by side in W_ih / W_hh (torch's order)
    gate_count = 1
    _parameter_constraints = {
        "n_out": [Interval(Integral, 1, None)],
        "return_sequences": [BOOLEAN],
        "weight_init": [None, str],
    }

    def __init__(self, n_out: int, return_sequences: bool = False, weight_init: str | None = None,
                 activation_for_gain: str | None = None) -> None:
        super().__init__()
        validate_params(self, n_out=n_out, return_sequences=return_sequences, weight_init=weight_init)
        self.n_out = int(n_out)
        self.return_sequences = bool(return_sequences)
        self.weight_init = weight_init
        self.n_in = None
        self.init_weights = None
        if weight_init is not None:
            try:
                self.init_weights = initialize_weights(weight_init, activation=activation_for_gain)
            except UnknownNameError as error:  # say which layer got the unknown name
                raise UnknownNameError(f"{self.name}: {error}") from None

    # -- parameters ---------------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...]) -> None:
        """W_ih (d, g·n), W_hh (n, g·n), b_ih, b_hh (1, g·n); zero gradients.

        Default (``weight_init=None``): every parameter from U(−1/√n, 1/√n), as torch.
        With a named initialiser: W_ih and W_hh from it, the biases zero."""
        if len(input_shape) != 2:
            raise ShapeError(f"{self.name}: expected samples of shape (time, features), got {tuple(input_shape)}")
        self.n_in = int(input_shape[1])
        dtype = self._param_dtype(np.float64)
        width = self.gate_count * self.n_out
        shapes = OrderedDict(W_ih=(self.n_in, width), W_hh=(self.n_out, width), b_ih=(1, width), b_hh=(1, width))
        rng = self._rng()
        self.parameters = OrderedDict()
        for key, shape in shapes.items():
            if self.init_weights is None:
                bound = 1.0 / math.sqrt(self.n_out)
                value = rng.uniform(-bound, bound, size=shape).astype(dtype)
            elif key.startswith("W"):
                value = self.init_weights(shape, rng=rng, dtype=dtype)
            else:
                value = np.zeros(shape, dtype=dtype)
            self.parameters[key] = value
        self.gradients = OrderedDict((key, np.zeros_like(value)) for key, value in self.parameters.items())
        super().build(input_shape)

    # -- forward / backward -------------------------------------------------------------------
    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = self._check_input(X, rank=3)
        _check_sequence(self, X.shape, X.shape[2], X.shape[1])
        dtype = X.dtype
        params = {key: self._param(key, dtype) for key in self.parameters}
        X_ones = _time_major_with_ones(X, (1, 0, 2))  # (T, N, d + 1)

        with np.errstate(over="ignore"):  # e^{-a} = inf is the intended limit, see the module
            H, saved = self._steps_forward(X_ones, **params)

        if retain_derived:
            self.cache = OrderedDict(X_ones=X_ones, H=H, **saved)
        if self.return_sequences:
            return np.ascontiguousarray(H[1:].transpose(1, 0, 2))
        return H[-1].copy()

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Backpropagation through time; sets every gradient, returns dL/dX (N, T, d)."""
        dLdY = self._checked_upstream(dLdY)
        H = self.cache["H"]
        dG_input, dG_hidden = self._steps_backward(dLdY, self._param("W_hh", H.dtype))
        return self._parameter_gradients(dG_input, dG_hidden, input_gradient)

    def _checked_upstream(self, dLdY: np.ndarray) -> np.ndarray:
        """dL/dY of the output's shape, in the computation's dtype."""
        X_ones, H = self._require_cache("X_ones", "H")
        T, N, _ = X_ones.shape
        expected = (N, T, self.n_out) if self.return_sequences else (N, self.n_out)
        return self._check_upstream(dLdY, expected).astype(H.dtype, copy=False)

    def _parameter_gradients(self, dG_input, dG_hidden, input_gradient: bool):
        """From dG_t = dL/d(input projection)_t and dL/d(recurrent projection)_t, (T, N, g·n),
        one product each for all steps:

            dW_ih = Σ_t x_tᵀ dG_input_t       db_ih = Σ dG_input
            dW_hh = Σ_t h_{t-1}ᵀ dG_hidden_t  db_hh = Σ dG_hidden
            dX_t  = dG_input_t W_ihᵀ
        """
        X_ones, H = self.cache["X_ones"], self.cache["H"]
        T = X_ones.shape[0]
        self.gradients["W_ih"], self.gradients["b_ih"] = _projection_gradients(X_ones, dG_input)
        self.gradients["W_hh"] = _stack(H[:T]).T @ _stack(dG_hidden)
        self.gradients["b_hh"] = (self.gradients["b_ih"].copy() if dG_hidden is dG_input
                                  else _stack(dG_hidden).sum(axis=0, keepdims=True))
        if not input_gradient:
            return None
        dX_steps = _input_gradient(dG_input, self._param("W_ih", H.dtype))
        return np.ascontiguousarray(dX_steps.transpose(1, 0, 2))

    def _upstream_at(self, dLdY: np.ndarray, t: int, T: int):
        """dL/dh_t coming from the layer's output (None if h_t is not an output)."""
        if self.return_sequences:
            return dLdY[:, t]
        return dLdY if t == T - 1 else None

    # -- the rest of the protocol ----------------------------------------------------------------
    def output_shape(self, input_shape):
        return (input_shape[0], self.n_out) if self.return_sequences else (self.n_out,)

    def get_config(self) -> dict:
        return {
            "type": self.type_name,
            "n_out": self.n_out,
            "return_sequences": self.return_sequences,
            "weight_init": self.weight_init,
        }

    def _expected_input(self) -> str:
        return "X of shape (batch, time, features)"


def _check_sequence(layer, shape, features: int, steps: int) -> None:
    if features != layer.n_in:
        raise ShapeError(
            f"{layer.name}: expected {layer.n_in} input features (built from the first input), "
            f"got input of shape {tuple(shape)}"
        )
    if steps < 1:
        raise ShapeError(f"{layer.name}: the sequence needs at least one time step, got input of shape {tuple(shape)}")


class RNN(_Recurrent):
    """Plain (Elman-type) recurrent layer with torch.nn.RNN's equations.

    Forward, for t = 1..T from h_0 = 0::

        a_t = x_t W_ih + b_ih + h_{t-1} W_hh + b_hh
        h_t = f(a_t)                  f = tanh or relu

    Output: h_T (N, n), or every h_t (N, T, n) with ``return_sequences=True``.

    Backward (through time), with dY_t = dL/dh_t from the output (0 where h_t is not
    an output)::

        dA_t  = f'(a_t) ⊙ (dY_t + dA_{t+1} W_hhᵀ)       (dA_{T+1} = 0)
        dW_ih = Σ_t x_tᵀ dA_t     dW_hh = Σ_t h_{t-1}ᵀ dA_t
        db_ih = db_hh = Σ_t Σ_rows dA_t                 dX_t = dA_t W_ihᵀ

    Parameters
    ----------
    n_out : int
        Size n of the hidden state.
    activation : {"tanh", "relu"}
    return_sequences : bool
        Return every state (N, T, n) instead of the last one (N, n).
    weight_init : str or None
        None: torch's U(−1/√n, 1/√n) for all four parameters; a name (see
        ``initialize_weights``, with the activation's gain): W_ih and W_hh from it,
        biases zero.

    Shapes: X (N, T, d); W_ih (d, n), W_hh (n, n), b_ih and b_hh (1, n).

    >>> import numpy as np
    >>> layer = RNN(4)
    >>> layer.forward(np.ones((2, 5, 3))).shape
    (2, 4)
    >>> RNN(4, "relu", return_sequences=True).forward(np.ones((2, 5, 3))).shape
    (2, 5, 4)
    >>> [(key, value.shape) for key, value in layer.parameters.items()]
    [('W_ih', (3, 4)), ('W_hh', (4, 4)), ('b_ih', (1, 4)), ('b_hh', (1, 4))]
    """

    type_name = "rnn"
    gate_count = 1
    _parameter_constraints = {**_Recurrent._parameter_constraints,
                              "activation": [StrOptions({"tanh", "relu"})]}

    def __init__(self, n_out: int, activation: str = "tanh", return_sequences: bool = False,
                 weight_init: str | None = None) -> None:
        validate_params(self, activation=activation)
        super().__init__(n_out, return_sequences, weight_init, activation_for_gain=activation)
        self.activation = initialize_activation(activation)

    def _steps_forward(self, X_ones, W_ih, W_hh, b_ih, b_hh):
        P = _project(X_ones, W_ih, b_ih + b_hh)
        H = _simple_forward(P, W_hh, self.activation)  # P now holds the pre-activations
        return H, {"A": P}

    def _steps_backward(self, dLdY, W_hh, pre_activation: bool = False):
        A, H = self.cache["A"], self.cache["H"]
        dA = _simple_backward(A, H, W_hh, self.activation, dLdY, self.return_sequences, pre_activation)
        return dA, dA

    def backward_pre_activation(self, dZ: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Backward from dL/da of the output steps (a loss fused with the activation):
        dA_t = dZ_t + f'(a_t) ⊙ (dA_{t+1} W_hhᵀ); the rest as ``backward``."""
        dZ = self._checked_upstream(dZ)
        dA, _ = self._steps_backward(dZ, self._param("W_hh", dZ.dtype), pre_activation=True)
        return self._parameter_gradients(dA, dA, input_gradient)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation.name}


class LSTM(_Recurrent):
    """Long short-term memory layer with torch.nn.LSTM's equations and gate order
    (input i, forget f, cell candidate g, output o).

    Forward, for t = 1..T from h_0 = c_0 = 0::

        [a_i a_f a_g a_o] = x_t W_ih + b_ih + h_{t-1} W_hh + b_hh     (each (N, n))
        i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    Output: h_T (N, n), or every h_t (N, T, n) with ``return_sequences=True``.

    Backward (through time), with dh_t = dY_t + dG_{t+1} W_hhᵀ and dc_{T+1}-path 0::

        do  = dh_t ⊙ tanh(c_t)
        dc_t = dh_t ⊙ o ⊙ (1 − tanh²(c_t)) + dc_{t+1} ⊙ f_{t+1}
        di = dc_t ⊙ g    df = dc_t ⊙ c_{t-1}    dg = dc_t ⊙ i
        dG_t = [di ⊙ i(1−i), df ⊙ f(1−f), dg ⊙ (1−g²), do ⊙ o(1−o)]
        dW_ih = Σ_t x_tᵀ dG_t    dW_hh = Σ_t h_{t-1}ᵀ dG_t
        db_ih = db_hh = Σ_t Σ_rows dG_t    dX_t = dG_t W_ihᵀ

    Parameters
    ----------
    n_out : int
        Size n of the hidden and cell states.
    return_sequences : bool
        Return every h_t (N, T, n) instead of the last one (N, n).
    weight_init : str or None
        None: torch's U(−1/√n, 1/√n) for all four parameters; a name: W_ih and W_hh
        from that initialiser (gain 1), biases zero.

    Shapes: X (N, T, d); W_ih (d, 4n), W_hh (n, 4n), b_ih and b_hh (1, 4n).

    >>> import numpy as np
    >>> layer = LSTM(3, return_sequences=True)
    >>> layer.forward(np.ones((2, 5, 4), dtype=np.float32)).shape
    (2, 5, 3)
    >>> layer.parameters["W_hh"].shape, layer.parameters["W_hh"].dtype
    ((3, 12), dtype('float32'))
    """

    type_name = "lstm"
    gate_count = 4

    def __init__(self, n_out: int, return_sequences: bool = False, weight_init: str | None = None) -> None:
        super().__init__(n_out, return_sequences, weight_init)

    def _steps_forward(self, X_ones, W_ih, W_hh, b_ih, b_hh):
        T, N, _ = X_ones.shape
        n = self.n_out
        dtype = X_ones.dtype
        # The products are taken with the gate columns scaled by −1 (i, f, o) and −2 (g),
        # so one exponential of the whole gate block gives e^{−a} and e^{−2a}: σ(a) and
        # tanh(a) = 2σ(2a) − 1 follow. Scaling by a power of two is exact.
        scale = np.repeat(np.array([-1.0, -1.0, -2.0, -1.0], dtype=dtype), n)
        P = _project(X_ones, W_ih * scale, (b_ih + b_hh) * scale)
        W_hh_scaled = W_hh * scale

        gates = np.empty((T, N, 4 * n), dtype=dtype)  # i, f, g, o after activation
        C = np.empty((T + 1, N, n), dtype=dtype)       # cell states, C[0] = c_0 = 0
        H = np.empty((T + 1, N, n), dtype=dtype)       # hidden states, H[0] = h_0 = 0
        tanh_C = np.empty((T, N, n), dtype=dtype)      # tanh(c_t), t = 1..T
        C[0] = 0
        H[0] = 0
        product = np.empty((N, n), dtype=dtype)
        for t in range(T):
            G = gates[t]
            np.matmul(H[t], W_hh_scaled, out=G)
            G += P[t]
            _logistic_of_negated(G)                    # σ(a) for i, f, o; σ(2a) for g
            i, f, g, o = G[:, :n], G[:, n:2 * n], G[:, 2 * n:3 * n], G[:, 3 * n:]
            g *= 2
            g -= 1                                     # tanh(a_g)
            np.multiply(f, C[t], out=C[t + 1])
            np.multiply(i, g, out=product)
            C[t + 1] += product                        # c_t = f c_{t-1} + i g
            _tanh_into(C[t + 1], tanh_C[t])
            np.multiply(o, tanh_C[t], out=H[t + 1])    # h_t = o tanh(c_t)
        return H, {"gates": gates, "C": C, "tanh_C": tanh_C}

    def _steps_backward(self, dLdY, W_hh):
        gates, C, tanh_C = self.cache["gates"], self.cache["C"], self.cache["tanh_C"]
        T, N, width = gates.shape
        n = self.n_out
        dtype = gates.dtype
        dG = np.empty_like(gates)                 # dL/da_t of the four gates
        dh = np.zeros((N, n), dtype=dtype)        # dL/dh_t
        dc = np.zeros((N, n), dtype=dtype)        # dL/dc_t
        slope = np.empty((N, width), dtype=dtype)  # s(1 − s) of every gate (g's slot unused)
        work = np.empty((N, n), dtype=dtype)
        # One step at a time, so that every operand is a cache-resident slice.
        for t in reversed(range(T)):
            direct = self._upstream_at(dLdY, t, T)
            if direct is not None:
                dh += direct
            G, D, tanh_c = gates[t], dG[t], tanh_C[t]
            i, f, g, o = G[:, :n], G[:, n:2 * n], G[:, 2 * n:3 * n], G[:, 3 * n:]
            np.subtract(1, G, out=slope)
            slope *= G
            # output gate: da_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)
            np.multiply(dh, tanh_c, out=work)
            np.multiply(work, slope[:, 3 * n:], out=D[:, 3 * n:])
            # cell: dc_t = dc_{t+1} ⊙ f_{t+1} + dh ⊙ o ⊙ (1 − tanh² c_t)
            np.multiply(tanh_c, tanh_c, out=work)
            np.subtract(1, work, out=work)
            work *= o
            work *= dh
            dc += work
            # input gate da_i = dc ⊙ g ⊙ i(1 − i), forget gate da_f = dc ⊙ c_{t-1} ⊙ f(1 − f)
            np.multiply(dc, g, out=work)
            np.multiply(work, slope[:, :n], out=D[:, :n])
            np.multiply(dc, C[t], out=work)
            np.multiply(work, slope[:, n:2 * n], out=D[:, n:2 * n])
            # candidate: da_g = dc ⊙ i ⊙ (1 − g²)
            np.multiply(g, g, out=work)
            np.subtract(1, work, out=work)
            work *= i
            np.multiply(work, dc, out=D[:, 2 * n:3 * n])
            dc *= f                                    # the cell path to c_{t-1}
            if t > 0:
                np.matmul(D, W_hh.T, out=dh)           # the hidden path to h_{t-1}
        return dG, dG


class GRU(_Recurrent):
    """Gated recurrent unit with torch.nn.GRU's equations and gate order (reset r,
    update z, new n), the reset gate applied to W_hn h + b_hn.

    Forward, for t = 1..T from h_0 = 0 (W_·r, W_·z, W_·n are the column blocks)::

        r = σ(x_t W_ir + b_ir + h_{t-1} W_hr + b_hr)
        z = σ(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz)
        m = h_{t-1} W_hn + b_hn
        n = tanh(x_t W_in + b_in + r ⊙ m)
        h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

    Output: h_T (N, n), or every h_t (N, T, n) with ``return_sequences=True``.

    Backward (through time), with dh_t = dY_t + (what h_{t+1} sends back)::

        da_n = dh_t ⊙ (1 − z) ⊙ (1 − n²)
        da_z = dh_t ⊙ (h_{t-1} − n) ⊙ z(1 − z)
        da_r = da_n ⊙ m ⊙ r(1 − r)
        dG_in_t  = [da_r, da_z, da_n]          (gradient of the input projection)
        dG_hid_t = [da_r, da_z, da_n ⊙ r]      (gradient of h_{t-1} W_hh + b_hh)
        dh_{t-1} = dh_t ⊙ z + dG_hid_t W_hhᵀ   (+ dY_{t-1})
        dW_ih = Σ_t x_tᵀ dG_in_t    dW_hh = Σ_t h_{t-1}ᵀ dG_hid_t
        db_ih = Σ dG_in    db_hh = Σ dG_hid    dX_t = dG_in_t W_ihᵀ

    Parameters
    ----------
    n_out : int
        Size n of the hidden state.
    return_sequences : bool
        Return every h_t (N, T, n) instead of the last one (N, n).
    weight_init : str or None
        None: torch's U(−1/√n, 1/√n) for all four parameters; a name: W_ih and W_hh
        from that initialiser (gain 1), biases zero.

    Shapes: X (N, T, d); W_ih (d, 3n), W_hh (n, 3n), b_ih and b_hh (1, 3n).

    >>> import numpy as np
    >>> layer = GRU(3)
    >>> Y = layer.forward(np.ones((2, 5, 4)))
    >>> Y.shape, layer.backward(np.ones_like(Y)).shape
    ((2, 3), (2, 5, 4))
    """

    type_name = "gru"
    gate_count = 3

    def __init__(self, n_out: int, return_sequences: bool = False, weight_init: str | None = None) -> None:
        super().__init__(n_out, return_sequences, weight_init)

    def _steps_forward(self, X_ones, W_ih, W_hh, b_ih, b_hh):
        T, N, _ = X_ones.shape
        n = self.n_out
        dtype = X_ones.dtype
        # r and z: columns scaled by −1 so that one exponential gives σ (exact scaling);
        # their two biases are added once, into the input projection.
        scale = np.concatenate([np.full(2 * n, -1.0, dtype=dtype), np.ones(n, dtype=dtype)])
        bias = b_ih.copy()
        bias[:, :2 * n] += b_hh[:, :2 * n]
        P = _project(X_ones, W_ih * scale, bias * scale)
        W_hh_scaled = W_hh * scale
        b_hn = b_hh[:, 2 * n:]

        gates = np.empty((T, N, 3 * n), dtype=dtype)  # r, z, n
        M = np.empty((T, N, n), dtype=dtype)          # m_t = h_{t-1} W_hn + b_hn
        H = np.empty((T + 1, N, n), dtype=dtype)
        H[0] = 0
        recurrent = np.empty((N, 3 * n), dtype=dtype)
        for t in range(T):
            np.matmul(H[t], W_hh_scaled, out=recurrent)
            G = gates[t]
            rz = G[:, :2 * n]
            np.add(P[t, :, :2 * n], recurrent[:, :2 * n], out=rz)
            _logistic_of_negated(rz)
            r, z, new = G[:, :n], G[:, n:2 * n], G[:, 2 * n:]
            np.add(recurrent[:, 2 * n:], b_hn, out=M[t])
            np.multiply(r, M[t], out=new)
            new += P[t, :, 2 * n:]
            _tanh_into(new, new)
            h = H[t + 1]
            np.subtract(H[t], new, out=h)
            h *= z
            h += new                                   # n + z (h_{t-1} − n)
        return H, {"gates": gates, "M": M}

    def _steps_backward(self, dLdY, W_hh):
        gates, M, H = self.cache["gates"], self.cache["M"], self.cache["H"]
        T, N, width = gates.shape
        n = self.n_out
        dtype = gates.dtype
        dG_input = np.empty_like(gates)
        dG_hidden = np.empty_like(gates)
        dh = np.zeros((N, n), dtype=dtype)
        work, slope, recurrent = (np.empty((N, n), dtype=dtype) for _ in range(3))
        for t in reversed(range(T)):
            direct = self._upstream_at(dLdY, t, T)
            if direct is not None:
                dh += direct
            G, d_in, d_hid = gates[t], dG_input[t], dG_hidden[t]
            r, z, new = G[:, :n], G[:, n:2 * n], G[:, 2 * n:]
            da_new = d_in[:, 2 * n:]
            # candidate: da_n = dh ⊙ (1 − z) ⊙ (1 − n²)
            np.multiply(new, new, out=work)
            np.subtract(1, work, out=work)
            work *= dh
            np.subtract(1, z, out=slope)
            np.multiply(work, slope, out=da_new)
            # update gate: da_z = dh ⊙ (h_{t-1} − n) ⊙ z(1 − z)
            slope *= z
            np.subtract(H[t], new, out=work)
            work *= dh
            np.multiply(work, slope, out=d_in[:, n:2 * n])
            # reset gate: da_r = da_n ⊙ m ⊙ r(1 − r)
            np.subtract(1, r, out=slope)
            slope *= r
            slope *= M[t]
            np.multiply(da_new, slope, out=d_in[:, :n])
            # the recurrent projection's gradient: the reset gate scales m's
            d_hid[:, :2 * n] = d_in[:, :2 * n]
            np.multiply(da_new, r, out=d_hid[:, 2 * n:])
            if t > 0:
                np.matmul(d_hid, W_hh.T, out=recurrent)
                dh *= z
                dh += recurrent                        # dh_{t-1} = dh ⊙ z + dG_hid W_hhᵀ
        return dG_input, dG_hidden


# -- the course's Elman layer -------------------------------------------------------------------
class Elman(KernelLayer):
    """The course's (2020) Elman recurrent layer, on the course's layout (N, d, T).

    Forward, for t = 1..T from s_0 = 0, x_t = X[:, :, t]::

        a_t = x_t W + s_{t-1} U + b
        s_t = f(a_t)

    Output: the last state s_T (N, n). It is ``RNN`` with W_ih = W, W_hh = U, b_ih = b,
    b_hh = 0 on the input transposed to (N, T, d).

    Backward (through time), dL/ds_T = dY::

        dA_t = f'(a_t) ⊙ (dY·[t = T] + dA_{t+1} Uᵀ)
        dW = Σ_t x_tᵀ dA_t    dU = Σ_t s_{t-1}ᵀ dA_t    db = Σ_t Σ_rows dA_t
        dX[:, :, t] = dA_t Wᵀ          (dL/dX has X's shape (N, d, T))

    Parameters
    ----------
    n_out : int
        Size n of the state.
    activation : str
        Name of f (see ``initialize_activation``).
    weight_init : str
        Initialiser of W and U (with f's gain); b starts at 0.

    Shapes: X (N, d, T), Y (N, n); W (d, n), U (n, n), b (1, n).

    >>> import numpy as np
    >>> layer = Elman(4)
    >>> Y = layer.forward(np.ones((2, 3, 5)))
    >>> Y.shape, layer.backward(np.ones_like(Y)).shape
    ((2, 4), (2, 3, 5))
    """

    type_name = "elman"
    def __init__(self, n_out: int, activation="tanh", weight_init: str = "xavier_uniform") -> None:
        super().__init__(n_out, activation, weight_init)

    def parameter_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        if len(input_shape) != 2:
            raise ShapeError(f"{self.name}: expected samples of shape (features, time), got {tuple(input_shape)}")
        n, d = self.n_out, int(input_shape[0])
        return {"W": (d, n), "U": (n, n), "b": (1, n)}

    def build(self, input_shape: tuple[int, ...]) -> None:
        """W (d, n) and U (n, n) from the initialiser, b (1, n) zeros; zero gradients."""
        super().build(input_shape)
        self.n_in = self.parameters["W"].shape[0]

    def forward(self, X: np.ndarray, retain_derived: bool = True) -> np.ndarray:
        X = self._check_input(X, rank=3)
        _check_sequence(self, X.shape, X.shape[1], X.shape[2])
        dtype = X.dtype
        W, U, b = (self._param(key, dtype) for key in ("W", "U", "b"))
        X_ones = _time_major_with_ones(X, (2, 0, 1))  # (T, N, d + 1)

        P = _project(X_ones, W, b)
        H = _simple_forward(P, U, self.activation)  # P now holds the pre-activations

        if retain_derived:
            self.cache = OrderedDict(X_ones=X_ones, A=P, H=H)
        return H[-1].copy()

    def backward(self, dLdY: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """BPTT from dL/ds_T; sets dW, dU, db and returns dL/dX (N, d, T)."""
        A, H = self._require_cache("A", "H")
        dLdY = self._check_upstream(dLdY, H.shape[1:]).astype(H.dtype, copy=False)
        return self._gradients(_simple_backward(A, H, self._param("U", H.dtype), self.activation,
                                                dLdY, sequences=False, pre_activation=False), input_gradient)

    def backward_pre_activation(self, dZ: np.ndarray, *, input_gradient: bool = True) -> np.ndarray | None:
        """Backward from dL/da_T (a loss fused with the activation)."""
        A, H = self._require_cache("A", "H")
        dZ = self._check_upstream(dZ, H.shape[1:]).astype(H.dtype, copy=False)
        return self._gradients(_simple_backward(A, H, self._param("U", H.dtype), self.activation,
                                                dZ, sequences=False, pre_activation=True), input_gradient)

    def _gradients(self, dA: np.ndarray, input_gradient: bool):
        """dW, db = Σ_t [x_t 1]ᵀ dA_t; dU = Σ_t s_{t-1}ᵀ dA_t; dX_t = dA_t Wᵀ."""
        X_ones, H = self.cache["X_ones"], self.cache["H"]
        T = X_ones.shape[0]
        self.gradients["W"], self.gradients["b"] = _projection_gradients(X_ones, dA)
        self.gradients["U"] = _stack(H[:T]).T @ _stack(dA)
        if not input_gradient:
            return None
        dX_steps = _input_gradient(dA, self._param("W", dA.dtype))
        return np.ascontiguousarray(dX_steps.transpose(1, 2, 0))

    def _expected_input(self) -> str:
        return "X of shape (batch, features, time)"
