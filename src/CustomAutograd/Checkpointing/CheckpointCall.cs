// SPDX-License-Identifier: MIT
using System;
using static TorchSharp.torch;

namespace CustomAutograd;

// One application of a checkpoint: what the node's Forward and Backward both need (the custom function's
// typed arguments, so it lives as long as the graph node). It holds no tensor: the inputs, parameters and RNG
// states are saved variables of the node, freed after a backward without retain_graph.
internal sealed class CheckpointCall
{
    internal CheckpointCall(Func<Tensor?[], Tensor[]> run, int inputCount, bool routesParameters,
                            CheckpointOptions options, bool usesCuda)
    {
        Run = run;
        InputCount = inputCount;
        RoutesParameters = routesParameters;
        Options = options;
        UsesCuda = usesCuda;
    }

    // The segment: the user's inputs in, its outputs out.
    internal Func<Tensor?[], Tensor[]> Run { get; }

    // How many of the node's inputs are the segment's inputs; the rest are parameters.
    internal int InputCount { get; }

    // True when the parameters are inputs of the node (module forms, or CheckpointOptions.Parameters
    // set): the Backward returns their gradients. False: a backward through the recomputed graph accumulates
    // into whatever leaves the segment captured, as PyTorch's re-entrant checkpoint does.
    internal bool RoutesParameters { get; }

    internal CheckpointOptions Options { get; }

    // Whether an input or parameter is on CUDA (Note [checkpoint RNG]).
    internal bool UsesCuda { get; }

    // Shape and dtype of each output of the forward, to check the recompute against.
    internal (long[] Shape, ScalarType Type)[]? Outputs { get; set; }
}
