// SPDX-License-Identifier: MIT
using System;
using static TorchSharp.torch;

namespace CustomAutograd.Graph;

// For AutogradFunctionOptions.OnceDifferentiable: connects the gradients a Backward computed under
// no-grad to a node whose own backward fails, as PyTorch's DelayedError does, so that differentiating them
// raises an error naming the function instead of silently giving zeros. The node gets detached copies (sharing
// storage), so a tensor the Backward does not own is never modified, and the node's state keeps no tensor.
internal static class OnceDifferentiableGuard
{
    [ThreadStatic]
    private static Tensor?[]? t_outputs;

    internal static Tensor?[] Connect(AutogradFunction function, Tensor?[] incoming, Tensor?[] computed)
    {
        int count = 0;
        foreach (Tensor? g in computed)
        {
            if (g is not null)
                count++;
        }
        if (count == 0 || Array.TrueForAll(incoming, g => g is null || !g.requires_grad))
            return computed;

        MultiFunction delayedError = function.DelayedError ??= AutogradFunction.CreateMulti(
            function.Name + " (once differentiable)",
            static (ctx, grads) =>
            {
                // Handed over by the caller on this thread just before Apply (the Forward runs synchronously).
                Tensor[] outputs = (Tensor[])t_outputs!;
                t_outputs = null;
                return outputs;
            },
            (ctx, grads) => throw new InvalidOperationException(
                $"trying to differentiate twice a function that was marked once-differentiable ('{function.Name}')"));
        var detached = new Tensor[count];
        for (int i = 0, k = 0; i < computed.Length; i++)
        {
            if (computed[i] is { } g)
                detached[k++] = g.detach();
        }
        t_outputs = detached;
        Tensor[] wrapped = delayedError.Apply(Array.FindAll(incoming, g => g is not null));
        var result = new Tensor?[computed.Length];
        for (int i = 0, k = 0; i < computed.Length; i++)
        {
            if (computed[i] is not null)
                result[i] = wrapped[k++];
        }
        return result;
    }
}
