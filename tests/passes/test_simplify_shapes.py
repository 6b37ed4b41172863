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


def test_a_reshape_dropping_a_reductions_kept_axes_is_the_reduction_without_keepdims():
    # the ResNet head: flatten(global_avg_pool2d(x)) is one mean (one ONNX ReduceMean, keepdims=0)
    check_pass("""
graph g(%x: f32[batch,8,4,4]) {
  %p: f32[batch,8,1,1] = global_avg_pool2d(%x)
  %f: f32[batch,8] = flatten(%p) {start_axis=1, end_axis=-1}
  return %f as out
}""", "simplify", """
graph g(%x: f32[batch,8,4,4]) {
  %0: f32[batch,8] = mean(%x) {axes=[2, 3], keepdims=false}
  return %0 as out
}""")
    check_pass("""
graph g(%x: f32[batch,3,5]) {
  %m: f32[batch,1,5] = max(%x) {axes=[-2], keepdims=true}
  %s: f32[batch,5] = squeeze(%m) {axes=[1]}
  return %s as out
}""", "simplify", """
graph g(%x: f32[batch,3,5]) {
  %0: f32[batch,5] = max(%x) {axes=[1], keepdims=false}
  return %0 as out
}""")


def test_a_kept_reduction_with_other_users_or_a_real_reshape_stays():
    # the pooled value is read twice: rewriting would compute the mean twice
    ir = """
graph g(%x: f32[batch,8,4,4]) {
  %p: f32[batch,8,1,1] = global_avg_pool2d(%x)
  %f: f32[batch,8] = flatten(%p) {start_axis=1, end_axis=-1}
  %q: f32[batch,8,4,4] = mul(%x, %p)
  return %f as out, %q as scaled
}"""
    check_pass(ir, "simplify", ir)
    # the reshape does more than drop the kept axis (it merges the others): no rewrite
    ir = """
graph g(%x: f32[2,3,4,5]) {
  %m: f32[2,1,4,5] = sum(%x) {axes=[1], keepdims=true}
  %r: f32[2,20] = reshape(%m) {shape=[2, 20]}
  return %r as out
}"""
    check_pass(ir, "simplify", ir)
