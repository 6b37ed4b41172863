"""simplify_rules/shapes: no-op shape ops and reshape chains."""
from passtest import check_pass


def test_reshape_chain_collapses_to_one_reshape():
    check_pass("""
graph g(%x: f32[batch,2,3]) {
  %a: f32[batch,6] = flatten(%x) {start_axis=1, end_axis=-1}
  %b: f32[batch,1,6] = unsqueeze(%a) {axes=[1]}
  %c: f32[batch,3,2] = reshape(%b) {shape=[batch, 3, 2]}
  %d: f32[batch,3,2] = reshape(%c) {shape=[batch, 3, -1]}
  %e: f32[batch,3,2] = broadcast_to(%d) {shape=[batch, 3, 2]}
  %h: f32[batch,3,2] = relu(%e)
  return %h as out
}""", "simplify", """
graph g(%x: f32[batch,2,3]) {
  %c: f32[batch,3,2] = reshape(%x) {shape=[batch, 3, 2]}
  %h: f32[batch,3,2] = relu(%c)
  return %h as out
}""")


def test_noop_cast_and_output_identity():
    # A no-op cast that is a graph output would make the output alias the input: kept.
    ir = """
graph g(%y: i64[batch]) {
  %f: i64[batch] = cast(%y) {dtype="int64"}
  return %f as idx
}"""
    check_pass(ir, "simplify", ir)
    check_pass("""
graph g(%y: i64[batch]) {
  %f: i64[batch] = cast(%y) {dtype="int64"}
  %g: i64[batch] = neg(%f)
  return %g as idx
}""", "simplify", """
graph g(%y: i64[batch]) {
  %g: i64[batch] = neg(%y)
  return %g as idx
}""")
