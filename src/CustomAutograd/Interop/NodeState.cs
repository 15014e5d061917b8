// SPDX-License-Identifier: MIT
using System;
using TorchSharp;

namespace CustomAutograd.Interop;

/// <summary>What a backward needs to know about one forward input that has an edge in the graph.</summary>
internal readonly struct EdgeInfo
{
    internal EdgeInfo(int inputIndex, long[] shape, DeviceType deviceType, int deviceIndex)
    {
        InputIndex = inputIndex;
        Shape = shape;
        DeviceType = deviceType;
        DeviceIndex = deviceIndex;
    }

    /// <summary>Position of the input among the arguments of Apply.</summary>
    internal int InputIndex { get; }

    internal long[] Shape { get; }

    internal DeviceType DeviceType { get; }

    internal int DeviceIndex { get; }
}

/// <summary>What a backward needs to materialise a missing gradient of one output (no tensor is kept).</summary>
internal readonly struct OutputInfo
{
    internal OutputInfo(long[] shape, torch.ScalarType dtype, DeviceType deviceType, int deviceIndex)
    {
        Shape = shape;
        Dtype = dtype;
        DeviceType = deviceType;
        DeviceIndex = deviceIndex;
    }

    internal long[] Shape { get; }

    internal torch.ScalarType Dtype { get; }

    internal DeviceType DeviceType { get; }

    internal int DeviceIndex { get; }
}

/// <summary>
/// The managed state of one graph node, reached from native callbacks through a GCHandle that the
/// node owns (Note [ownership across the ABI]). Immutable once the forward has finished.
/// </summary>
internal class NodeState
{
    internal NodeState(AutogradFunction function, bool[] needsInputGrad, EdgeInfo[] edges, OutputInfo[]? outputs,
                       int positionalSaved, string[]? savedNames, object? userState)
    {
        Function = function;
        NeedsInputGrad = needsInputGrad;
        Edges = edges;
        Outputs = outputs;
        PositionalSaved = positionalSaved;
        SavedNames = savedNames;
        UserState = userState;
    }

    internal AutogradFunction Function { get; }

    internal bool[] NeedsInputGrad { get; }

    /// <summary>One entry per non-null tensor input, in order: the node's edges.</summary>
    internal EdgeInfo[] Edges { get; }

    /// <summary>Null when gradients are not materialised.</summary>
    internal OutputInfo[]? Outputs { get; }

    /// <summary>The saved tensors come positional first, then named (in <see cref="SavedNames"/> order).</summary>
    internal int PositionalSaved { get; }

    internal string[]? SavedNames { get; }

    internal object? UserState { get; }
}

/// <summary>A node state that also keeps the non-tensor arguments of the call, for the Backward.</summary>
internal sealed class NodeState<TArgs> : NodeState
{
    internal NodeState(AutogradFunction function, bool[] needsInputGrad, EdgeInfo[] edges, OutputInfo[]? outputs,
                       int positionalSaved, string[]? savedNames, object? userState, TArgs args)
        : base(function, needsInputGrad, edges, outputs, positionalSaved, savedNames, userState)
    {
        Args = args;
    }

    internal TArgs Args { get; }
}
