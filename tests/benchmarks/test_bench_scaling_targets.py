"""The compile-scaling targets (issue 21): the 100k-node bound applies to the largest graph under
half a million nodes, the 1M-node bound to the largest above; flatness spans every size."""
from __future__ import annotations

from benchmarks import bench_compile_scaling
from benchmarks.run import TARGETS, check_targets


def _row(nodes: int, total_s: float) -> dict:
    return {"nodes": nodes, "nodes_after": nodes // 5, "trace_s": total_s / 4, "optimize_s": total_s / 2,
            "export_s": total_s / 4, "total_s": total_s, "us_per_node": total_s / nodes * 1e6}


def _scaling_rows(rows):
    return {r["target"]: r for r in check_targets({"scaling": rows})}


def test_each_size_class_gets_its_own_bound():
    rows = [_row(9_568, 0.8), _row(95_818, 9.0), _row(999_988, 70.0)]
    got = _scaling_rows(rows)
    assert got["95818-node graph trace+passes+export (s)"]["met"]
    assert got["95818-node graph trace+passes+export (s)"]["bound"] == f"< {TARGETS['scaling_100k_s_max']}"
    million = got["999988-node graph trace+passes+export (s)"]
    assert million["bound"] == f"< {TARGETS['scaling_1m_s_max']}" and not million["met"]
    flat = got["time per node, largest/smallest over sizes"]
    per = [r["us_per_node"] for r in rows]
    assert abs(flat["value"] - max(per) / min(per)) < 1e-9


def test_without_a_million_row_only_the_100k_bound():
    got = _scaling_rows([_row(943, 0.1), _row(95_818, 11.0)])
    assert not got["95818-node graph trace+passes+export (s)"]["met"]
    assert not any("999" in k for k in got)


def test_million_flag_adds_the_size(monkeypatch):
    sizes = []
    monkeypatch.setattr(bench_compile_scaling, "bench", lambda n: sizes.append(n) or {**_row(max(n, 1), 0.001 * n), "cpu_s": 0.0, "load_avg_1m": 0.0})
    assert bench_compile_scaling.main(["--sizes", "200", "--million"]) == 0
    assert sizes == [100, 200, bench_compile_scaling.MILLION]
    sizes.clear()
    assert bench_compile_scaling.main(["--tiny", "--million"]) == 0  # tiny stays tiny
    assert sizes == [100, 100, 300]
