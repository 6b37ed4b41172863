"""nn.Module, Sequential / seq basics: naming, scopes, parameter sharing, deterministic
initialisation, and trace-time shape errors that point at the user's code."""
from __future__ import annotations

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn


class Block(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_out)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.fc1(x))


class Encoder(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.layers = [Block(a, b) for a, b in zip(dims[:-1], dims[1:])]
        self.norm_scale = nn.Parameter((dims[-1],), init=nn.init.ones)
        self.stats = nn.Buffer((dims[-1],))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x * self.norm_scale + self.stats


def test_parameters_are_named_hierarchically():
    enc = Encoder([4, 8, 3])
    names = [n for n, _ in enc.named_parameters()]
    assert names == ["norm_scale", "stats", "layers.0.fc1.weight", "layers.0.fc1.bias",
                     "layers.1.fc1.weight", "layers.1.fc1.bias"]
    assert [n for n, _ in enc.named_parameters(include_buffers=False)] == [n for n in names if n != "stats"]
    assert enc.num_parameters() == 3 + 8 * 4 + 8 + 3 * 8 + 3
    assert [p for p, _ in enc.named_modules()] == ["", "layers", "layers.0", "layers.0.fc1", "layers.0.act",
                                                   "layers.1", "layers.1.fc1", "layers.1.act"]
    assert isinstance(enc.layers, nn.ModuleList) and len(enc.layers) == 2


def test_trace_scopes_nodes_with_module_paths():
    g = gf.trace(Encoder([4, 8, 3]), gf.TensorSpec(("batch", 4), "float32"))
    scopes = [(n.op, n.scope) for n in g.nodes]
    assert ("linear", "layers.0.fc1") in scopes and ("gelu", "layers.1.act") in scopes
    assert g.trainable_names == ["norm_scale", "layers.0.fc1.weight", "layers.0.fc1.bias", "layers.1.fc1.weight",
                                 "layers.1.fc1.bias"]
    assert g.param_values["stats"].kind == "buffer"
    np.testing.assert_array_equal(g.params["norm_scale"], np.ones(3, np.float32))
    np.testing.assert_array_equal(g.params["stats"], np.zeros(3, np.float32))


def test_seq_builder_and_sequential_agree(mlp_seq, rng):
    seq2 = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    assert len(mlp_seq) == 3 and isinstance(mlp_seq[1], nn.Lambda) and isinstance(mlp_seq[0], nn.Linear)
    g1 = gf.trace(mlp_seq, gf.TensorSpec(("batch", 6), "float32"), seed=3)
    g2 = gf.trace(seq2, gf.TensorSpec(("batch", 6), "float32"), seed=3)
    assert g1.trainable_names == g2.trainable_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = rng.standard_normal((2, 6)).astype(np.float32)
    np.testing.assert_array_equal(gf.run(g1, [x])[0], gf.run(g2, [x])[0])
    want = np.maximum(x @ g1.params["0.weight"].T + g1.params["0.bias"], 0) @ g1.params["2.weight"].T + g1.params["2.bias"]
    np.testing.assert_allclose(gf.run(g1, [x])[0], want, rtol=1e-5, atol=1e-6)


def test_module_and_seq_styles_trace_the_same_graph(mlp_module, mlp_seq):
    a = gf.trace(mlp_module, gf.TensorSpec(("batch", 6), "float32"), seed=0)
    b = gf.trace(mlp_seq, gf.TensorSpec(("batch", 6), "float32"), seed=0)
    assert a.op_counts() == b.op_counts() == {"linear": 2, "relu": 1}


def test_same_seed_same_bytes_different_seed_different_values(mlp_module, make_mlp):
    spec = gf.TensorSpec(("batch", 6), "float32")
    a = gf.trace(mlp_module, spec, seed=0)
    b = gf.trace(make_mlp(), spec, seed=0)
    c = gf.trace(mlp_module, spec, seed=1)
    assert list(a.params) == list(b.params) == list(c.params)
    for name in a.params:
        assert a.params[name].tobytes() == b.params[name].tobytes()
        assert a.params[name].dtype == np.float32
        assert a.params[name].tobytes() != c.params[name].tobytes()


def test_initialisation_follows_pytorch_bounds():
    g = gf.trace(nn.Linear(100, 50), gf.TensorSpec((1, 100), "float32"), seed=0)
    bound = 1 / np.sqrt(100)
    w, b = g.params["weight"], g.params["bias"]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(b).max() <= bound and w.std() > 0.4 * bound


def test_adding_a_layer_does_not_shift_other_parameters():
    small = gf.trace(nn.seq().add(nn.Linear(4, 4)), gf.TensorSpec((1, 4)), seed=5)
    big = gf.trace(nn.seq().add(nn.Linear(4, 4)).add(nn.Linear(4, 2)), gf.TensorSpec((1, 4)), seed=5)
    assert small.params["0.weight"].tobytes() == big.params["0.weight"].tobytes()


def test_missized_linear_names_path_shapes_and_line():
    model = nn.seq().add(Encoder([4, 8, 3])).add(nn.Linear(5, 2))
    with pytest.raises(gf.ShapeError) as err:
        gf.trace(model, gf.TensorSpec(("batch", 4), "float32"))
    msg = str(err.value)
    assert "1: linear:" in msg  # the module path of the mis-sized layer
    assert "f32[batch,3]" in msg and "f32[2,5]" in msg and "in_features=5" in msg

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Module()
            self.encoder.layers = [Block(4, 8), Block(7, 3)]

        def forward(self, x):
            for layer in self.encoder.layers:
                x = layer(x)
            return x

    with pytest.raises(gf.ShapeError) as err:
        gf.trace(Wrapper(), gf.TensorSpec(("batch", 4), "float32"))
    msg = str(err.value)
    assert err.value.scope == "encoder.layers.1.fc1" and msg.startswith("encoder.layers.1.fc1: linear:")
    assert "f32[batch,8]" in msg and "f32[3,7]" in msg
    # The innermost user frame: Block.forward's call of the mis-sized fc1.
    line = Block.forward.__code__.co_firstlineno + 1
    assert f"test_module.py:{line}" in msg and err.value.loc.endswith(f"test_module.py:{line}")


def test_shared_module_shares_parameters():
    shared = nn.Linear(3, 3)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = shared

        def forward(self, x):
            return self.f(self.f(x))

    g = gf.trace(Twice(), gf.TensorSpec((2, 3), "float32"))
    assert g.trainable_names == ["f.weight", "f.bias"]
    assert [n.inputs[1].name for n in g.nodes if n.op == "linear"] == ["f.weight", "f.weight"]


def test_modules_met_inside_a_function_are_adopted():
    a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    g = gf.trace(lambda x: b(gf.relu(a(x))), gf.TensorSpec(("n", 3), "float32"))
    assert g.trainable_names == ["linear.weight", "linear.bias", "linear1.weight", "linear1.bias"]
    assert a._gf_path is None and b._gf_path is None  # paths are reset after the trace
    gf.trace(lambda x: a(x), gf.TensorSpec(("n", 3), "float32"))


def test_train_eval_modes_and_trace_override():
    m = Encoder([4, 3])
    assert m.training
    m.eval()
    assert not any(x.training for x in m.modules())
    gf.trace(m, gf.TensorSpec((1, 4)), training=True)
    assert not m.training  # restored after the trace
    m.train()
    assert all(x.training for x in m.modules())


def test_module_errors_are_trace_errors():
    with pytest.raises(gf.TraceError, match="outside gf.trace"):
        nn.Linear(2, 2)(np.ones((1, 2)))
    with pytest.raises(gf.TraceError, match="defines no forward"):
        gf.trace(nn.Module(), gf.TensorSpec((1,)))

    class NoSuper(nn.Module):
        def __init__(self):
            self.x = 1

    with pytest.raises(gf.TraceError, match="super"):
        NoSuper()
    with pytest.raises(gf.TraceError, match="expects a Module"):
        nn.seq().add(3)
    with pytest.raises(gf.ShapeError, match="static"):
        nn.Parameter(("batch", 3))


def test_reassigning_an_attribute_unregisters_it():
    m = Block(2, 3)
    m.fc1 = None
    assert [n for n, _ in m.named_parameters()] == []
    m.extra = nn.Parameter(np.ones((2,), np.float32))
    assert [n for n, _ in m.named_parameters()] == ["extra"]
    del m.extra
    assert list(m.named_parameters()) == []


def test_repr_lists_children():
    text = repr(nn.seq().add(nn.Linear(2, 3)).add_fn(gf.relu))
    assert "Sequential(" in text and "(0): Linear(2, 3, bias=True)" in text and "(1): Lambda(relu)" in text


def test_custom_initialisers_are_cast_and_checked():
    float64_init = lambda shape, rng, dtype: rng.standard_normal(shape)  # noqa: E731 - ignores dtype

    class M(nn.Module):
        def __init__(self, init):
            super().__init__()
            self.w = nn.Parameter((2, 3), "float32", init=init)

        def forward(self, x):
            return x * self.w

    g = gf.trace(M(float64_init), gf.TensorSpec((2, 3)))
    assert g.params["w"].dtype == np.float32
    g.verify()
    with pytest.raises(gf.ShapeError, match="returned shape \\(3,\\)"):
        gf.trace(M(lambda shape, rng, dtype: np.zeros(3)), gf.TensorSpec((2, 3)))


def test_sequential_and_modulelist_share_one_list_behaviour():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    for container in (nn.Sequential(*layers), nn.ModuleList(layers)):
        assert len(container) == 3 and list(container) == layers
        assert container[-1] is layers[2] and container[0] is layers[0]
        head = container[:2]
        assert type(head) is type(container) and list(head) == layers[:2]
        assert [n for n, _ in container.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
        with pytest.raises(IndexError, match="index 3 out of range \\(it holds 3\\)"):
            container[3]
        with pytest.raises(gf.TraceError, match="holds nn.Module instances, got int"):
            container._append(3)
    ml = nn.ModuleList().extend(layers[:1]).append(layers[1])
    assert list(ml) == layers[:2]
    g = gf.trace(nn.Sequential(*layers)[:2], gf.TensorSpec((4, 2)))
    assert g.op_counts() == {"linear": 1, "relu": 1}
