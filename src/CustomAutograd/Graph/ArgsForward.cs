// SPDX-License-Identifier: MIT
using System;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// Forward invoker that passes typed non-tensor arguments and keeps them for the Backward.
internal readonly struct ArgsForward<TArgs> : IForwardInvoker
{
    private readonly Func<ForwardContext, Tensor?[], TArgs, Tensor[]> _forward;
    private readonly TArgs _args;

    internal ArgsForward(Func<ForwardContext, Tensor?[], TArgs, Tensor[]> forward, TArgs args, bool ownsOutputArray)
    {
        _forward = forward;
        _args = args;
        OwnsOutputArray = ownsOutputArray;
    }

    public bool OwnsOutputArray { get; }

    public Tensor[] Invoke(ForwardContext ctx, Tensor?[] inputs) => _forward(ctx, inputs, _args);

    public void CheckArgs(AutogradFunction function, Tensor[] outputs)
    {
        if (!ArgsTensors<TArgs>.MayHoldTensors)
            return;
        string? holder = ArgsTensors<TArgs>.FindHolder(_args, outputs, out int index);
        if (holder is null)
            return;
        throw new CustomAutogradException(
            function.Name,
            $"the args object holds output {index} of this call ({holder}). The graph node keeps the args for the Backward, so " +
            "the output would keep its own graph alive forever (a cycle through native memory that no garbage collector sees). " +
            "Save the tensor with ctx.SaveForBackward(...) instead.", null);
    }

    public NodeState CreateState(AutogradFunction function, InputFlags needs, int edgeCount, long[] meta, int outputsStart,
                                 ForwardContext ctx) =>
        new NodeState<TArgs>(function, needs, edgeCount, meta, outputsStart, ctx.PositionalSavedCount, ctx.SavedNames,
                             ctx.State, _args);
}
