// SPDX-License-Identifier: MIT
using System;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// Forward invokers for functions without extra arguments.
internal readonly struct PlainForward : IForwardInvoker
{
    private readonly Func<ForwardContext, Tensor?[], Tensor[]> _forward;

    internal PlainForward(Func<ForwardContext, Tensor?[], Tensor[]> forward, bool ownsOutputArray)
    {
        _forward = forward;
        OwnsOutputArray = ownsOutputArray;
    }

    public bool OwnsOutputArray { get; }

    public Tensor[] Invoke(ForwardContext ctx, Tensor?[] inputs) => _forward(ctx, inputs);

    public void CheckArgs(AutogradFunction function, Tensor[] outputs)
    {
    }

    public NodeState CreateState(AutogradFunction function, InputFlags needs, int edgeCount, long[] meta, int outputsStart,
                                 ForwardContext ctx) =>
        new(function, needs, edgeCount, meta, outputsStart, ctx.PositionalSavedCount, ctx.SavedNames, ctx.State);
}
