// SPDX-License-Identifier: MIT
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// Calls a user Forward (a struct, so that Apply allocates no closure) and makes the node state.
internal interface IForwardInvoker
{
    // True when the array Invoke returns is created by the library, so it may become the result array.
    bool OwnsOutputArray { get; }

    Tensor[] Invoke(ForwardContext ctx, Tensor?[] inputs);

    // Refuses typed arguments that hold one of this call's outputs (a cycle no collector can free).
    void CheckArgs(AutogradFunction function, Tensor[] outputs);

    NodeState CreateState(AutogradFunction function, InputFlags needs, int edgeCount, long[] meta, int outputsStart, ForwardContext ctx);
}
