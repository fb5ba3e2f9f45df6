// A piece of one tensor within a bound chunk: elements [start, end), taken by one workgroup,
// with parameter group `group`'s hyperparameters (src/kernel/plan/ builds the tables). The update,
// the gradient-norm reduction and the standalone clip by value all walk the same table, so the
// gaps between the tensors of an arena are neither read as data nor written. A zeroed entry is
// empty. `tensor` (the tensor's index in the optimizer, or within its replica in a population)
// and `tensor_offset` (the index of element `start` within its tensor) name each element the
// same way whatever the layout: stochastic rounding draws its bits from them.
struct Segment {
    start: u32,
    end: u32,
    group: u32,
    tensor: u32,
    tensor_offset: u32,
    // Its slot among the partials of per-tensor reductions (LAMB's and LARS's trust ratios):
    // a tensor's segments take consecutive slots.
    slot: u32,
}
