# One graph fix the torch backend and its exported script both apply before the quantizer annotates an
# exported model. Self-contained (no imports) because the exported script embeds this file verbatim
# (the FILE marker of export_torch.py.txt names it).
def distinct_module_calls(gm):
    """Give each call of a module that ``forward`` calls more than once its own name in the nodes'
    ``nn_module_stack``/``source_fn_stack`` (``layer1.0.relu@2``); returns how many nodes were renamed.

    torchvision's ResNet blocks (and many users' models) call one ``self.relu`` twice. The quantizer's
    pattern matching groups nodes into partitions by that name (``torch.fx.passes.utils.
    source_matcher_utils.get_source_partitions``), so both ReLUs form one partition with two outputs
    and ``X86InductorQuantizer``'s QAT conv-bn-add-relu annotation raises "Input partition has more
    than one output node". A leaf module issues each aten op once per call, so the k-th node with the
    same module name and op is the k-th call. :func:`core.backends.torch_pt2e.check._module_path` shows the name without ``@k``.
    """
    seen = {}
    renamed = 0
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        stack = node.meta.get("nn_module_stack")
        if not stack:
            continue
        last = list(stack)[-1]
        fqn, cls = stack[last]
        k = seen.get((fqn, node.target), 0) + 1
        seen[(fqn, node.target)] = k
        if k == 1:
            continue
        new = dict(stack)
        del new[last]
        new["%s@%d" % (last, k)] = ("%s@%d" % (fqn, k), cls)
        node.meta["nn_module_stack"] = new
        src = node.meta.get("source_fn_stack")
        if src:
            name, fn = src[-1]
            node.meta["source_fn_stack"] = list(src[:-1]) + [("%s@%d" % (name, k), fn)]
        renamed += 1
    return renamed
