// SPDX-License-Identifier: MIT
namespace CustomAutograd.Graph;

// A node state that also keeps the non-tensor arguments of the call, for the Backward.
internal sealed class NodeState<TArgs> : NodeState
{
    internal NodeState(AutogradFunction function, InputFlags needsInputGrad, int edgeCount, long[] meta, int outputsStart,
                       int positionalSaved, string[]? savedNames, object? userState, TArgs args)
        : base(function, needsInputGrad, edgeCount, meta, outputsStart, positionalSaved, savedNames, userState)
    {
        Args = args;
    }

    internal TArgs Args { get; }
}
