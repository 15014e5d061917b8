// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;
using CustomAutograd.Native;
using CustomAutograd.TorchSharpInternals;

namespace CustomAutograd.Graph;

/// <summary>A node state that also keeps the non-tensor arguments of the call, for the Backward.</summary>
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
