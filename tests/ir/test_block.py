"""The node container (Block): list-like reads, insertion before/after, erase, move, iteration while
editing, nested regions in walk/verify/copy, and the Builder's insertion point."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import graphforge as gf
from graphforge.errors import TraceError, VerifyError
from graphforge.ir.graph import Block, Graph, Node
from graphforge.ir.types import TensorType
from graphforge.trace.builder import Builder

F = TensorType((2, 3), "float32")


def chain(ops=("exp", "neg", "tanh")):
    """x -> op0 -> op1 -> ...; the last result is the output."""
    g = Graph("chain")
    v = g.add_input("x", F)
    b = Builder(g, capture_locations=False)
    for op in ops:
        v = b.emit1(op, [v])
    g.set_outputs([v], ["out"])
    return g, b


def ops(block) -> list[str]:
    return [n.op for n in block]


def test_reads_like_a_list():
    g, _ = chain()
    nodes = g.nodes
    assert isinstance(nodes, Block) and len(nodes) == 3 and bool(nodes)
    assert ops(nodes) == ["exp", "neg", "tanh"]
    assert [n.op for n in reversed(nodes)] == ["tanh", "neg", "exp"]
    assert nodes[0].op == "exp" and nodes[-1].op == "tanh" and nodes[1] is nodes[-2]
    assert [n.op for n in nodes[1:]] == ["neg", "tanh"] and nodes == list(nodes)
    assert nodes.first is nodes[0] and nodes.last is nodes[2] and nodes.index(nodes[2]) == 2
    assert nodes[0] in nodes and Node("exp", [], {}, []) not in nodes and "exp" not in nodes
    assert nodes[0].next is nodes[1] and nodes[1].prev is nodes[0] and nodes[0].prev is None
    with pytest.raises(IndexError):
        nodes[3]
    with pytest.raises(TypeError):
        nodes["0"]
    with pytest.raises(AttributeError):  # the container is edited through its methods only
        g.nodes = []


def test_insert_before_and_after_keep_use_lists_and_order():
    g, _ = chain()
    exp, neg, tanh = list(g.nodes)
    sin = Node("sin", [exp.output], {}, [F])
    g.insert_after(exp, sin)
    cos = Node("cos", [sin.output], {}, [F])
    g.insert_before(tanh, cos)
    first = Node("abs", [g.inputs[0]], {}, [F])
    g.nodes.insert_before(exp, first)
    assert ops(g.nodes) == ["abs", "exp", "sin", "neg", "cos", "tanh"]
    assert g.nodes.first is first and len(g.nodes) == 6
    neg.set_input(0, cos.output)  # neg now reads cos, defined after it: move it, no re-sort
    g.nodes.move_before(tanh, neg)
    assert ops(g.nodes) == ["abs", "exp", "sin", "cos", "neg", "tanh"]
    tanh.set_input(0, neg.output)
    g.erase(first)
    g.verify()
    with pytest.raises(VerifyError, match="already in a graph"):
        g.append(sin)
    with pytest.raises(VerifyError, match="not in"):
        g.insert_before(Node("exp", [g.inputs[0]], {}, [F]), Node("exp", [g.inputs[0]], {}, [F]))


def test_erase_refuses_used_or_output_results_and_detaches():
    g, _ = chain()
    exp, neg, tanh = list(g.nodes)
    with pytest.raises(VerifyError, match="still used by neg"):
        g.erase(exp)
    with pytest.raises(VerifyError, match="graph output"):
        g.erase(tanh)
    assert len(g.nodes) == 3
    g.set_outputs([exp.output], ["out"])
    g.erase(tanh)
    g.erase(neg)
    assert ops(g.nodes) == ["exp"] and exp.output.uses == []
    assert neg.block is None and neg.inputs == [] and neg.outputs == []  # no references kept
    with pytest.raises(VerifyError, match="not in a graph"):
        g.erase(neg)
    g.verify()


def test_erased_nodes_are_freed_without_the_cyclic_gc():
    # Everything alive before the test (and any garbage earlier tests left) is frozen out of the
    # collector's view, so the collection below scans only this test's objects: on a worker that
    # has run hundreds of tests, a full collection of the whole heap took 35 s.
    was = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        g, _ = chain(["exp"] + ["neg"] * 50)
        g.set_outputs([g.nodes[0].output], ["out"])
        doomed = list(g.nodes)[1:]
        doomed_ids = {id(n) for n in doomed} | {id(v) for n in doomed for v in n.outputs}
        g.remove_nodes(doomed)
        del doomed
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            cyclic = [o for o in gc.garbage if id(o) in doomed_ids]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert cyclic == []  # reference counting freed every erased node and its results
    finally:
        gc.unfreeze()
        if was:
            gc.enable()
    assert ops(g.nodes) == ["exp"]


def test_iteration_tolerates_edits():
    g, b = chain(["exp", "neg", "tanh", "sin"])
    seen = []
    for node in g.nodes:
        seen.append(node.op)
        if node.op == "exp":
            nxt = node.next  # erase the node after the cursor: it is skipped
            g.replace_all_uses_with(nxt.output, node.output)
            g.erase(nxt)
            with b.inserting_after(node):  # inserted ahead of the cursor: visited
                b.emit1("abs", [node.output])
            with b.inserting_before(node):  # behind it: not visited
                b.emit1("cos", [g.inputs[0]])
        if node.op == "tanh":
            g.set_outputs([node.output], ["out"])
            g.erase(node.next)  # the last node, erased before the cursor reaches it
    assert seen == ["exp", "abs", "tanh"]
    assert ops(g.nodes) == ["cos", "exp", "abs", "tanh"]


def test_toposort_is_a_method_that_relinks():
    g, _ = chain()
    exp, neg, tanh = list(g.nodes)
    g.nodes.move_before(None, exp)  # to the end: out of order
    with pytest.raises(VerifyError, match="before it is defined"):
        g.verify()
    g.toposort()
    assert ops(g.nodes) == ["exp", "neg", "tanh"] and g.nodes.last is tanh and tanh.next is None
    g.verify()


def test_builder_insertion_point_and_recording():
    g, b = chain(["exp", "tanh"])
    exp, tanh = list(g.nodes)
    with b.inserting_after(exp), b.recording() as new:
        s = b.emit1("sin", [exp.output])
        c = b.emit1("cos", [s])
    assert ops(g.nodes) == ["exp", "sin", "cos", "tanh"] and [n.op for n in new] == ["sin", "cos"]
    with b.inserting_before(exp):
        b.emit1("abs", [g.inputs[0]])
    b.emit1("neg", [tanh.output])  # outside the contexts: the end again
    assert ops(g.nodes) == ["abs", "exp", "sin", "cos", "tanh", "neg"]
    tanh.set_input(0, c)
    g.verify()
    with pytest.raises(TraceError, match="not in a graph"):
        with b.inserting_before(Node("exp", [g.inputs[0]], {}, [F])):
            pass


def _cond_on(g, b, pred, operand, body_input=None):
    """A cond node on ``operand`` whose two regions compute neg/sin of their argument (or of
    ``body_input``, an outer value: an implicit capture)."""
    regions = []
    for op in ("neg", "sin"):
        region = Block(None, [gf.Value(operand.type, kind="arg")])
        with b.inserting_at_end(region):
            inner = b.emit1(op, [region.arguments[0] if body_input is None else body_input])
            b.emit_yield([inner])
        regions.append(region)
    return b.emit1("cond", [pred, operand], regions=regions)


def test_regions_are_walked_verified_copied_and_erased_with_their_owner():
    g = Graph("cf")
    x = g.add_input("x", F)
    p = g.add_input("p", TensorType((), "bool"))
    b = Builder(g, capture_locations=False)
    e = b.emit1("exp", [x])
    out = _cond_on(g, b, p, e)
    owner = out.producer
    g.set_outputs([out], ["out"])
    assert len(g.nodes) == 2 and [n.op for n in g.walk()] == ["exp", "cond", "neg", "yield", "sin", "yield"]
    assert owner.regions[0].owner is owner and owner.regions[0].results == (owner.regions[0].first.output,)
    assert g.nodes.results == ()
    g.verify()
    c = g.copy()
    assert [n.op for n in c.walk()] == [n.op for n in g.walk()]
    assert c.nodes[1].regions[0].owner is c.nodes[1]
    assert c.nodes[1].regions[0].first.inputs[0] is c.nodes[1].regions[0].arguments[0]
    c.verify()
    assert str(gf.parse(str(g))) == str(g)
    # erasing the owner drops its regions and their nodes
    g.set_outputs([e], ["out"])
    g.erase(owner)
    assert e.uses == [] and [n.op for n in g.walk()] == ["exp"]
    g.verify()


def test_verify_refuses_an_implicit_capture_and_a_late_read():
    g = Graph("cap")
    x = g.add_input("x", F)
    p = g.add_input("p", TensorType((), "bool"))
    b = Builder(g, capture_locations=False)
    e = b.emit1("exp", [x])
    out = _cond_on(g, b, p, x, body_input=e)  # the bodies read %e directly
    g.set_outputs([out])
    with pytest.raises(VerifyError, match="region 0: node 0 \\(neg\\): input 0 reads .*implicit capture"):
        g.verify()
    # a region without its yield
    g2 = Graph("noyield")
    x2 = g2.add_input("x", F)
    p2 = g2.add_input("p", TensorType((), "bool"))
    b2 = Builder(g2, capture_locations=False)
    out2 = _cond_on(g2, b2, p2, x2)
    g2.set_outputs([out2])
    region = out2.producer.regions[1]
    term = region.terminator
    region.erase(term)
    with pytest.raises(VerifyError, match="does not end with 'yield'"):
        g2.verify()


def test_verify_catches_a_corrupt_node_list():
    g, _ = chain()
    g.nodes[1]._prev = None
    with pytest.raises(VerifyError, match="node list is corrupt"):
        g.verify()


def test_parse_print_round_trip_still_exact(mlp_graph):
    text = str(mlp_graph)
    assert str(gf.parse(text)) == text
    opt = gf.optimize(mlp_graph)
    assert str(gf.parse(str(opt))) == str(opt)
    x = np.ones((2, 6), np.float32)
    np.testing.assert_allclose(gf.run(opt, [x])[0], gf.run(mlp_graph, [x])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["jax", "onnxruntime"])
def test_a_graph_run_on_a_back_end_is_freed_with_its_compiled_forms(backend):
    """gf.run caches compiled functions / sessions on the graph: once the user drops the graph, the
    graph and what was compiled for it go (a module-level cache keyed by the graph kept both alive)."""
    import weakref

    pytest.importorskip("jax" if backend == "jax" else "onnxruntime")
    g = gf.trace(lambda x: gf.relu(x) * 2.0, gf.TensorSpec(("batch", 3)))
    gf.run(g, [np.ones((2, 3), np.float32)], backend=backend)
    assert len(g.compiled_cache(backend)) == 1
    compiled = weakref.ref(next(iter(g.compiled_cache(backend).values())) if backend == "jax"
                           else next(iter(g.compiled_cache(backend).values()))[0])
    graph = weakref.ref(g)
    del g
    gc.collect()
    assert graph() is None and compiled() is None
    assert len(gf.Graph().compiled_cache(backend)) == 0   # a copy or a new graph starts empty
